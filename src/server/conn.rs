//! One connection between requests and during them: what a worker does when the poller says the
//! socket is readable.
//!
//! A worker never waits for a silent client. It reads what the kernel already has (the socket is
//! non-blocking), answers every complete request in the buffer (pipelining, in order), and hands the
//! connection back to the poller ([`Outcome::Park`]) as soon as it would have to wait for the next
//! request's bytes. The only waits left on a worker are bounded: reading a request body the client is
//! sending (bounded by the body timeout and the body limit) and writing a response the client is slow
//! to read (bounded by the write timeout). For those, the socket is switched to blocking mode with a
//! timeout for as long as the wait lasts ([`Blocking`]).
//!
//! Data flows one way: socket → [`parse`](crate::http::parse) → [`Handler`] → [`write_response`].

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::Shared;
use crate::handler::Handler;
use crate::http::{
    ChunkedDecoder, EMPTY_HEADER, Framing, ParseError, Request, Response, Status, Version,
    WriteOptions, head_end, parse, write_response,
};

/// How much is read per `read` call once a request is under way.
const READ_CHUNK: usize = 16 * 1024;
/// How much the first `read` into an empty buffer asks for. Most request heads are well under
/// 4 KiB, and the buffer is zeroed up to what is asked for: asking for 16 KiB every time allocates
/// and clears 16 KiB per keep-alive request for a head of a few hundred bytes (the `memset` alone
/// was ~1 % of the server's CPU samples under the load benchmark).
const FIRST_READ: usize = 4 * 1024;
/// After an early error response, how long (and how much) to drain what the client still sends, so
/// that closing does not reset the connection before the client reads the response (RFC 9112 §9.6).
const LINGER_TIME: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 64 * 1024;
/// Header slots per request; [`Limits::max_headers`](crate::http::Limits::max_headers) above this
/// is capped to it.
const MAX_HEADERS: usize = crate::http::DEFAULT_MAX_HEADERS;

/// A client connection and the little state it keeps between requests.
///
/// An idle connection holds no buffer: `buf` is taken (from the worker's spare, else allocated)
/// when bytes arrive and given back when the connection parks with nothing pending, so parked idle
/// connections cost a socket and this struct.
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) peer: SocketAddr,
    /// Bytes received and not yet consumed (part of a head, or pipelined requests).
    buf: Vec<u8>,
    /// Requests answered so far.
    served: usize,
    /// When the first byte of the request now in `buf` arrived (the header deadline runs from it).
    pub(crate) first_byte: Option<Instant>,
    /// The poller saw the peer shut down its side: read to the end (EOF) rather than stopping at
    /// a short read, since no further readiness event will come.
    pub(crate) peer_closed: bool,
}

/// What the worker did with a connection.
pub(crate) enum Outcome {
    /// Waiting for more bytes: give it back to the poller. `again` is `true` when unread bytes may
    /// remain in the kernel (the worker stopped reading early), so it should be dispatched again at
    /// once rather than waiting for a new readiness edge.
    Park { conn: Conn, again: bool },
    /// Closed (or to be closed: dropping the connection closes the socket).
    Closed,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream, peer: SocketAddr) -> Conn {
        Conn {
            stream,
            peer,
            buf: Vec::new(),
            served: 0,
            first_byte: None,
            peer_closed: false,
        }
    }

    /// Is part of a request waiting in the buffer?
    pub(crate) fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// Switches a socket to blocking mode with a timeout for as long as it lives, then back to
/// non-blocking: the bounded waits a worker may do (request bodies, slow readers of responses).
struct Blocking<'a>(&'a TcpStream);

impl<'a> Blocking<'a> {
    fn new(stream: &'a TcpStream, read: Duration, write: Duration) -> io::Result<Blocking<'a>> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(read))?;
        stream.set_write_timeout(Some(write))?;
        Ok(Blocking(stream))
    }
}

impl Drop for Blocking<'_> {
    fn drop(&mut self) {
        let _ = self.0.set_nonblocking(true);
    }
}

/// A writer over a non-blocking socket that falls back to a bounded blocking write when the socket
/// buffer is full (a response larger than the buffer, or a client slow to read).
struct ResponseWriter<'a> {
    stream: &'a TcpStream,
    write_timeout: Duration,
    blocking: Option<Blocking<'a>>,
}

impl Write for ResponseWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut stream = self.stream;
        match stream.write(data) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.blocking.is_none() => {
                self.blocking = Some(Blocking::new(
                    self.stream,
                    self.write_timeout,
                    self.write_timeout,
                )?);
                stream.write(data)
            }
            other => other,
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A [`ResponseWriter`] for `conn`.
fn writer<'a>(conn: &'a Conn, shared: &Shared) -> ResponseWriter<'a> {
    ResponseWriter {
        stream: &conn.stream,
        write_timeout: shared.config.write_timeout,
        blocking: None,
    }
}

/// Copied out of a parsed head, so the buffer can be changed while the request is answered.
#[derive(Clone, Copy)]
struct Head {
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
    head_only: bool,
    http10: bool,
}

impl Head {
    fn of(req: &Request<'_, '_>) -> Head {
        Head {
            framing: req.framing,
            keep_alive: req.keep_alive,
            expect_continue: req.expect_continue,
            head_only: req.method == "HEAD",
            http10: req.version == Version::Http10,
        }
    }
}

/// One parse attempt over the buffer.
enum Step {
    /// A complete request without a body, already answered by the handler.
    Answered {
        head: Head,
        consumed: usize,
        response: Response,
        panicked: bool,
        line: String,
    },
    /// A complete head whose body must be consumed first.
    NeedsBody { head: Head, consumed: usize },
    /// More bytes needed.
    Partial,
    /// Malformed.
    Error(ParseError),
}

/// Serves what is available on `conn`. With `timed_out`, the header deadline has passed: answer
/// `408` and close.
pub(crate) fn on_readable(
    mut conn: Conn,
    shared: &Shared,
    handler: &dyn Handler,
    timed_out: bool,
) -> Outcome {
    if timed_out {
        log::debug!("{}: header timeout", conn.peer);
        send_error(&mut conn, shared, 408, Instant::now(), false);
        return Outcome::Closed;
    }
    // Read what the kernel has, up to a bound (so one client cannot keep a worker forever).
    let limit = shared.config.limits.max_head + 2 * READ_CHUNK;
    let mut eof = false;
    let mut again = false;
    loop {
        if conn.buf.len() >= limit {
            again = true;
            break;
        }
        let start = conn.buf.len();
        let chunk = if start == 0 { FIRST_READ } else { READ_CHUNK };
        if conn.buf.capacity() == 0 {
            conn.buf = spare_buffer::take();
        }
        conn.buf.resize(start + chunk, 0);
        let r = conn.stream.read(&mut conn.buf[start..]);
        match r {
            Ok(0) => {
                conn.buf.truncate(start);
                eof = true;
                break;
            }
            Ok(n) => {
                conn.buf.truncate(start + n);
                conn.first_byte.get_or_insert_with(Instant::now);
                if n < chunk && !conn.peer_closed {
                    break; // drained what was there (the next read would say WouldBlock)
                }
            }
            Err(e) => {
                conn.buf.truncate(start);
                match e.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => {}
                    _ => {
                        log::debug!("{}: read error: {e}", conn.peer);
                        return Outcome::Closed;
                    }
                }
            }
        }
    }
    // Answer every complete request in the buffer.
    while !conn.buf.is_empty() {
        let started = conn.first_byte.unwrap_or_else(Instant::now);
        match serve_one(&mut conn, shared, handler, started) {
            Ok(Some(true)) => {}
            Ok(Some(false)) => return Outcome::Closed,
            Ok(None) => break, // partial
            Err(e) => {
                log::debug!("{}: connection error: {e}", conn.peer);
                return Outcome::Closed;
            }
        }
    }
    if eof || shared.stopping() {
        return Outcome::Closed; // a half-sent request at EOF or shutdown is not answered
    }
    if conn.buf.is_empty() {
        // An idle connection holds no buffer; this worker keeps it for the next connection it reads.
        spare_buffer::give_back(std::mem::take(&mut conn.buf));
        conn.first_byte = None;
    }
    Outcome::Park { conn, again }
}

/// One spare read buffer per worker thread. A connection takes it when bytes arrive and gives it
/// back when it parks with nothing buffered, so a busy worker does not allocate (and zero the
/// allocator's bookkeeping for) a fresh buffer per request, while idle connections still hold none.
mod spare_buffer {
    use std::cell::Cell;

    /// Buffers that grew past this (a large head or body) are freed rather than kept.
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

/// Parses the buffer once; answers a body-less request straight away.
fn step(conn: &Conn, shared: &Shared, handler: &dyn Handler) -> Step {
    let mut headers = [EMPTY_HEADER; MAX_HEADERS];
    match parse(&conn.buf, &mut headers, &shared.config.limits) {
        Ok(Status::Complete(req, consumed)) => {
            let head = Head::of(&req);
            if head.framing != Framing::None {
                return Step::NeedsBody { head, consumed };
            }
            let (response, panicked) = call_handler(conn.peer, handler, &req);
            Step::Answered {
                head,
                consumed,
                response,
                panicked,
                line: access_line(shared, &req),
            }
        }
        Ok(Status::Partial) => Step::Partial,
        Err(e) => Step::Error(e),
    }
}

/// Serves the first request in the buffer. `Ok(None)`: incomplete; `Ok(Some(keep_open))`: answered.
fn serve_one(
    conn: &mut Conn,
    shared: &Shared,
    handler: &dyn Handler,
    started: Instant,
) -> io::Result<Option<bool>> {
    let (head, response, panicked, line) = match step(conn, shared, handler) {
        Step::Partial => return Ok(None),
        Step::Error(e) => {
            log::debug!("{}: bad request: {e}", conn.peer);
            // Errors in a complete, body-less head leave the framing intact: answer and go on
            // with the next request. Every other error ends the connection.
            if let (false, Some(n)) = (e.must_close(), head_end(&conn.buf, 0)) {
                // Keep-alive only for HTTP/1.1 (the head is complete, so its first line is whole).
                let line_end = memchr::memchr(b'\n', &conn.buf).unwrap_or(0);
                let http11 = conn.buf[..line_end].ends_with(b"HTTP/1.1\r");
                conn.buf.drain(..n);
                let head = Head {
                    framing: Framing::None,
                    keep_alive: http11,
                    expect_continue: false,
                    head_only: false,
                    http10: false,
                };
                (
                    head,
                    Response::plain_status(e.status_code()),
                    false,
                    String::from("-"),
                )
            } else {
                send_error(conn, shared, e.status_code(), started, true);
                return Ok(Some(false));
            }
        }
        Step::Answered {
            head,
            consumed,
            response,
            panicked,
            line,
        } => {
            conn.buf.drain(..consumed);
            (head, response, panicked, line)
        }
        Step::NeedsBody { head, consumed } => {
            if let Err(status) = consume_body(conn, shared, head, consumed)? {
                send_error(conn, shared, status, started, true);
                return Ok(Some(false));
            }
            // The head is still at the start of the buffer: parse it again to hand it out.
            let mut headers = [EMPTY_HEADER; MAX_HEADERS];
            let (response, panicked, line) =
                match parse(&conn.buf[..consumed], &mut headers, &shared.config.limits) {
                    Ok(Status::Complete(req, _)) => {
                        let (r, p) = call_handler(conn.peer, handler, &req);
                        (r, p, access_line(shared, &req))
                    }
                    _ => (Response::plain_status(500), true, String::from("-")),
                };
            conn.buf.drain(..consumed);
            (head, response, panicked, line)
        }
    };
    let cfg = &shared.config;
    let close = !head.keep_alive
        || conn.served + 1 >= cfg.max_requests_per_connection
        || shared.stopping()
        || panicked;
    let status = response.status();
    let opts = WriteOptions {
        head_only: head.head_only,
        close,
        http10_keep_alive: head.http10 && !close,
    };
    let mut out = writer(conn, shared);
    let bytes = write_response(&mut out, response, opts)?;
    drop(out);
    conn.served += 1;
    conn.first_byte = if conn.buf.is_empty() {
        None
    } else {
        Some(Instant::now())
    };
    access_log(conn.peer, shared, &line, status, bytes, started);
    Ok(Some(!close))
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

/// Reads more body bytes into the buffer, blocking up to the body timeout.
/// `Ok(false)`: timed out; an EOF is an error.
fn fill_body(conn: &mut Conn, shared: &Shared) -> io::Result<bool> {
    let cfg = &shared.config;
    let guard = Blocking::new(&conn.stream, cfg.body_timeout, cfg.write_timeout)?;
    let start = conn.buf.len();
    conn.buf.resize(start + READ_CHUNK, 0);
    let result = loop {
        match (&conn.stream).read(&mut conn.buf[start..]) {
            Ok(0) => break Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => break Ok(start + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break Ok(start);
            }
            Err(e) => break Err(e),
        }
    };
    drop(guard);
    match result {
        Ok(len) => {
            conn.buf.truncate(len);
            Ok(len > start)
        }
        Err(e) => {
            conn.buf.truncate(start);
            Err(e)
        }
    }
}

/// Reads and discards the body that follows a head of `consumed` bytes, leaving the head (and any
/// pipelined bytes after the body) in the buffer. `Ok(Err(status))`: answer `status` and close.
fn consume_body(
    conn: &mut Conn,
    shared: &Shared,
    head: Head,
    consumed: usize,
) -> io::Result<Result<(), u16>> {
    let cfg = &shared.config;
    match head.framing {
        Framing::None => Ok(Ok(())),
        Framing::Length(n) => {
            if n > cfg.limits.max_body {
                return Ok(Err(413));
            }
            continue_if_expected(conn, shared, head)?;
            let mut left = n;
            loop {
                let have = (conn.buf.len() - consumed) as u64;
                let take = have.min(left) as usize;
                conn.buf.drain(consumed..consumed + take);
                left -= take as u64;
                if left == 0 {
                    return Ok(Ok(()));
                }
                if !fill_body(conn, shared)? {
                    return Ok(Err(408));
                }
            }
        }
        Framing::Chunked => {
            continue_if_expected(conn, shared, head)?;
            let mut decoder = ChunkedDecoder::new(cfg.limits.max_body);
            let mut sink = Vec::new();
            loop {
                match decoder.decode(&conn.buf[consumed..], &mut sink) {
                    Ok(status) => {
                        conn.buf.drain(consumed..consumed + status.consumed);
                        sink.clear();
                        if status.done {
                            return Ok(Ok(()));
                        }
                    }
                    Err(e) => return Ok(Err(e.status_code())),
                }
                if !fill_body(conn, shared)? {
                    return Ok(Err(408));
                }
            }
        }
    }
}

/// Sends `100 Continue` if the client asked for it (the parser already ignores the expectation for
/// HTTP/1.0) and the body has not started arriving.
fn continue_if_expected(conn: &mut Conn, shared: &Shared, head: Head) -> io::Result<()> {
    if head.expect_continue {
        let mut out = ResponseWriter {
            stream: &conn.stream,
            write_timeout: shared.config.write_timeout,
            blocking: None,
        };
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    Ok(())
}

/// Sends a plain error response with `Connection: close`; with `linger`, drains what the client
/// still sends for a short while so the response is not destroyed by a reset.
fn send_error(conn: &mut Conn, shared: &Shared, status: u16, started: Instant, linger: bool) {
    let opts = WriteOptions {
        head_only: false,
        close: true,
        http10_keep_alive: false,
    };
    let mut out = ResponseWriter {
        stream: &conn.stream,
        write_timeout: shared.config.write_timeout,
        blocking: None,
    };
    match write_response(&mut out, Response::plain_status(status), opts) {
        Ok(bytes) => access_log(conn.peer, shared, "-", status, bytes, started),
        Err(e) => log::debug!("{}: could not send {status}: {e}", conn.peer),
    }
    drop(out);
    let _ = conn.stream.shutdown(Shutdown::Write);
    if linger {
        let Ok(_guard) = Blocking::new(
            &conn.stream,
            Duration::from_millis(50),
            shared.config.write_timeout,
        ) else {
            return;
        };
        let deadline = Instant::now() + LINGER_TIME;
        let mut drained = 0;
        let mut scratch = [0u8; 4096];
        while drained < LINGER_BYTES && Instant::now() < deadline {
            match (&conn.stream).read(&mut scratch) {
                Ok(0) => break,
                Ok(n) => drained += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
    }
}

fn access_log(
    peer: SocketAddr,
    shared: &Shared,
    line: &str,
    status: u16,
    bytes: u64,
    started: Instant,
) {
    if shared.config.access_log {
        log::info!(
            target: "poolserve::access",
            "{peer} \"{line}\" {status} {bytes} {:.3}ms",
            started.elapsed().as_secs_f64() * 1e3
        );
    }
}

/// The request line for the access log, with control bytes, quotes and backslashes escaped.
/// Empty (and allocation-free) when the access log is off.
fn access_line(shared: &Shared, req: &Request<'_, '_>) -> String {
    if !shared.config.access_log {
        return String::new();
    }
    let version = match req.version {
        Version::Http10 => "HTTP/1.0",
        Version::Http11 => "HTTP/1.1",
    };
    format!(
        "{} {} {}",
        req.method,
        escape(req.target.as_bytes()),
        version
    )
}

/// Escapes bytes for a log line: printable ASCII as is, `"` and `\` escaped, everything else `\xHH`.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}
