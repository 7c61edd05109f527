//! One connection as a state machine: what a worker does with it each time the event loop hands
//! it over, and what it waits for when it hands it back.
//!
//! A worker never waits for a client. Every socket operation is non-blocking; when one would
//! block, the worker returns the connection to the event loop with what it waits for and until
//! when ([`Outcome::Park`] with a [`Wait`]), and another (or the same) worker picks it up when the
//! socket is ready. The states:
//!
//! | state | waits for | deadline | at the deadline |
//! |---|---|---|---|
//! | between requests | readability | keep-alive timeout | close |
//! | in a head | readability | header timeout from its first byte | `408`, close |
//! | in a body | readability | body timeout since the last byte, and the total body time | `408`, linger |
//! | out of body budget | the next tick | the total body time | `408`, linger |
//! | writing a response | writability | write timeout since the last progress | close |
//! | lingering after an error | readability | [`LINGER_TIME`] | close |
//!
//! A response that does not fit in the socket's buffer stays here ([`Output`]) with the file and
//! offset it is at, and is resumed when the socket is writable. A request's body is read as it
//! arrives into the request's memory, against the server-wide [body budget](super::budget); the
//! handler runs once it is complete, unless it answers from the head alone
//! ([`Handler::wants_body`]). After an error response, the rest of what the client sends is
//! drained for a short while (RFC 9112 §9.6), so closing does not reset the connection before the
//! client has read the response.
//!
//! Data flows one way: socket → [`parse`] → [`Handler`] → [`render`] → [`Output`] → socket.
//!
//! The socket is a type parameter ([`Wire`]): a [`TcpStream`] in the server, an in-memory socket
//! driven by a script in the `conn` fuzz target (`crate::fuzz_support::conn_script`), which also
//! runs this state machine without a listener through [`Standalone`] and [`serve_with`].

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::access::{Logged, RequestLine, escape};
use super::budget::{BodyBudget, Reservation};
use super::output::{Output, Progress};
use super::{Config, Shared};

pub(crate) use super::output::Wire;
use crate::handler::Handler;
pub(crate) use crate::handoff::table::{OnDeadline, Wait, WaitFor};
use crate::http::response::render;
use crate::http::{
    ChunkedDecoder, EMPTY_HEADER, Framing, ParseError, Request, Response, Status, Version,
    WriteOptions, head_end, parse,
};

/// Most bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;
/// Most response bytes a worker writes to one connection per round before letting other
/// connections have it (a fast client of a large file would otherwise keep it for the whole file);
/// also the largest single `sendfile` (nginx's `sendfile_max_chunk` default).
const WRITE_BUDGET: u64 = 2 * 1024 * 1024;
/// After an error response, how long (and how much) to drain what the client still sends, so
/// that closing does not reset the connection before the client reads the response (RFC 9112 §9.6).
/// Lingering costs a socket, not a worker, so it can afford to wait for a client that is still
/// sending a large body it started before the response came (nginx waits up to 30 s).
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 * 1024 * 1024;
/// Header slots per request; [`Limits::max_headers`](crate::http::Limits::max_headers) above this
/// is capped to it.
const MAX_HEADERS: usize = crate::http::DEFAULT_MAX_HEADERS;

/// A client connection and everything it is in the middle of.
///
/// An idle connection holds no buffer: `buf` is taken (from the worker's spare, else allocated)
/// when bytes arrive and given back when the connection parks with nothing pending, so parked idle
/// connections cost a socket and this struct. Bytes are read into a per-thread scratch buffer and
/// only what arrived is kept, so a slow client holds the bytes it sent, not a read buffer.
pub(crate) struct Conn<S = TcpStream> {
    stream: S,
    peer: SocketAddr,
    /// Bytes received and not yet consumed (part of a head, pipelined requests, or a body's raw
    /// bytes behind its head while the body is read).
    buf: Vec<u8>,
    /// Requests answered so far.
    served: usize,
    /// When the first byte of the request now in `buf` arrived (the header deadline runs from it).
    first_byte: Option<Instant>,
    /// The peer has shut down its side: read to the end (EOF) rather than stopping at a short
    /// read, since no further readiness event will come.
    peer_closed: bool,
    phase: Phase,
    /// A response (or `100 Continue`) on its way out. Written before anything else is done.
    out: Option<Box<Pending>>,
}

/// What the connection reads.
enum Phase {
    /// Request heads (none yet, part of one, or several pipelined).
    Head,
    /// The body of the request whose head is at the start of `buf`.
    Body(Box<BodyRead>),
    /// After an error response: discards what the client still sends, then closes.
    Linger { until: Instant, drained: usize },
}

/// A body being read.
struct BodyRead {
    /// The head's length at the start of `buf` (parsed again for the handler).
    head_len: usize,
    head: Head,
    left: Left,
    /// The body read so far, decoded.
    body: Vec<u8>,
    /// Budget bytes held for the body: none until `admitted`, then the whole body's worth.
    reserved: Reservation,
    /// The reservation for the whole body is held: the body may be read.
    admitted: bool,
    /// What the access log says of the request.
    line: RequestLine,
    /// When the head was complete (the total body deadline runs from it).
    started: Instant,
    /// When the last body byte arrived (the inactivity deadline runs from it).
    last_byte: Instant,
}

/// How much body is left.
enum Left {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// A response on the way out and what follows it.
struct Pending {
    output: Output,
    then: Then,
    /// For the access log line once it is written (or abandoned); `None` for `100 Continue` and
    /// when the access log is off.
    log: Option<Logged>,
    /// When a write last made progress (the write timeout runs from it).
    last_progress: Instant,
}

impl Drop for Pending {
    /// A response abandoned before its last byte (write error, write timeout, shutdown) still
    /// gets its access-log line, with the body bytes actually sent.
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            log.emit(self.output.body_sent(), true);
        }
    }
}

/// What happens after a response is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// The next request.
    Next,
    /// Close.
    Close,
    /// Shut down the write side, drain for a while, close (after an error).
    Linger,
}

/// What the worker did with a connection.
pub(crate) enum Outcome<S = TcpStream> {
    /// Waiting: give it back to the event loop, parked with `wait`. With `again`, it should be
    /// served again at once (the worker stopped early to be fair to other connections).
    Park {
        conn: Conn<S>,
        wait: Wait,
        again: bool,
    },
    /// Closed (or to be closed: dropping the connection closes the socket).
    Closed,
}

/// Copied out of a parsed head, so the buffer can be changed while the request is answered.
#[derive(Clone, Copy)]
struct Head {
    keep_alive: bool,
    head_only: bool,
    http10: bool,
}

impl Head {
    fn of(req: &Request<'_, '_>) -> Head {
        Head {
            keep_alive: req.keep_alive,
            head_only: req.method == "HEAD",
            http10: req.version == Version::Http10,
        }
    }
}

/// What one step over the buffer did.
enum Step {
    /// Something changed (a response is on its way, or the phase moved on): go round again.
    Progress,
    /// More bytes are needed.
    NeedBytes,
    /// Close now.
    Close,
}

/// What one read did.
enum ReadResult {
    /// `n` bytes were appended; `short` if fewer than asked for (the kernel's buffer is empty).
    Data {
        n: usize,
        short: bool,
    },
    WouldBlock,
    Eof,
}

impl<S: Wire> Conn<S> {
    pub(crate) fn new(stream: S, peer: SocketAddr) -> Conn<S> {
        Conn {
            stream,
            peer,
            buf: Vec::new(),
            served: 0,
            first_byte: None,
            peer_closed: false,
            phase: Phase::Head,
            out: None,
        }
    }

    /// Bytes this connection holds in memory: received and not yet consumed (`buf`), the body
    /// read so far, and the response not yet written.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn held(&self) -> Held {
        Held {
            buf: self.buf.len(),
            body: match &self.phase {
                Phase::Body(b) => b.body.len(),
                _ => 0,
            },
            out: self.out.as_ref().map_or(0, |p| p.output.held()),
        }
    }
}

/// What `Conn::held` counts.
#[cfg(feature = "fuzzing")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    /// Bytes received and not yet consumed.
    pub(crate) buf: usize,
    /// Body bytes read (decoded) of the request being read.
    pub(crate) body: usize,
    /// Bytes of the response (or `100 Continue`) in memory and not yet written.
    pub(crate) out: usize,
}

impl Conn {
    /// How a new connection waits for its first request.
    pub(crate) fn first_wait(shared: &Shared) -> Wait {
        Wait {
            what: WaitFor::Read,
            deadline: Instant::now() + shared.config.keep_alive_timeout,
            on_deadline: OnDeadline::Close,
        }
    }
}

/// What serving a connection needs of the server: its configuration, whether it is stopping,
/// and the server-wide body budget.
pub(crate) struct Ctx<'a> {
    config: &'a Config,
    stopping: &'a AtomicBool,
    body_budget: &'a Arc<BodyBudget>,
}

impl Ctx<'_> {
    #[inline]
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

/// The server state [`serve_with`] needs, owned, for driving connections without a listener or
/// an event loop (the `conn` fuzz target).
#[cfg(feature = "fuzzing")]
pub(crate) struct Standalone {
    config: Config,
    stopping: AtomicBool,
    body_budget: Arc<BodyBudget>,
}

#[cfg(feature = "fuzzing")]
impl Standalone {
    /// As [`ServerBuilder::build`](super::ServerBuilder::build) sets it up for `config`.
    pub(crate) fn new(config: Config) -> Standalone {
        let cap = config.max_buffered_body.max(config.limits.max_body);
        Standalone {
            config,
            stopping: AtomicBool::new(false),
            body_budget: BodyBudget::new(cap),
        }
    }

    /// The server starts shutting down (what `ShutdownHandle::shutdown` sets).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub(crate) fn ctx(&self) -> Ctx<'_> {
        Ctx {
            config: &self.config,
            stopping: &self.stopping,
            body_budget: &self.body_budget,
        }
    }
}

/// Serves `conn` until it has to wait, is closed, or has had its share of the worker. With
/// `timed_out`, the deadline of the wait it was parked with has passed (one that is answered:
/// a head or a body that did not arrive in time).
pub(crate) fn serve<S: Wire>(
    conn: Conn<S>,
    shared: &Shared,
    handler: &dyn Handler,
    peer_closed: bool,
    timed_out: bool,
) -> Outcome<S> {
    let cx = Ctx {
        config: &shared.config,
        stopping: &shared.stopping,
        body_budget: &shared.body_budget,
    };
    serve_with(conn, &cx, handler, peer_closed, timed_out)
}

/// [`serve`], with what it needs of the server in `shared`.
pub(crate) fn serve_with<S: Wire>(
    mut conn: Conn<S>,
    shared: &Ctx<'_>,
    handler: &dyn Handler,
    peer_closed: bool,
    timed_out: bool,
) -> Outcome<S> {
    conn.peer_closed |= peer_closed;
    if timed_out {
        match conn.phase {
            Phase::Head if conn.out.is_none() && !conn.buf.is_empty() => {
                log::debug!("{}: header timeout", conn.peer);
                conn.buf.clear();
                let started = conn.first_byte.unwrap_or_else(Instant::now);
                conn.error(shared, 408, Then::Close, started, RequestLine::unparsed());
            }
            Phase::Body(_) => {
                log::debug!("{}: body timeout", conn.peer);
                let Phase::Body(b) = std::mem::replace(&mut conn.phase, Phase::Head) else {
                    unreachable!("matched above")
                };
                conn.buf.clear();
                let (started, line) = (conn.first_byte.unwrap_or(b.started), b.line);
                conn.error(shared, 408, Then::Linger, started, line);
            }
            _ => return Outcome::Closed,
        }
    }
    let read_limit = shared.config.limits.max_head + 2 * READ_CHUNK;
    let (mut read, mut written) = (0usize, 0u64);
    // A read found the kernel's buffer empty: wait for readiness instead of reading again.
    let mut drained = false;
    loop {
        // 1. The response on its way out goes first.
        if let Some(pending) = &mut conn.out {
            let before = written;
            let budget = WRITE_BUDGET.saturating_sub(written).max(1);
            let progress = pending
                .output
                .write_to(&mut conn.stream, budget, &mut written);
            if written > before {
                pending.last_progress = Instant::now();
            }
            match progress {
                Ok(Progress::Done) => {
                    let mut pending = conn.out.take().expect("matched above");
                    if let Some(log) = pending.log.take() {
                        log.emit(pending.output.body_sent(), false);
                    }
                    match pending.then {
                        Then::Next => {}
                        Then::Close => return Outcome::Closed,
                        Then::Linger => conn.start_linger(),
                    }
                }
                Ok(progress @ (Progress::Blocked | Progress::Budget)) => {
                    // Blocked: the socket is full, wait for writability. Budget: this worker has
                    // written its share; serve again at once if no one else is waiting.
                    let wait = Wait {
                        what: WaitFor::Write,
                        deadline: pending.last_progress + shared.config.write_timeout,
                        on_deadline: OnDeadline::Close,
                    };
                    return Outcome::Park {
                        conn,
                        wait,
                        again: progress == Progress::Budget,
                    };
                }
                Err(e) => {
                    log::debug!("{}: write error: {e}", conn.peer);
                    return Outcome::Closed;
                }
            }
            continue;
        }
        // 2. Then whatever the phase reads.
        let step = match conn.phase {
            Phase::Head if conn.buf.is_empty() => Step::NeedBytes,
            Phase::Head => conn.next_request(shared, handler),
            Phase::Body(_) => conn.advance_body(shared, handler),
            Phase::Linger { .. } => Step::NeedBytes,
        };
        match step {
            Step::Progress => continue,
            Step::Close => return Outcome::Closed,
            Step::NeedBytes => {}
        }
        let lingering = matches!(conn.phase, Phase::Linger { .. });
        if (drained && !conn.peer_closed) || read >= read_limit {
            let again = !drained || conn.peer_closed;
            return conn.park_reading(shared, again);
        }
        // A body is read only once the whole of it is reserved (see `budget.rs`).
        if let Phase::Body(b) = &mut conn.phase
            && !b.admitted
        {
            let need = match b.left {
                Left::Length(n) => n,
                Left::Chunked(_) => shared.config.limits.max_body,
            };
            if !b.reserved.grow_exact(need) {
                log::debug!("{}: body budget exhausted; waiting", conn.peer);
                let wait = Wait {
                    what: WaitFor::Tick,
                    deadline: b.started + shared.config.body_total_timeout,
                    on_deadline: OnDeadline::Answer,
                };
                return Outcome::Park {
                    conn,
                    wait,
                    again: false,
                };
            }
            b.admitted = true;
        }
        let max = READ_CHUNK;
        let result = conn.read_some(max, lingering);
        match result {
            Ok(ReadResult::Data { n, short }) => {
                read += n;
                drained = short;
                match &mut conn.phase {
                    Phase::Body(b) => b.last_byte = Instant::now(),
                    Phase::Linger { drained: d, .. } => {
                        *d += n;
                        if *d >= LINGER_BYTES {
                            return Outcome::Closed;
                        }
                    }
                    Phase::Head => {}
                }
            }
            Ok(ReadResult::WouldBlock) => {
                return conn.park_reading(shared, false);
            }
            Ok(ReadResult::Eof) => return Outcome::Closed,
            Err(e) => {
                log::debug!("{}: read error: {e}", conn.peer);
                return Outcome::Closed;
            }
        }
    }
}

/// One scratch read buffer per worker thread: reads land here and only the bytes that arrived are
/// kept by the connection.
mod scratch {
    use std::cell::RefCell;

    thread_local! {
        pub(super) static SCRATCH: RefCell<Box<[u8]>> =
            RefCell::new(vec![0u8; super::READ_CHUNK].into_boxed_slice());
    }
}

/// One spare request buffer per worker thread. A connection takes it when bytes arrive and gives
/// it back when it parks with nothing buffered, so a busy worker does not allocate a fresh buffer
/// per request, while idle connections still hold none.
mod spare_buffer {
    use std::cell::Cell;

    /// Buffers that grew past this (a large head) are freed rather than kept.
    const KEEP_AT_MOST: usize = 64 * 1024;

    thread_local! {
        static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    }

    /// This thread's spare buffer (empty, possibly with capacity), or a new empty one.
    pub(super) fn take() -> Vec<u8> {
        SPARE.with(Cell::take)
    }

    /// Keeps `buf` (cleared) as this thread's spare, unless it is too large.
    pub(super) fn give_back(mut buf: Vec<u8>) {
        if buf.capacity() <= KEEP_AT_MOST {
            buf.clear();
            SPARE.with(|spare| spare.set(buf));
        }
    }
}

impl<S: Wire> Conn<S> {
    /// One non-blocking read of at most `max` bytes: appended to `buf`, or discarded when
    /// `discard` (lingering).
    fn read_some(&mut self, max: usize, discard: bool) -> io::Result<ReadResult> {
        scratch::SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let max = max.min(scratch.len());
            loop {
                match self.stream.read(&mut scratch[..max]) {
                    Ok(0) => return Ok(ReadResult::Eof),
                    Ok(n) => {
                        if !discard {
                            if self.buf.capacity() == 0 {
                                self.buf = spare_buffer::take();
                            }
                            if self.buf.is_empty() {
                                self.first_byte = Some(Instant::now());
                            }
                            self.buf.extend_from_slice(&scratch[..n]);
                        }
                        return Ok(ReadResult::Data { n, short: n < max });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(ReadResult::WouldBlock);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        })
    }

    /// Parks the connection to wait for bytes, with the deadline its phase has. At shutdown, a
    /// connection that would wait for a request (or the rest of one) is closed instead: what had
    /// arrived has been read and answered.
    fn park_reading(mut self, shared: &Ctx<'_>, again: bool) -> Outcome<S> {
        if shared.stopping() && !matches!(self.phase, Phase::Linger { .. }) {
            return Outcome::Closed;
        }
        let cfg = &shared.config;
        let now = Instant::now();
        let wait = match &self.phase {
            Phase::Head if self.buf.is_empty() => {
                // An idle connection holds no buffer; this worker keeps it for the next one.
                spare_buffer::give_back(std::mem::take(&mut self.buf));
                self.first_byte = None;
                Wait {
                    what: WaitFor::Read,
                    deadline: now + cfg.keep_alive_timeout,
                    on_deadline: OnDeadline::Close,
                }
            }
            Phase::Head => Wait {
                what: WaitFor::Read,
                deadline: self.first_byte.unwrap_or(now) + cfg.header_timeout,
                on_deadline: OnDeadline::Answer,
            },
            Phase::Body(b) => Wait {
                what: WaitFor::Read,
                deadline: (b.last_byte + cfg.body_timeout).min(b.started + cfg.body_total_timeout),
                on_deadline: OnDeadline::Answer,
            },
            Phase::Linger { until, .. } => Wait {
                what: WaitFor::Read,
                deadline: *until,
                on_deadline: OnDeadline::Close,
            },
        };
        Outcome::Park {
            conn: self,
            wait,
            again,
        }
    }

    /// Parses the buffer once and answers, starts or refuses the first request in it.
    fn next_request(&mut self, shared: &Ctx<'_>, handler: &dyn Handler) -> Step {
        let started = self.first_byte.unwrap_or_else(Instant::now);
        let limits = &shared.config.limits;
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let (req, consumed) = match parse(&self.buf, &mut headers, limits) {
            Ok(Status::Complete(req, consumed)) => (req, consumed),
            Ok(Status::Partial) => return Step::NeedBytes,
            Err(e) => return self.bad_request(shared, e, started),
        };
        let head = Head::of(&req);
        match req.framing {
            Framing::None => {
                let (response, panicked) = call_handler(self.peer, handler, &req);
                let line = RequestLine::of(&req, shared.config.access_log);
                self.buf.drain(..consumed);
                self.respond(shared, head, response, panicked, line, started, false)
            }
            Framing::Length(n) if n > limits.max_body => {
                let line = RequestLine::of(&req, shared.config.access_log);
                self.buf.clear();
                self.error(shared, 413, Then::Linger, started, line)
            }
            framing if handler.wants_body(&req) => {
                let line = RequestLine::of(&req, shared.config.access_log);
                let expect_continue = req.expect_continue && self.buf.len() == consumed;
                let left = match framing {
                    Framing::Length(n) => Left::Length(n),
                    _ => Left::Chunked(ChunkedDecoder::new(limits.max_body)),
                };
                let now = Instant::now();
                let reserved = Reservation::new(shared.body_budget);
                self.phase = Phase::Body(Box::new(BodyRead {
                    head_len: consumed,
                    head,
                    left,
                    body: Vec::new(),
                    reserved,
                    admitted: false,
                    line,
                    started: now,
                    last_byte: now,
                }));
                if expect_continue {
                    self.out = Some(Box::new(Pending {
                        output: Output::raw(b"HTTP/1.1 100 Continue\r\n\r\n"),
                        then: Then::Next,
                        log: None,
                        last_progress: now,
                    }));
                }
                Step::Progress
            }
            framing => {
                // Answered from the head; the body is skipped if it is all here, else the
                // connection closes after the response.
                let (response, panicked) = call_handler(self.peer, handler, &req);
                let line = RequestLine::of(&req, shared.config.access_log);
                let end = match framing {
                    Framing::Length(n) => {
                        let have = (self.buf.len() - consumed) as u64;
                        (have >= n).then(|| consumed + n as usize)
                    }
                    _ => {
                        let mut decoder = ChunkedDecoder::new(limits.max_body);
                        let mut sink = Vec::new();
                        match decoder.decode(&self.buf[consumed..], &mut sink) {
                            Ok(s) if s.done => Some(consumed + s.consumed),
                            Ok(_) => None,
                            Err(e) => {
                                self.buf.clear();
                                return self.error(
                                    shared,
                                    e.status_code(),
                                    Then::Linger,
                                    started,
                                    line,
                                );
                            }
                        }
                    }
                };
                match end {
                    Some(end) => {
                        self.buf.drain(..end);
                        self.respond(shared, head, response, panicked, line, started, false)
                    }
                    None => {
                        self.buf.clear();
                        self.respond(shared, head, response, panicked, line, started, true)
                    }
                }
            }
        }
    }

    /// A head the parser rejected.
    fn bad_request(&mut self, shared: &Ctx<'_>, e: ParseError, started: Instant) -> Step {
        log::debug!("{}: bad request: {e}", self.peer);
        let line = RequestLine::of_rejected(&self.buf, shared.config.access_log);
        // Errors in a complete, body-less head leave the framing intact: answer and go on with
        // the next request. Every other error ends the connection.
        if let (false, Some(n)) = (e.must_close(), head_end(&self.buf, 0)) {
            // Keep-alive only for HTTP/1.1 (the head is complete, so its first line is whole).
            let line_end = memchr::memchr(b'\n', &self.buf).unwrap_or(0);
            let http11 = self.buf[..line_end].ends_with(b"HTTP/1.1\r");
            self.buf.drain(..n);
            let head = Head {
                keep_alive: http11,
                head_only: false,
                http10: false,
            };
            let response = Response::plain_status(e.status_code());
            return self.respond(shared, head, response, false, line, started, false);
        }
        self.buf.clear();
        self.error(shared, e.status_code(), Then::Linger, started, line)
    }

    /// Moves what arrived of the body into the request; answers it once complete.
    fn advance_body(&mut self, shared: &Ctx<'_>, handler: &dyn Handler) -> Step {
        let Phase::Body(b) = &mut self.phase else {
            return Step::NeedBytes;
        };
        let from = b.head_len;
        let done = match &mut b.left {
            Left::Length(left) => {
                let take = ((self.buf.len() - from) as u64).min(*left) as usize;
                b.body.extend_from_slice(&self.buf[from..from + take]);
                self.buf.drain(from..from + take);
                *left -= take as u64;
                *left == 0
            }
            Left::Chunked(decoder) => match decoder.decode(&self.buf[from..], &mut b.body) {
                Ok(s) => {
                    self.buf.drain(from..from + s.consumed);
                    s.done
                }
                Err(e) => {
                    let Phase::Body(b) = std::mem::replace(&mut self.phase, Phase::Head) else {
                        unreachable!("matched above")
                    };
                    self.buf.clear();
                    let started = self.first_byte.unwrap_or(b.started);
                    return self.error(shared, e.status_code(), Then::Linger, started, b.line);
                }
            },
        };
        if !done {
            return Step::NeedBytes;
        }
        let Phase::Body(b) = std::mem::replace(&mut self.phase, Phase::Head) else {
            unreachable!("matched above")
        };
        let started = self.first_byte.unwrap_or(b.started);
        // The head is still at the start of the buffer: parse it again to hand it out.
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let (response, panicked) =
            match parse(&self.buf[..b.head_len], &mut headers, &shared.config.limits) {
                Ok(Status::Complete(req, _)) => {
                    call_handler(self.peer, handler, &req.with_body(&b.body))
                }
                _ => (Response::plain_status(500), true),
            };
        self.buf.drain(..b.head_len);
        let (head, line) = (b.head, b.line);
        drop(b.body);
        drop(b.reserved);
        self.respond(shared, head, response, panicked, line, started, false)
    }

    /// Queues `response` to a request just answered. `force_close`: the connection closes after
    /// it (the body was not read), lingering so the client sees the response.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        shared: &Ctx<'_>,
        head: Head,
        response: Response,
        panicked: bool,
        line: RequestLine,
        started: Instant,
        force_close: bool,
    ) -> Step {
        let cfg = &shared.config;
        let close = !head.keep_alive
            || self.served + 1 >= cfg.max_requests_per_connection
            || shared.stopping()
            || panicked
            || force_close;
        let opts = WriteOptions {
            head_only: head.head_only,
            close,
            http10_keep_alive: head.http10 && !close,
        };
        let then = match (close, force_close) {
            (false, _) => Then::Next,
            (true, false) => Then::Close,
            (true, true) => Then::Linger,
        };
        self.served += 1;
        self.first_byte = (!self.buf.is_empty()).then(Instant::now);
        self.queue(shared, response, opts, then, line, started)
    }

    /// Queues a plain error response with `Connection: close`.
    fn error(
        &mut self,
        shared: &Ctx<'_>,
        status: u16,
        then: Then,
        started: Instant,
        line: RequestLine,
    ) -> Step {
        let opts = WriteOptions {
            head_only: false,
            close: true,
            http10_keep_alive: false,
        };
        self.first_byte = None;
        self.queue(
            shared,
            Response::plain_status(status),
            opts,
            then,
            line,
            started,
        )
    }

    fn queue(
        &mut self,
        shared: &Ctx<'_>,
        response: Response,
        opts: WriteOptions,
        then: Then,
        line: RequestLine,
        started: Instant,
    ) -> Step {
        let status = response.status();
        let rendered = match render(response, opts) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("{}: cannot read the response body: {e}", self.peer);
                return Step::Close;
            }
        };
        let log = shared.config.access_log.then_some(Logged {
            peer: self.peer,
            request: line,
            status,
            started,
        });
        self.out = Some(Box::new(Pending {
            output: Output::new(rendered),
            then,
            log,
            last_progress: Instant::now(),
        }));
        Step::Progress
    }

    /// After an error response: stop sending, drain for a while.
    fn start_linger(&mut self) {
        let _ = self.stream.shutdown_write();
        self.buf = Vec::new();
        self.phase = Phase::Linger {
            until: Instant::now() + LINGER_TIME,
            drained: 0,
        };
    }
}

/// Calls the handler. A panic becomes a 500, and `true` (close the connection afterwards).
fn call_handler(
    peer: SocketAddr,
    handler: &dyn Handler,
    req: &Request<'_, '_>,
) -> (Response, bool) {
    match panic::catch_unwind(AssertUnwindSafe(|| handler.handle(req))) {
        Ok(resp) => (resp, false),
        Err(_) => {
            log::error!(
                "{peer}: handler panicked on {} {}",
                req.method,
                escape(req.target.as_bytes())
            );
            (Response::plain_status(500), true)
        }
    }
}
