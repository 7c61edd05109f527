//! A strict HTTP/1.1 request parser, framing layer and chunked body decoder (RFC 9112 / 9110),
//! plus the response writer.
//!
//! The parsing layer is pure: bytes in, a borrowed [`Request`] (or a [`ParseError`]) out. No I/O,
//! no allocation on the request-head path, every dimension bounded by [`Limits`].
//!
//! * [`parse`] / [`parse_from`]: the request head. [`parse_from`] is the
//!   incremental entry point for a server that reads into a growing buffer: it only scans the
//!   new bytes until the head is complete.
//! * [`framing()`]: the one function that decides how the body is delimited (RFC 9112 §6.3).
//! * [`ChunkedDecoder`]: a stateful decoder for `Transfer-Encoding: chunked` bodies.
//! * [`ParseError`]: one variant per rejection, each with one status code and one close
//!   decision.
//! * [`Response`]: what a handler returns; [`write_response`] puts one on the wire. The writer
//!   adds what every response must carry — `Date`, framing (`Content-Length`), `Connection: close`
//!   when the connection will close — and refuses to emit a header name or value that could split
//!   the response (CR, LF or NUL in a value; a name that is not a token): such a response is
//!   replaced by a `500` and logged, never sent (the class of bug behind hyper's RUSTSEC-2017-0002).
//!
//! # Strictness (and where we differ from httparse)
//!
//! | input | poolserve | reason |
//! |---|---|---|
//! | bare LF as line terminator | 400 [`ParseError::BareLf`] | RFC 9112 §2.2 allows it as a MAY; it is a smuggling vector |
//! | leading empty lines | up to [`MAX_LEADING_EMPTY_LINES`] CRLFs skipped | RFC 9112 §2.2 |
//! | `HTTP/1.2` … `HTTP/1.9` | accepted as [`Version::Http11`] | RFC 9110 §2.5: process as the highest supported minor version |
//! | `HTTP/0.x`, `HTTP/2.0` … `HTTP/9.9` | 505 | RFC 9110 §15.6.6 |
//! | bytes ≥ 0x80 or outside RFC 3986 in the target | 400 | RFC 9112 §3.2, RFC 3986 |
//! | bad percent-encoding or `#` in the target | 400 | RFC 3986 §2.1, RFC 9112 §3.2.1 |
//! | unknown method (valid token) | 501 | RFC 9110 §9.1 |
//! | missing / duplicate / invalid Host | 400 | RFC 9112 §3.2 |
//! | more than [`MAX_FIELD_LINE`] bytes in one field line, more than [`Limits`] allow | 414 / 431 / 501 | httparse has no limits |
//!
//! The `diff_httparse` fuzz target (`fuzz/diff_check.rs`) checks that every disagreement with
//! httparse falls into one of these classes, and that where both accept, method, target,
//! version, field lines and head length are identical.
//!
//! # Example
//!
//! ```
//! use poolserve::http::{parse, Framing, Limits, Status, Version, EMPTY_HEADER};
//!
//! let mut headers = [EMPTY_HEADER; 16];
//! let buf = b"GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
//! let Status::Complete(req, consumed) = parse(buf, &mut headers, &Limits::default())? else {
//!     panic!("the head is complete");
//! };
//! assert_eq!(consumed, buf.len());
//! assert_eq!(req.method, "GET");
//! assert_eq!(req.path(), "/index.html");
//! assert_eq!(req.version, Version::Http11);
//! assert_eq!(req.framing, Framing::None);
//! assert!(req.keep_alive);
//! # Ok::<(), poolserve::http::ParseError>(())
//! ```

mod chunked;
mod error;
mod framing;
mod request;
mod tables;

// Crate-visible (not `pub`) so that the server reaches the writer's internals
// (`render`, `Rendered`, `Rest`, `read_exact_at`); the public items are re-exported below, so each
// has the one path `poolserve::http::…`.
pub(crate) mod response;

pub use response::{Body, Response, WriteOptions, reason_phrase, write_response};

pub use chunked::{
    ChunkedDecoder, ChunkedLimits, ChunkedStatus, DEFAULT_MAX_CHUNK_EXTENSIONS,
    DEFAULT_MAX_TRAILER_BYTES, DEFAULT_MAX_TRAILER_FIELDS, MAX_CHUNK_SIZE_DIGITS,
};
pub use error::ParseError;
pub use framing::{Framing, framing};
pub use request::{
    EMPTY_HEADER, Header, KNOWN_METHODS, MAX_FIELD_LINE, MAX_LEADING_EMPTY_LINES, MAX_METHOD_LEN,
    Request, Status, Version, head_end, parse, parse_from,
};

/// Default for [`Limits::max_request_line`]: 8 KiB (RFC 9112 §3 recommends supporting at least
/// 8000 octets; nginx uses the same).
pub const DEFAULT_MAX_REQUEST_LINE: usize = 8 * 1024;
/// Default for [`Limits::max_head`]: 32 KiB for the whole head (request line and fields).
pub const DEFAULT_MAX_HEAD: usize = 32 * 1024;
/// Default for [`Limits::max_headers`]: 100 field lines (hyper and CPython use the same).
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default for [`Limits::max_body`]: 1 MiB (nginx's `client_max_body_size`).
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;

/// Size limits applied while parsing; every one of them is enforced even on partial input, so a
/// server can stop reading as soon as a limit is exceeded.
///
/// # Examples
///
/// ```
/// use poolserve::http::{Limits, DEFAULT_MAX_HEAD};
///
/// let limits = Limits { max_body: 0, ..Limits::default() };
/// assert_eq!(limits.max_head, DEFAULT_MAX_HEAD);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, without its CRLF; longer gives 414
    /// ([`ParseError::UriTooLong`]). Default [`DEFAULT_MAX_REQUEST_LINE`].
    pub max_request_line: usize,
    /// Longest head (leading empty lines, request line, field lines, final CRLF); longer gives
    /// 431 ([`ParseError::HeadersTooLarge`]). Default [`DEFAULT_MAX_HEAD`].
    pub max_head: usize,
    /// Most field lines; more gives 431 ([`ParseError::TooManyHeaders`]). Default
    /// [`DEFAULT_MAX_HEADERS`].
    pub max_headers: usize,
    /// Largest body (Content-Length, or decoded chunked total); larger gives 413
    /// ([`ParseError::BodyTooLarge`]). Default [`DEFAULT_MAX_BODY`].
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: DEFAULT_MAX_REQUEST_LINE,
            max_head: DEFAULT_MAX_HEAD,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}
