//! HTTP responses: what a handler returns, and the writer that puts one on the wire.
//!
//! The writer adds what every response must carry — `Date`, framing (`Content-Length`), `Connection:
//! close` when the connection will close — and refuses to emit a header name or value that could
//! split the response (CR, LF or NUL in a value; a name that is not a token): such a response is
//! replaced by a `500` and logged, never sent (the class of bug behind hyper's RUSTSEC-2017-0002).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// The body of a [`Response`].
pub enum Body {
    /// No body (`Content-Length: 0`, or no length at all for 1xx/204/304).
    Empty,
    /// A body held in memory.
    Bytes(Vec<u8>),
    /// `len` bytes of `file` starting at `offset`, streamed through a fixed-size buffer so serving a
    /// large file needs bounded memory.
    File {
        /// The open file.
        file: File,
        /// Where to start reading.
        offset: u64,
        /// How many bytes to send.
        len: u64,
    },
}

impl Body {
    /// The number of body bytes this body will send.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// Is the body empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::File { offset, len, .. } => write!(f, "File {{ offset: {offset}, len: {len} }}"),
        }
    }
}

/// A response: a status code, headers and a body.
///
/// ```
/// use poolserve::http::Response;
///
/// let resp = Response::new(200)
///     .header("Content-Type", "text/plain; charset=utf-8")
///     .body("hello\n");
/// assert_eq!(resp.status(), 200);
/// assert_eq!(resp.header_value("content-type"), Some("text/plain; charset=utf-8"));
/// ```
#[derive(Debug)]
#[must_use = "a Response does nothing until a handler returns it"]
pub struct Response {
    status: u16,
    headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    body: Body,
}

impl Response {
    /// An empty response with `status`. Status codes outside 100–599 are sent as 500.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            // Room for a static file's usual headers, so building one never reallocates.
            headers: Vec::with_capacity(6),
            body: Body::Empty,
        }
    }

    /// A `text/plain` response whose body is the status line's reason phrase, e.g. `404 Not Found`.
    pub fn plain_status(status: u16) -> Response {
        let text = format!("{} {}\n", status, reason_phrase(status));
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(text)
    }

    /// Adds a header. Framing headers (`Content-Length`, `Transfer-Encoding`), `Date` and
    /// `Connection` are the writer's job and are ignored if set here. A name that is not a token, or a
    /// value with CR, LF or NUL, makes the writer send a 500 instead of this response.
    pub fn header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the status and drops the body, keeping the headers: for answers such as `304` or
    /// `206` derived from a full response's headers.
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self.body = Body::Empty;
        self
    }

    /// Sets an in-memory body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = Body::Bytes(body.into());
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: Body) -> Response {
        self.body = body;
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of header `name` (compared case-insensitively), if set.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }

    /// The headers set so far, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (&**n, &**v))
    }

    /// The body.
    pub fn body_ref(&self) -> &Body {
        &self.body
    }
}

/// The standard reason phrase for `status`, or `""` for codes without one here.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// How a response is to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Send headers only (a response to `HEAD`): the same headers as for `GET`, no body.
    pub head_only: bool,
    /// The connection will close after this response: send `Connection: close`.
    pub close: bool,
    /// The client spoke HTTP/1.0 and asked for keep-alive: send `Connection: keep-alive`.
    pub http10_keep_alive: bool,
}

/// Appends `n` in decimal without allocating.
fn push_decimal(out: &mut String, n: u64) {
    use std::fmt::Write as _;
    let _ = write!(out, "{n}");
}

/// Reads exactly `buf.len()` bytes at `offset` (no shared file position, no seek).
/// A file that shrank under us is an error: the promised `Content-Length` cannot be met.
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

/// Is `name` a valid header name (an RFC 9110 token)?
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Would a value split the response or corrupt the head?
fn is_safe_value(value: &str) -> bool {
    !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// Is this a status whose response never has content (RFC 9110 §6.4.1)?
fn has_no_content(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// Appends the current `Date` value, formatted at most once per second per thread.
fn push_date(head: &mut String) {
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, httpdate::fmt_http_date(now));
        }
        head.push_str(&c.1);
    });
}

/// Bodies up to this size are sent in the same write as the head.
const COALESCE: u64 = 64 * 1024;

/// A response turned into bytes: what [`write_response`] writes, and what the server writes
/// without blocking, a piece at a time, as the socket takes it.
pub(crate) struct Rendered {
    /// The head, followed by the whole body when it is small enough to go in the same write.
    pub(crate) bytes: Vec<u8>,
    /// Body bytes still to send after `bytes`.
    pub(crate) rest: Rest,
    /// Body bytes this response sends in all (0 for `HEAD` and for statuses without content).
    pub(crate) body_len: u64,
    /// How many of those are at the end of `bytes`.
    pub(crate) body_in_bytes: u64,
}

/// The part of a body that did not go into [`Rendered::bytes`].
pub(crate) enum Rest {
    /// Nothing more.
    None,
    /// An in-memory body too large to copy behind the head.
    Bytes(Vec<u8>),
    /// `len` bytes of `file` from `offset` (sent with `sendfile(2)` where there is one).
    File {
        /// The open file.
        file: File,
        /// The next byte to send.
        offset: u64,
        /// Bytes left to send.
        len: u64,
    },
}

/// Renders `resp` (see [`write_response`] for what is added and what is refused).
///
/// # Errors
///
/// Reading a small [`Body::File`] (copied behind the head) failed.
pub(crate) fn render(resp: Response, opts: WriteOptions) -> io::Result<Rendered> {
    let resp = if (100..600).contains(&resp.status)
        && resp
            .headers
            .iter()
            .all(|(n, v)| is_token(n) && is_safe_value(v))
    {
        resp
    } else {
        log::error!(
            "handler returned an invalid response (status {}); sending 500",
            resp.status
        );
        Response::plain_status(500)
    };
    let Response {
        status,
        headers,
        body,
    } = resp;
    // Sized for the whole head and, when it goes out in the same write, the body: one allocation.
    let coalesced_body = match &body {
        _ if opts.head_only => 0,
        Body::Bytes(bytes) if bytes.len() as u64 <= COALESCE => bytes.len(),
        Body::File { len, .. } if *len <= COALESCE => *len as usize,
        _ => 0,
    };
    let header_bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    let mut head = String::with_capacity(160 + header_bytes + coalesced_body);
    head.push_str("HTTP/1.1 ");
    push_decimal(&mut head, u64::from(status));
    head.push(' ');
    head.push_str(reason_phrase(status));
    head.push_str("\r\nDate: ");
    push_date(&mut head);
    head.push_str("\r\n");
    for (name, value) in &headers {
        if ["content-length", "transfer-encoding", "date", "connection"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
        {
            continue;
        }
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    let no_content = has_no_content(status);
    if !no_content {
        head.push_str("Content-Length: ");
        push_decimal(&mut head, body.len());
        head.push_str("\r\n");
    }
    if opts.close {
        head.push_str("Connection: close\r\n");
    } else if opts.http10_keep_alive {
        head.push_str("Connection: keep-alive\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if opts.head_only || no_content {
        return Ok(Rendered {
            bytes,
            rest: Rest::None,
            body_len: 0,
            body_in_bytes: 0,
        });
    }
    let body_len = body.len();
    let rest = match body {
        Body::Empty => Rest::None,
        Body::Bytes(b) if b.len() as u64 <= COALESCE => {
            bytes.extend_from_slice(&b);
            Rest::None
        }
        Body::Bytes(b) => Rest::Bytes(b),
        Body::File { file, offset, len } if len <= COALESCE => {
            // Small file: one write for head and body.
            let start = bytes.len();
            bytes.resize(start + len as usize, 0);
            read_exact_at(&file, &mut bytes[start..], offset)?;
            Rest::None
        }
        Body::File { file, offset, len } => Rest::File { file, offset, len },
    };
    let body_in_bytes = if matches!(rest, Rest::None) {
        body_len
    } else {
        0
    };
    Ok(Rendered {
        bytes,
        rest,
        body_len,
        body_in_bytes,
    })
}

/// Writes `resp` to `out` and returns the number of body bytes sent.
///
/// A response with an unsafe header or an out-of-range status is replaced by a plain 500 (and
/// logged); the caller never sends a corrupt head.
///
/// # Errors
///
/// Any I/O error from `out` or from reading a [`Body::File`]. The connection should then be closed:
/// part of the response may have been sent.
pub fn write_response(out: &mut impl Write, resp: Response, opts: WriteOptions) -> io::Result<u64> {
    let rendered = render(resp, opts)?;
    out.write_all(&rendered.bytes)?;
    match rendered.rest {
        Rest::None => {}
        Rest::Bytes(b) => out.write_all(&b)?,
        Rest::File { file, offset, len } => {
            let mut buf = vec![0u8; COALESCE as usize];
            let (mut pos, end) = (offset, offset + len);
            while pos < end {
                let n = (end - pos).min(COALESCE) as usize;
                read_exact_at(&file, &mut buf[..n], pos)?;
                out.write_all(&buf[..n])?;
                pos += n as u64;
            }
        }
    }
    out.flush()?;
    Ok(rendered.body_len)
}
