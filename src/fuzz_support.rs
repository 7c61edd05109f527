//! The checks behind the cargo-fuzz targets in `fuzz/`, kept in the library so that
//! `tests/fuzz_corpus.rs` can replay every corpus and regression input through the very same
//! assertions on stable Rust, without cargo-fuzz.
//!
//! Each function panics (via `assert!`) when its property is violated; fuzzers and the replay
//! test treat a panic as a failure. Not part of the public API: compiled only with the `fuzzing`
//! feature, which `fuzz/Cargo.toml` and this crate's dev-dependency on itself (for
//! `tests/fuzz_corpus.rs` and `tests/parser_cases.rs`) enable.

use crate::http::{
    ChunkedDecoder, ChunkedLimits, EMPTY_HEADER, Framing, Header, Limits, MAX_FIELD_LINE,
    ParseError, Status, Version, head_end, parse, parse_from,
};

/// An owned summary of a parse result, comparable across calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `Status::Partial`.
    Partial,
    /// `Status::Complete` with everything the request exposes.
    Complete {
        /// Method.
        method: String,
        /// Target.
        target: String,
        /// Version.
        version: Version,
        /// Field lines as (name, value).
        headers: Vec<(String, Vec<u8>)>,
        /// Framing.
        framing: Framing,
        /// Keep-alive decision.
        keep_alive: bool,
        /// Expect: 100-continue.
        expect_continue: bool,
        /// Head length.
        consumed: usize,
    },
    /// An error.
    Error(ParseError),
}

/// Limits small enough that a fuzzer reaches every limit quickly.
#[must_use]
pub fn tight_limits() -> Limits {
    Limits {
        max_request_line: 64,
        max_head: 512,
        max_headers: 8,
        max_body: 1000,
    }
}

/// Summarises one result.
#[must_use]
pub fn summarize(result: Result<Status<crate::http::Request<'_, '_>>, ParseError>) -> Outcome {
    match result {
        Ok(Status::Partial) => Outcome::Partial,
        Ok(Status::Complete(req, consumed)) => Outcome::Complete {
            method: req.method.to_owned(),
            target: req.target.to_owned(),
            version: req.version,
            headers: req
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_vec()))
                .collect(),
            framing: req.framing,
            keep_alive: req.keep_alive,
            expect_continue: req.expect_continue,
            consumed,
        },
        Err(e) => Outcome::Error(e),
    }
}

/// Parses `data` with `limits` and summarises the result.
#[must_use]
pub fn outcome(data: &[u8], limits: &Limits) -> Outcome {
    let mut headers = [EMPTY_HEADER; 128];
    summarize(parse(data, &mut headers, limits))
}

/// Parses `data` with `parse_from(data, prev_len)` and summarises the result.
#[must_use]
pub fn outcome_from(data: &[u8], prev_len: usize, limits: &Limits) -> Outcome {
    let mut headers = [EMPTY_HEADER; 128];
    summarize(parse_from(data, prev_len, &mut headers, limits))
}

/// Target `parse_request`: no panic; `Complete(n)` implies `n <= len` and `n` equals
/// [`head_end`]; results respect the limits; error metadata is consistent.
pub fn parse_request(data: &[u8]) {
    for limits in [Limits::default(), tight_limits()] {
        let mut headers = [EMPTY_HEADER; 128];
        match parse(data, &mut headers, &limits) {
            Ok(Status::Complete(req, n)) => {
                assert!(n <= data.len(), "consumed {n} > len {}", data.len());
                assert!(n <= limits.max_head, "head {n} over max_head");
                assert_eq!(head_end(data, 0), Some(n), "head_end disagrees");
                assert!(req.headers.len() <= limits.max_headers);
                assert!(!req.method.is_empty() && !req.target.is_empty());
                if let Framing::Length(len) = req.framing {
                    assert!(len <= limits.max_body);
                }
                if req.version == Version::Http10 {
                    assert!(!req.expect_continue);
                }
                check_header_values(req.headers);
            }
            Ok(Status::Partial) => {
                assert!(data.len() <= limits.max_head, "Partial beyond max_head");
            }
            Err(e) => {
                assert!(matches!(e.status_code(), 400 | 413 | 414 | 431 | 501 | 505));
                assert!(!e.reason().is_empty() && !e.to_string().is_empty());
                if !e.must_close() {
                    let end = head_end(data, 0);
                    assert!(end.is_some_and(|n| n <= data.len() && n <= limits.max_head));
                }
                if e == ParseError::HeadersTooLarge {
                    assert!(data.len() > limits.max_head.min(MAX_FIELD_LINE));
                }
                if e == ParseError::UriTooLong {
                    assert!(data.len() > limits.max_request_line);
                }
            }
        }
    }
}

fn check_header_values(headers: &[Header<'_>]) {
    for h in headers {
        assert!(!h.name.is_empty());
        assert!(!h.value.starts_with(b" ") && !h.value.starts_with(b"\t"));
        assert!(!h.value.ends_with(b" ") && !h.value.ends_with(b"\t"));
        assert!(!h.value.contains(&b'\r') && !h.value.contains(&b'\n'));
    }
}

/// Target `parse_request_split`: for any split point `k`, parsing `data[..k]` gives `Partial`
/// or exactly the result for `data` (so a prefix of a valid head is never an error), and
/// feeding growing prefixes through `parse_from` agrees with `parse`.
pub fn parse_request_split(data: &[u8]) {
    for limits in [Limits::default(), tight_limits()] {
        let full = outcome(data, &limits);
        let step = (data.len() / 96).max(1);
        let mut k = 0;
        while k <= data.len() {
            let part = outcome(&data[..k], &limits);
            assert!(
                part == Outcome::Partial || part == full,
                "prefix {k}: {part:?} vs full {full:?}"
            );
            k += step;
        }
        // Incremental feeding with irregular chunk sizes taken from the data itself.
        let mut prev = 0;
        let mut end = 0;
        let mut i = 0;
        while end < data.len() {
            let chunk = usize::from(data[i % data.len()] % 17) + 1;
            i += 1;
            end = (end + chunk).min(data.len());
            let inc = outcome_from(&data[..end], prev, &limits);
            match inc {
                Outcome::Partial => {
                    // parse_from may defer an error parse would report now, never a head.
                    let direct = outcome(&data[..end], &limits);
                    assert!(
                        !matches!(direct, Outcome::Complete { .. }),
                        "parse_from Partial at {end}, parse {direct:?}"
                    );
                    prev = end;
                }
                other => {
                    assert_eq!(other, full, "parse_from at {end} (prev {prev})");
                    return;
                }
            }
        }
        if let Outcome::Complete { .. } = full {
            // The loop must have returned: a complete head is always found by parse_from.
            assert!(
                data.is_empty(),
                "parse_from never completed; full = {full:?}"
            );
        }
    }
}

/// Target `chunked_decode`: the first byte picks limits and a slicing pattern; the rest is a
/// chunked body. Decoding in one call and in slices gives the same data, the same `consumed`
/// total and the same error; limits hold.
pub fn chunked_decode(data: &[u8]) {
    let Some((&knob, body)) = data.split_first() else {
        return;
    };
    let limits = if knob & 1 == 0 {
        ChunkedLimits::default()
    } else {
        ChunkedLimits {
            max_body: 64,
            max_extensions: 16,
            max_trailer_bytes: 32,
            max_trailer_fields: 2,
        }
    };
    let (whole_out, whole) = decode_in_slices(body, limits, &[body.len().max(1)]);
    let pattern = [usize::from(knob >> 1) % 7 + 1, 1, 3, 2];
    let (sliced_out, sliced) = decode_in_slices(body, limits, &pattern);
    let (byte_out, bytewise) = decode_in_slices(body, limits, &[1]);
    assert_eq!(whole, sliced, "result differs by slicing");
    assert_eq!(whole, bytewise, "result differs byte by byte");
    assert_eq!(whole_out, sliced_out, "output differs by slicing");
    assert_eq!(whole_out, byte_out, "output differs byte by byte");
    assert!(whole_out.len() as u64 <= limits.max_body);
    if let Ok((consumed, done)) = whole {
        assert!(consumed <= body.len());
        assert!(done || consumed == body.len());
    }
}

/// Feeds `body` to a fresh decoder in slices whose sizes cycle through `pattern`; returns the
/// output and `Ok((total consumed, done))` or the error.
fn decode_in_slices(
    body: &[u8],
    limits: ChunkedLimits,
    pattern: &[usize],
) -> (Vec<u8>, Result<(usize, bool), ParseError>) {
    let mut decoder = ChunkedDecoder::with_limits(limits);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut consumed = 0;
    let mut n = 0;
    while pos < body.len() {
        let len = pattern[n % pattern.len()].max(1);
        n += 1;
        let end = (pos + len).min(body.len());
        match decoder.decode(&body[pos..end], &mut out) {
            Ok(status) => {
                assert!(status.consumed <= end - pos);
                assert!(out.len() as u64 <= decoder.body_len());
                consumed += status.consumed;
                if status.done {
                    assert!(decoder.is_done());
                    return (out, Ok((consumed, true)));
                }
                assert_eq!(status.consumed, end - pos);
            }
            Err(e) => {
                assert_eq!(decoder.decode(b"0\r\n\r\n", &mut Vec::new()), Err(e));
                return (out, Err(e));
            }
        }
        pos = end;
    }
    (out, Ok((consumed, false)))
}

/// Target `resolve_path`: the first byte chooses whether hidden files are allowed, the rest is
/// a request target: any UTF-8 string, wider than what the parser lets through, because
/// `files::resolve` is public. A successful resolution is
/// always strictly under the root, made only of normal components that match the reported
/// segments, never hidden unless allowed; `Location`-style URL paths never start with `//`.
/// Errors are 400 or 404.
pub fn resolve_path(data: &[u8]) {
    use std::path::{Component, Path};

    let Some((&knob, rest)) = data.split_first() else {
        return;
    };
    let allow_hidden = knob & 1 == 1;
    // Any string, not only what the parser lets through: `resolve` is public.
    let Ok(target) = std::str::from_utf8(rest) else {
        return;
    };
    let root = Path::new("/srv/www");
    match crate::files::resolve(root, target, allow_hidden) {
        Ok(resolved) => {
            let Ok(below) = resolved.path.strip_prefix(root) else {
                panic!("{:?} escapes the root", resolved.path);
            };
            let components: Vec<_> = below.components().collect();
            assert_eq!(components.len(), resolved.segments.len());
            for (component, segment) in components.iter().zip(&resolved.segments) {
                let Component::Normal(name) = component else {
                    panic!("non-normal component {component:?} in {:?}", resolved.path);
                };
                assert_eq!(name.to_str(), Some(segment.as_str()));
                assert!(!segment.is_empty() && segment != "." && segment != "..");
                assert!(!segment.contains(['/', '\\', '\0', ':']));
                assert!(allow_hidden || !segment.starts_with('.'));
            }
            for slash in [false, true] {
                let url = resolved.url_path(slash);
                assert!(url.starts_with('/') && !url.starts_with("//"), "{url}");
            }
        }
        Err(e) => assert!(matches!(e.status_code(), 400 | 404)),
    }
}

/// Target `conn`: one connection's state machine ([`crate::server`]'s `conn.rs`) driven through
/// an in-memory socket by a script.
///
/// The input is `[knobs, read_chunk, write_chunk, steps, (op, size) × steps, client bytes…]`:
///
/// * `knobs`: bits 0–1 when the handler wants the body (always, never, by target length,
///   always); bit 2 a body budget as small as the body limit; bit 3 the access log; bits 4–5
///   requests per connection (1000, 1, 2, 3); bit 6 a 16-byte body limit instead of
///   [`tight_limits`]'s.
/// * the steps, each taken by the next socket call or event-loop decision of its kind
///   (`op % 3`): a read (`op / 3 % 8`: 0–3 up to `size` bytes (0: all), 4 `WouldBlock`,
///   5 `Interrupted`, 6 a reset, 7 EOF), a write (`op / 3 % 5`: 0–1 accepts up to `size` bytes
///   (0: all), 2 `WouldBlock`, 3 `Interrupted`, 4 a broken pipe) or what happens to a parked
///   connection (`op / 3 % 4`: 0 readiness, 1 readiness with the peer's close, 2 its deadline
///   passes, 3 the server starts shutting down);
/// * once a kind's steps are used up, reads return `read_chunk` bytes (0: all) and EOF at the
///   end of the client's bytes, writes accept `write_chunk` bytes (0: all), and a parked
///   connection is served again when its readiness comes.
///
/// The handler echoes `method target body-length` in an `X-Echo` header and in the body (with
/// the request's body after it); `/big…` answers a 70,000-byte in-memory body and `/file…` a
/// 70,000-byte file (sent through the copy fallback: the in-memory socket has no `sendfile`).
///
/// Checked: no panic; the connection's memory (unconsumed input, the body being read, the
/// response being written) stays within `max_head` + the largest read, `max_body`, and one
/// response; nothing is written after the write side is shut down; what was written parses as
/// complete responses (only the last may be cut short, and only by a write error or a write
/// timeout); they answer, in order, a prefix of the requests found by parsing the whole input
/// with the crate's parser and framing at message boundaries (so no request hidden in a body is
/// ever answered), with the same targets and bodies; nothing follows a `Connection: close`
/// response; a `408` comes only after a deadline; a framing error is the last thing answered;
/// and when nothing cut the exchange short, every request is answered unless a response says
/// `Connection: close`.
pub fn conn_script(data: &[u8]) {
    conn_fuzz::run(data);
}

mod conn_fuzz {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::fs::File;
    use std::io;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::rc::Rc;
    use std::sync::OnceLock;

    use super::tight_limits;
    use crate::handler::Handler;
    use crate::http::{
        Body, ChunkedDecoder, EMPTY_HEADER, Framing, Limits, Request, Response, Status, head_end,
        parse,
    };
    use crate::server::Config;
    use crate::server::conn::{Conn, OnDeadline, Outcome, Standalone, WaitFor, Wire, serve_with};

    /// Size of the `/big` and `/file` bodies: above the 64 KiB the writer copies behind the head.
    const BIG_LEN: usize = 70_000;
    /// More dispatches than any script can cause: beyond this the connection makes no progress.
    const MAX_DISPATCHES: usize = 200_000;

    #[derive(Debug, Clone, Copy)]
    enum ReadStep {
        Data(usize),
        WouldBlock,
        Interrupted,
        Reset,
        Eof,
    }

    #[derive(Debug, Clone, Copy)]
    enum WriteStep {
        Accept(usize),
        WouldBlock,
        Interrupted,
        BrokenPipe,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Event {
        Ready,
        ReadyClosed,
        Deadline,
        Stop,
    }

    /// The client and the socket between it and the connection.
    struct World {
        input: Vec<u8>,
        pos: usize,
        /// The client has closed its side: EOF after `input`.
        client_closed: bool,
        /// An EOF step: every read from now on is EOF.
        eof: bool,
        reads: VecDeque<ReadStep>,
        writes: VecDeque<WriteStep>,
        events: VecDeque<Event>,
        read_chunk: usize,
        write_chunk: usize,
        /// What the connection wrote.
        out: Vec<u8>,
        shut_write: bool,
        /// The largest read returned.
        max_read: usize,
        /// Something that may end the exchange early happened (a read error or EOF step, a
        /// deadline, shutdown, a write error).
        disrupted: bool,
        /// A write error was returned: the last response may be cut short.
        write_failed: bool,
    }

    impl World {
        fn next_event(&mut self) -> Option<Event> {
            self.events.pop_front()
        }
    }

    /// The in-memory socket.
    struct Mem(Rc<RefCell<World>>);

    impl Wire for Mem {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut w = self.0.borrow_mut();
            let left = w.input.len() - w.pos;
            let step = w.reads.pop_front();
            let want = match step {
                Some(ReadStep::Data(n)) => n,
                Some(ReadStep::WouldBlock) => return Err(io::ErrorKind::WouldBlock.into()),
                Some(ReadStep::Interrupted) => return Err(io::ErrorKind::Interrupted.into()),
                Some(ReadStep::Reset) => {
                    w.disrupted = true;
                    return Err(io::ErrorKind::ConnectionReset.into());
                }
                Some(ReadStep::Eof) => {
                    w.disrupted = true;
                    w.eof = true;
                    0
                }
                None => {
                    // Out of script: the client sends the rest and closes.
                    w.client_closed = true;
                    w.read_chunk
                }
            };
            if w.eof {
                return Ok(0);
            }
            if left == 0 {
                return if w.client_closed {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let want = if want == 0 { usize::MAX } else { want };
            let n = want.min(left).min(buf.len());
            let pos = w.pos;
            buf[..n].copy_from_slice(&w.input[pos..pos + n]);
            w.pos += n;
            w.max_read = w.max_read.max(n);
            Ok(n)
        }

        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            let mut w = self.0.borrow_mut();
            assert!(!w.shut_write, "write after the write side was shut down");
            assert!(!data.is_empty(), "empty write");
            let want = match w.writes.pop_front() {
                Some(WriteStep::Accept(n)) => n,
                Some(WriteStep::WouldBlock) => return Err(io::ErrorKind::WouldBlock.into()),
                Some(WriteStep::Interrupted) => return Err(io::ErrorKind::Interrupted.into()),
                Some(WriteStep::BrokenPipe) => {
                    w.disrupted = true;
                    w.write_failed = true;
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                None => w.write_chunk,
            };
            let want = if want == 0 { usize::MAX } else { want };
            let n = want.min(data.len());
            w.out.extend_from_slice(&data[..n]);
            Ok(n)
        }

        fn shutdown_write(&mut self) -> io::Result<()> {
            self.0.borrow_mut().shut_write = true;
            Ok(())
        }
    }

    /// When the handler wants a request's body.
    #[derive(Clone, Copy)]
    enum WantsBody {
        Always,
        Never,
        EvenTarget,
    }

    impl WantsBody {
        fn wants(self, target: &str) -> bool {
            match self {
                WantsBody::Always => true,
                WantsBody::Never => false,
                WantsBody::EvenTarget => target.len().is_multiple_of(2),
            }
        }
    }

    struct Echo(WantsBody);

    impl Handler for Echo {
        fn handle(&self, req: &Request<'_, '_>) -> Response {
            let echo = echo_line(req.method, req.target, req.body());
            let resp = Response::new(200)
                .header("Content-Type", "application/octet-stream")
                .header("X-Echo", echo);
            if req.target.starts_with("/file") {
                let Ok(file) = File::open(big_file()) else {
                    panic!("cannot open the /file body");
                };
                return resp.with_body(Body::File {
                    file,
                    offset: 0,
                    len: BIG_LEN as u64,
                });
            }
            resp.body(echo_body(req.method, req.target, req.body()))
        }

        fn wants_body(&self, req: &Request<'_, '_>) -> bool {
            self.0.wants(req.target)
        }
    }

    fn echo_line(method: &str, target: &str, body: &[u8]) -> String {
        format!("{method} {target} {}", body.len())
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// The body the handler sends.
    fn echo_body(method: &str, target: &str, body: &[u8]) -> Vec<u8> {
        if target.starts_with("/file") {
            return pattern(BIG_LEN);
        }
        let mut out = echo_line(method, target, body).into_bytes();
        out.push(b'\n');
        out.extend_from_slice(body);
        if target.starts_with("/big") {
            out.resize(BIG_LEN, b'.');
        }
        out
    }

    /// A file of `BIG_LEN` pattern bytes, made once per process.
    fn big_file() -> &'static PathBuf {
        static PATH: OnceLock<PathBuf> = OnceLock::new();
        PATH.get_or_init(|| {
            let path = std::env::temp_dir()
                .join(format!("poolserve-fuzz-conn-{}.bin", std::process::id()));
            std::fs::write(&path, pattern(BIG_LEN)).expect("write the /file body");
            path
        })
    }

    /// Whether a response closes the connection.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Close {
        Yes,
        No,
        /// Either, depending on how much had arrived when it was answered.
        Maybe,
    }

    /// What the connection is expected to answer, request by request.
    #[derive(Debug)]
    enum Expected {
        /// The handler's answer.
        Answer {
            method: String,
            target: String,
            body: Vec<u8>,
            close: Close,
            /// Or, depending on how much had arrived, this error instead (and close).
            or_error: Option<u16>,
        },
        /// An error response.
        Error { status: u16, close: Close },
    }

    /// The requests in `input`, found at message boundaries with the crate's parser, framing
    /// and chunked decoder, as the connection answers them when all of `input` has arrived.
    fn expected(
        input: &[u8],
        limits: &Limits,
        wants: WantsBody,
        max_requests: usize,
    ) -> Vec<Expected> {
        let mut list = Vec::new();
        let mut pos = 0;
        let mut served = 0usize;
        while pos < input.len() {
            let rest = &input[pos..];
            let mut headers = [EMPTY_HEADER; crate::http::DEFAULT_MAX_HEADERS];
            let (req, consumed) = match parse(rest, &mut headers, limits) {
                Ok(Status::Partial) => break,
                Ok(Status::Complete(req, consumed)) => (req, consumed),
                Err(e) => {
                    let status = e.status_code();
                    if let (false, Some(n)) = (e.must_close(), head_end(rest, 0)) {
                        let line_end = memchr::memchr(b'\n', rest).unwrap_or(0);
                        let http11 = rest[..line_end].ends_with(b"HTTP/1.1\r");
                        served += 1;
                        let close = !http11 || served >= max_requests;
                        list.push(Expected::Error {
                            status,
                            close: if close { Close::Yes } else { Close::No },
                        });
                        if close {
                            break;
                        }
                        pos += n;
                        continue;
                    }
                    list.push(Expected::Error {
                        status,
                        close: Close::Yes,
                    });
                    break;
                }
            };
            served += 1;
            let close = !req.keep_alive || served >= max_requests;
            let answer = |body: Vec<u8>, close: Close, or_error: Option<u16>| Expected::Answer {
                method: req.method.to_owned(),
                target: req.target.to_owned(),
                body,
                close,
                or_error,
            };
            let after = &rest[consumed..];
            // The body's end (relative to `after`), or why there is none.
            let body: Result<Option<(usize, Vec<u8>)>, u16> = match req.framing {
                Framing::None => Ok(Some((0, Vec::new()))),
                Framing::Length(n) => Ok(usize::try_from(n)
                    .ok()
                    .filter(|&n| n <= after.len())
                    .map(|n| (n, after[..n].to_vec()))),
                Framing::Chunked => {
                    let mut decoder = ChunkedDecoder::new(limits.max_body);
                    let mut sink = Vec::new();
                    match decoder.decode(after, &mut sink) {
                        Ok(s) if s.done => Ok(Some((s.consumed, sink))),
                        Ok(_) => Ok(None),
                        Err(e) => Err(e.status_code()),
                    }
                }
            };
            let close_if = |c: bool| if c { Close::Yes } else { Close::No };
            if req.framing == Framing::None || wants.wants(req.target) {
                match body {
                    Ok(Some((len, body))) => {
                        list.push(answer(body, close_if(close), None));
                        if close {
                            break;
                        }
                        pos += consumed + len;
                    }
                    Ok(None) => break,
                    Err(status) => {
                        list.push(Expected::Error {
                            status,
                            close: Close::Yes,
                        });
                        break;
                    }
                }
            } else {
                // Answered from the head; the connection goes on only if the whole body had
                // arrived by then.
                match body {
                    Ok(Some((len, _))) => {
                        let c = if close { Close::Yes } else { Close::Maybe };
                        list.push(answer(Vec::new(), c, None));
                        if close {
                            break;
                        }
                        pos += consumed + len;
                    }
                    Ok(None) => {
                        list.push(answer(Vec::new(), Close::Yes, None));
                        break;
                    }
                    Err(status) => {
                        list.push(answer(Vec::new(), Close::Yes, Some(status)));
                        break;
                    }
                }
            }
        }
        list
    }

    /// One response parsed from what the connection wrote.
    #[derive(Debug)]
    struct Parsed {
        status: u16,
        close: bool,
        echo: Option<String>,
        body: Vec<u8>,
    }

    /// Parses `out` into responses; the second value says that the bytes after them are not a
    /// complete response. `head_only(i)`: the `i`th response answers a `HEAD` request.
    fn parse_responses(out: &[u8], head_only: impl Fn(usize) -> bool) -> (Vec<Parsed>, bool) {
        let mut list = Vec::new();
        let mut pos = 0;
        while pos < out.len() {
            let rest = &out[pos..];
            let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
                return (list, true);
            };
            let head = std::str::from_utf8(&rest[..end]).expect("response head is UTF-8");
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or("");
            assert!(
                status_line.starts_with("HTTP/1.1 ") && status_line.len() >= 12,
                "bad status line {status_line:?}"
            );
            let status: u16 = status_line[9..12].parse().expect("status code");
            let (mut length, mut close, mut echo) = (None, false, None);
            for line in lines {
                let (name, value) = line.split_once(": ").expect("header line");
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => {
                        assert!(length.is_none(), "two Content-Length");
                        length = Some(value.parse::<usize>().expect("Content-Length"));
                    }
                    "connection" => close = value == "close",
                    "x-echo" => echo = Some(value.to_owned()),
                    "transfer-encoding" => panic!("chunked response"),
                    _ => {}
                }
            }
            if (100..200).contains(&status) {
                assert_eq!(&rest[..end + 4], b"HTTP/1.1 100 Continue\r\n\r\n");
                pos += end + 4;
                continue;
            }
            let length = length.expect("a response without Content-Length");
            let body_len = if status == 200 && head_only(list.len()) {
                0
            } else {
                length
            };
            let body_start = end + 4;
            if rest.len() < body_start + body_len {
                return (list, true);
            }
            list.push(Parsed {
                status,
                close,
                echo,
                body: rest[body_start..body_start + body_len].to_vec(),
            });
            pos += body_start + body_len;
        }
        (list, false)
    }

    pub(super) fn run(data: &[u8]) {
        let [knobs, read_chunk, write_chunk, steps, rest @ ..] = data else {
            return;
        };
        let steps = usize::from(*steps);
        let (script, input) = rest.split_at((2 * steps).min(rest.len()));
        let wants = match knobs & 3 {
            1 => WantsBody::Never,
            2 => WantsBody::EvenTarget,
            _ => WantsBody::Always,
        };
        let mut limits = tight_limits();
        if knobs & 0x40 != 0 {
            limits.max_body = 16;
        }
        let config = Config {
            limits,
            // 0 is raised to max_body.
            max_buffered_body: if knobs & 4 != 0 { 0 } else { u64::MAX },
            access_log: knobs & 8 != 0,
            max_requests_per_connection: [1000, 1, 2, 3][usize::from(knobs >> 4 & 3)],
            ..Config::default()
        };

        let mut world = World {
            input: input.to_vec(),
            pos: 0,
            client_closed: false,
            eof: false,
            reads: VecDeque::new(),
            writes: VecDeque::new(),
            events: VecDeque::new(),
            read_chunk: usize::from(*read_chunk),
            write_chunk: usize::from(*write_chunk),
            out: Vec::new(),
            shut_write: false,
            max_read: 0,
            disrupted: false,
            write_failed: false,
        };
        for pair in script.chunks_exact(2) {
            let (op, size) = (pair[0], usize::from(pair[1]));
            let sub = op / 3;
            match op % 3 {
                0 => world.reads.push_back(match sub % 8 {
                    0..=3 => ReadStep::Data(size),
                    4 => ReadStep::WouldBlock,
                    5 => ReadStep::Interrupted,
                    6 => ReadStep::Reset,
                    _ => ReadStep::Eof,
                }),
                1 => world.writes.push_back(match sub % 5 {
                    0 | 1 => WriteStep::Accept(size),
                    2 => WriteStep::WouldBlock,
                    3 => WriteStep::Interrupted,
                    _ => WriteStep::BrokenPipe,
                }),
                _ => world.events.push_back(match sub % 4 {
                    0 => Event::Ready,
                    1 => Event::ReadyClosed,
                    2 => Event::Deadline,
                    _ => Event::Stop,
                }),
            }
        }
        let world = Rc::new(RefCell::new(world));
        let server = Standalone::new(config.clone());
        let cx = server.ctx();
        let handler = Echo(wants);
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let max_response = 512
            + limits.max_request_line * 2
            + BIG_LEN.max(
                usize::try_from(limits.max_body).unwrap_or(usize::MAX)
                    + limits.max_request_line
                    + 32,
            );

        let mut conn = Conn::new(Mem(Rc::clone(&world)), peer);
        let (mut peer_closed, mut timed_out) = (false, false);
        // A 408 may be sent (a deadline with `OnDeadline::Answer` was delivered).
        let mut answered_deadline = false;
        // A write timeout closed the connection: the last response may be cut short.
        let mut write_timeout = false;
        let mut stopped = false;
        let mut lone_budget_wait = false;
        let mut dispatches = 0;
        loop {
            dispatches += 1;
            assert!(
                dispatches < MAX_DISPATCHES,
                "the connection makes no progress"
            );
            let (back, wait, again) = match serve_with(conn, &cx, &handler, peer_closed, timed_out)
            {
                Outcome::Closed => break,
                Outcome::Park { conn, wait, again } => (conn, wait, again),
            };
            (peer_closed, timed_out) = (false, false);
            let held = back.held();
            let max_read = world.borrow().max_read;
            assert!(
                held.buf <= limits.max_head + max_read,
                "{held:?}: more unconsumed input than max_head {} + the largest read {max_read}",
                limits.max_head
            );
            assert!(
                held.body as u64 <= limits.max_body,
                "{held:?}: body over max_body"
            );
            assert!(held.out <= max_response, "{held:?}: output over a response");
            conn = back;
            if again {
                continue;
            }
            let scripted = world.borrow_mut().next_event();
            let event = match scripted {
                Some(e) => e,
                None if wait.what == WaitFor::Tick => {
                    // Out of script, a connection alone waits for body budget nobody else holds:
                    // nothing will release it before its deadline.
                    lone_budget_wait = true;
                    Event::Deadline
                }
                None => Event::Ready,
            };
            match event {
                Event::Ready => {}
                Event::ReadyClosed => {
                    world.borrow_mut().client_closed = true;
                    peer_closed = true;
                }
                Event::Deadline => {
                    // A scripted deadline may cut the exchange short; the one after a lone
                    // budget wait is checked below.
                    world.borrow_mut().disrupted |= scripted.is_some();
                    match wait.on_deadline {
                        OnDeadline::Close => {
                            write_timeout = wait.what == WaitFor::Write;
                            drop(conn);
                            break;
                        }
                        OnDeadline::Answer => {
                            answered_deadline = true;
                            timed_out = true;
                        }
                    }
                }
                Event::Stop => {
                    world.borrow_mut().disrupted = true;
                    stopped = true;
                    server.stop();
                    if wait.what != WaitFor::Write {
                        // The event loop closes parked connections not writing a response.
                        drop(conn);
                        break;
                    }
                }
            }
        }

        let world = world.borrow();
        let expect = expected(
            &world.input,
            &limits,
            wants,
            config.max_requests_per_connection,
        );
        let head_only = |i: usize| matches!(expect.get(i), Some(Expected::Answer { method, .. }) if method == "HEAD");
        let (got, cut) = parse_responses(&world.out, head_only);
        let cut_ok = world.write_failed || write_timeout;
        assert!(!cut || cut_ok, "a response was cut short: {:?}", world.out);
        for (i, r) in got.iter().enumerate() {
            let last = i + 1 == got.len();
            if r.close {
                assert!(
                    last && !cut,
                    "bytes after a `Connection: close` response (#{i})"
                );
            }
            if r.status == 408 {
                assert!(answered_deadline, "408 without a deadline");
                assert!(r.close && last, "408 not the last response");
                continue;
            }
            match expect.get(i) {
                None => panic!(
                    "response #{i} ({} {:?}) to a request the client never sent at a message \
                     boundary; expected {expect:?}",
                    r.status, r.echo
                ),
                Some(Expected::Error { status, close }) => {
                    assert_eq!(
                        r.status, *status,
                        "response #{i}: {r:?}, expected {expect:?}"
                    );
                    if *close == Close::Yes {
                        assert!(r.close, "error #{i} without Connection: close");
                    } else if r.close {
                        assert!(stopped, "error #{i} closes unexpectedly");
                    }
                }
                Some(Expected::Answer {
                    method,
                    target,
                    body,
                    close,
                    or_error,
                }) => {
                    if let Some(status) = or_error
                        && r.status == *status
                    {
                        assert!(r.close, "error #{i} without Connection: close");
                        continue;
                    }
                    assert_eq!(r.status, 200, "response #{i}: {r:?}, expected {expect:?}");
                    assert_eq!(
                        r.echo.as_deref(),
                        Some(echo_line(method, target, body).as_str()),
                        "response #{i} answers another request; expected {expect:?}"
                    );
                    if method != "HEAD" {
                        assert!(
                            r.body == echo_body(method, target, body),
                            "response #{i}: wrong body"
                        );
                    }
                    match close {
                        Close::Yes => assert!(r.close, "response #{i} should close"),
                        Close::No if r.close => {
                            assert!(stopped, "response #{i} closes unexpectedly");
                        }
                        _ => {}
                    }
                }
            }
        }
        if !world.disrupted && !write_timeout {
            assert!(
                !lone_budget_wait,
                "a lone connection waited for body budget that nothing will release"
            );
            let closed = got.last().is_some_and(|r| r.close);
            assert!(
                got.len() == expect.len() || closed,
                "answered {} of {} requests without closing: {got:?} vs {expect:?}",
                got.len(),
                expect.len()
            );
        }
    }
}
