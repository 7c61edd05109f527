//! One connection's life on a worker: read a head, frame the body, call the handler, write the
//! response; repeat while keep-alive allows.
//!
//! Data flows one way: socket → [`parse`](crate::http::parse) → [`Handler`] →
//! [`write_response`]. Timeouts are enforced here with short read slices, so a worker blocked on
//! a silent client notices the deadline, a shutdown, or clients waiting for a worker.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::Shared;
use crate::handler::Handler;
use crate::http::{
    ChunkedDecoder, EMPTY_HEADER, Framing, ParseError, Request, Response, Status, Version,
    WriteOptions, parse, write_response,
};

/// How often a blocked read wakes to re-check deadlines and shutdown.
const READ_SLICE: Duration = Duration::from_millis(100);
/// How much is read per `read` call.
const READ_CHUNK: usize = 8 * 1024;
/// After an early error response, how long (and how much) to drain what the client still sends, so
/// that closing does not reset the connection before the client reads the response (RFC 9112 §9.6).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 64 * 1024;
/// Header slots per request; [`Limits::max_headers`](crate::http::Limits::max_headers) above this
/// is capped to it.
const MAX_HEADERS: usize = crate::http::DEFAULT_MAX_HEADERS;

/// What a request needs once its head has been parsed (copied out, so the buffer can be reused).
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

/// Why reading stopped.
enum ReadEnd {
    /// Got bytes.
    Data,
    /// The peer closed (or reset) the connection.
    Closed,
    /// The deadline passed.
    TimedOut,
    /// The server is shutting down or clients are waiting for a worker (idle connections only).
    Yield,
}

pub(crate) struct Connection<'a> {
    stream: TcpStream,
    peer: SocketAddr,
    shared: &'a Shared,
    handler: &'a dyn Handler,
    buf: Vec<u8>,
}

impl<'a> Connection<'a> {
    pub(crate) fn new(
        stream: TcpStream,
        peer: SocketAddr,
        shared: &'a Shared,
        handler: &'a dyn Handler,
    ) -> Self {
        Connection {
            stream,
            peer,
            shared,
            handler,
            buf: Vec::new(),
        }
    }

    /// Serves requests until the connection closes. Never panics on client input.
    pub(crate) fn run(mut self) {
        let cfg = &self.shared.config;
        let _ = self.stream.set_nodelay(true);
        let _ = self.stream.set_write_timeout(Some(cfg.write_timeout));
        let mut served = 0usize;
        loop {
            match self.serve_one(served) {
                Ok(true) => served += 1,
                Ok(false) => break,
                Err(e) => {
                    log::debug!("{}: connection error: {e}", self.peer);
                    break;
                }
            }
        }
    }

    /// Reads into the buffer until `deadline`. Idle waits (`idle == true`) also end when the server
    /// stops or other clients wait for a worker.
    fn fill(&mut self, deadline: Instant, idle: bool) -> io::Result<ReadEnd> {
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        let result = loop {
            if idle && (self.shared.stopping() || self.shared.waiting() > 0) {
                break Ok(ReadEnd::Yield);
            }
            let now = Instant::now();
            if now >= deadline {
                break Ok(ReadEnd::TimedOut);
            }
            self.stream
                .set_read_timeout(Some((deadline - now).min(READ_SLICE)))?;
            match self.stream.read(&mut self.buf[start..]) {
                Ok(0) => break Ok(ReadEnd::Closed),
                Ok(n) => {
                    self.buf.truncate(start + n);
                    return Ok(ReadEnd::Data);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    break Ok(ReadEnd::Closed);
                }
                Err(e) => break Err(e),
            }
        };
        self.buf.truncate(start);
        result
    }

    /// Serves one request. `Ok(true)`: served, keep going; `Ok(false)`: close.
    fn serve_one(&mut self, served: usize) -> io::Result<bool> {
        let cfg = &self.shared.config;
        let limits = cfg.limits;
        let started = Instant::now();
        // Phase 1: the head. Idle until the first byte; then the header deadline runs.
        let mut first_byte: Option<Instant> = if self.buf.is_empty() {
            None
        } else {
            Some(started)
        };
        let (head, consumed, response) = loop {
            if !self.buf.is_empty() {
                let mut headers = [EMPTY_HEADER; MAX_HEADERS];
                match parse(&self.buf, &mut headers, &limits) {
                    Ok(Status::Complete(req, n)) => {
                        let head = Head::of(&req);
                        // A request without a body is answered straight away (no second parse).
                        let response =
                            (head.framing == Framing::None).then(|| self.call_handler(&req));
                        let line = access_line(&req);
                        break (head, n, response.map(|r| (r, line)));
                    }
                    Ok(Status::Partial) => {}
                    Err(e) => return self.reject(e, started),
                }
            }
            let (deadline, idle) = match first_byte {
                Some(t) => (t + cfg.header_timeout, false),
                None => (started + cfg.keep_alive_timeout, true),
            };
            match self.fill(deadline, idle)? {
                ReadEnd::Data => {
                    first_byte.get_or_insert_with(Instant::now);
                }
                ReadEnd::Closed | ReadEnd::Yield => return Ok(false),
                ReadEnd::TimedOut if first_byte.is_none() => return Ok(false), // idle keep-alive: silent close
                ReadEnd::TimedOut => {
                    log::debug!("{}: header timeout", self.peer);
                    self.send_error(408, started, "-");
                    return Ok(false);
                }
            }
        };
        // Phase 2: the body, read and discarded within the limit (handlers see the head only).
        let ((response, panicked), line) = match response {
            Some(r) => {
                self.buf.drain(..consumed);
                r
            }
            None => {
                if let Err(status) = self.consume_body(head, consumed)? {
                    self.send_error(status, started, "-");
                    return Ok(false);
                }
                // The head is still at the start of the buffer: parse it again to hand it out.
                let mut headers = [EMPTY_HEADER; MAX_HEADERS];
                let r = match parse(&self.buf[..consumed], &mut headers, &limits) {
                    Ok(Status::Complete(req, _)) => (self.call_handler(&req), access_line(&req)),
                    _ => ((Response::plain_status(500), true), String::from("-")),
                };
                self.buf.drain(..consumed);
                r
            }
        };
        // Phase 3: the response.
        let close = !head.keep_alive
            || served + 1 >= cfg.max_requests_per_connection
            || self.shared.stopping()
            || panicked;
        let status = response.status();
        let opts = WriteOptions {
            head_only: head.head_only,
            close,
            http10_keep_alive: head.http10 && !close,
        };
        let bytes = write_response(&mut self.stream, response, opts)?;
        self.access_log(&line, status, bytes, started);
        Ok(!close)
    }

    /// Calls the handler. A panic becomes a 500, and `true` (close the connection afterwards).
    fn call_handler(&self, req: &Request<'_, '_>) -> (Response, bool) {
        match panic::catch_unwind(AssertUnwindSafe(|| self.handler.handle(req))) {
            Ok(resp) => (resp, false),
            Err(_) => {
                log::error!(
                    "{}: handler panicked on {} {}",
                    self.peer,
                    req.method,
                    escape(req.target.as_bytes())
                );
                (Response::plain_status(500), true)
            }
        }
    }

    /// Reads and discards the body that follows a head of `consumed` bytes, leaving the head (and
    /// any pipelined bytes after the body) in the buffer. `Ok(Err(status))` means: answer `status`
    /// and close.
    fn consume_body(&mut self, head: Head, consumed: usize) -> io::Result<Result<(), u16>> {
        let cfg = &self.shared.config;
        match head.framing {
            Framing::None => Ok(Ok(())),
            Framing::Length(n) => {
                if n > cfg.limits.max_body {
                    return Ok(Err(413));
                }
                self.continue_if_expected(head)?;
                let mut left = n;
                loop {
                    let have = (self.buf.len() - consumed) as u64;
                    let take = have.min(left) as usize;
                    self.buf.drain(consumed..consumed + take);
                    left -= take as u64;
                    if left == 0 {
                        return Ok(Ok(()));
                    }
                    match self.fill(Instant::now() + cfg.body_timeout, false)? {
                        ReadEnd::Data => {}
                        ReadEnd::TimedOut => return Ok(Err(408)),
                        ReadEnd::Closed | ReadEnd::Yield => {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                    }
                }
            }
            Framing::Chunked => {
                self.continue_if_expected(head)?;
                let mut decoder = ChunkedDecoder::new(cfg.limits.max_body);
                let mut sink = Vec::new();
                loop {
                    match decoder.decode(&self.buf[consumed..], &mut sink) {
                        Ok(status) => {
                            self.buf.drain(consumed..consumed + status.consumed);
                            sink.clear();
                            if status.done {
                                return Ok(Ok(()));
                            }
                        }
                        Err(e) => return Ok(Err(e.status_code())),
                    }
                    match self.fill(Instant::now() + cfg.body_timeout, false)? {
                        ReadEnd::Data => {}
                        ReadEnd::TimedOut => return Ok(Err(408)),
                        ReadEnd::Closed | ReadEnd::Yield => {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                    }
                }
            }
        }
    }

    /// Sends `100 Continue` if the client asked for it (HTTP/1.1 only; the parser already ignores
    /// the expectation for HTTP/1.0) and nothing of the body has arrived yet.
    fn continue_if_expected(&mut self, head: Head) -> io::Result<()> {
        if head.expect_continue {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        Ok(())
    }

    /// Answers a parse error and closes (with a lingering drain so the client sees the answer).
    fn reject(&mut self, e: ParseError, started: Instant) -> io::Result<bool> {
        log::debug!("{}: bad request: {e}", self.peer);
        self.send_error(e.status_code(), started, "-");
        Ok(false)
    }

    /// Sends a plain error response with `Connection: close`, then closes gracefully.
    fn send_error(&mut self, status: u16, started: Instant, line: &str) {
        let resp = Response::plain_status(status);
        let opts = WriteOptions {
            head_only: false,
            close: true,
            http10_keep_alive: false,
        };
        match write_response(&mut self.stream, resp, opts) {
            Ok(bytes) => self.access_log(line, status, bytes, started),
            Err(e) => log::debug!("{}: could not send {status}: {e}", self.peer),
        }
        self.linger();
    }

    /// Half-closes, then drains what the client still sends (bounded in time and bytes), so the
    /// kernel does not answer unread data with a reset that destroys the response in flight.
    fn linger(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER_TIME;
        let mut drained = 0;
        let mut scratch = [0u8; 4096];
        while drained < LINGER_BYTES && Instant::now() < deadline {
            let _ = self.stream.set_read_timeout(Some(READ_SLICE));
            match self.stream.read(&mut scratch) {
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

    fn access_log(&self, line: &str, status: u16, bytes: u64, started: Instant) {
        if self.shared.config.access_log {
            log::info!(
                target: "poolserve::access",
                "{} \"{}\" {} {} {:.3}ms",
                self.peer,
                line,
                status,
                bytes,
                started.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}

/// The request line for the access log, with control bytes, quotes and backslashes escaped.
fn access_line(req: &Request<'_, '_>) -> String {
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
