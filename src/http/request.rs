//! The request-head parser: bytes in, a borrowed [`Request`] out.
//!
//! The parser is a single left-to-right pass. Every error is reported at the first byte that
//! no continuation of the input could make valid, and limits are checked at the byte where they
//! are crossed. Two consequences the fuzz targets check:
//!
//! * a prefix of a valid head is never an error (it is [`Status::Partial`]);
//! * for any split of the input, parsing the prefix gives either `Partial` or exactly the result
//!   of parsing the whole input.
//!
//! Checks that need the whole head (framing, Host, whether the method is implemented) run once
//! the empty line that ends the head has been seen.

use std::sync::LazyLock;

use memchr::{memchr, memchr2_iter, memmem};

use super::Limits;
use super::error::ParseError;
use super::framing::{Framing, framing};
use super::tables::{REG_NAME, TCHAR, URI, first_bad_value_byte, hex_value, trim_ows};

/// How many empty lines (CRLF) before the request line are skipped (RFC 9112 §2.2: a server
/// SHOULD ignore at least one). One more gives [`ParseError::TooManyEmptyLines`].
pub const MAX_LEADING_EMPTY_LINES: usize = 4;

/// The longest method token accepted before answering 501 [`ParseError::MethodTooLong`]
/// without reading further. Longer than any method in [`KNOWN_METHODS`].
pub const MAX_METHOD_LEN: usize = 32;

/// The longest field line (name, colon, value; without CRLF). A longer line gives 431
/// ([`ParseError::HeadersTooLarge`]) even when the whole head fits in
/// [`Limits::max_head`] (nginx uses the same 8 KiB per line).
pub const MAX_FIELD_LINE: usize = 8 * 1024;

/// The methods the parser accepts (RFC 9110 §9 plus PATCH, RFC 5789). Any other valid token
/// gives 501 ([`ParseError::UnknownMethod`]); the server decides which of these it allows.
pub const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// One field line of the head, borrowed from the input buffer.
///
/// `name` is a token (ASCII, case preserved); `value` has leading and trailing SP/HTAB removed
/// and may contain obs-text (bytes ≥ 0x80), so it is bytes rather than `str`.
///
/// # Examples
///
/// ```
/// use poolserve::http::{Header, EMPTY_HEADER};
/// let h = Header { name: "Host", value: b"example.com" };
/// assert_ne!(h, EMPTY_HEADER);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'b> {
    /// The field name.
    pub name: &'b str,
    /// The field value without surrounding whitespace.
    pub value: &'b [u8],
}

/// An empty header, to initialise the array passed to [`parse`]: `[EMPTY_HEADER; 100]`.
pub const EMPTY_HEADER: Header<'static> = Header {
    name: "",
    value: b"",
};

/// The protocol version of a request.
///
/// `HTTP/1.2` to `HTTP/1.9` are treated as [`Version::Http11`], the highest minor version we
/// implement (RFC 9110 §2.5); other majors are rejected with 505.
///
/// # Examples
///
/// ```
/// use poolserve::http::Version;
/// assert_eq!(Version::Http11.as_str(), "HTTP/1.1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1` (or a higher 1.x minor version).
    Http11,
}

impl Version {
    /// The version as it appears on the wire, e.g. for a response status line.
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::Version;
    /// assert_eq!(Version::Http10.as_str(), "HTTP/1.0");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// The result of parsing a buffer that may not yet hold the whole head.
///
/// # Examples
///
/// ```
/// use poolserve::http::{parse, Limits, Status, EMPTY_HEADER};
/// let mut headers = [EMPTY_HEADER; 4];
/// let status = parse(b"GET / HTTP/1.1\r\nHo", &mut headers, &Limits::default())?;
/// assert!(matches!(status, Status::Partial));
/// # Ok::<(), poolserve::http::ParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// The head is complete: the value, and how many bytes of the buffer the head used (the
    /// body, if any, starts at that offset).
    Complete(T, usize),
    /// More bytes are needed.
    Partial,
}

impl<T> Status<T> {
    /// Whether this is [`Status::Complete`].
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::Status;
    /// assert!(Status::Complete((), 3).is_complete());
    /// assert!(!Status::<()>::Partial.is_complete());
    /// ```
    #[must_use]
    pub fn is_complete(&self) -> bool {
        matches!(self, Status::Complete(..))
    }
}

/// A parsed request head. All slices borrow from the input buffer (`'b`) and from the header
/// array passed to [`parse`] (`'h`).
///
/// # Examples
///
/// ```
/// use poolserve::http::{parse, Limits, Status, EMPTY_HEADER};
/// let mut headers = [EMPTY_HEADER; 8];
/// let buf = b"GET /a/b?q=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
/// if let Status::Complete(req, _) = parse(buf, &mut headers, &Limits::default())? {
///     assert_eq!(req.path(), "/a/b");
///     assert_eq!(req.query(), Some("q=1"));
///     assert_eq!(req.header("connection"), Some(&b"keep-alive"[..]));
///     assert!(req.keep_alive);
/// }
/// # Ok::<(), poolserve::http::ParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'h, 'b> {
    /// The method, one of [`KNOWN_METHODS`] (case-sensitive).
    pub method: &'b str,
    /// The request-target exactly as sent (origin, absolute, authority or asterisk form).
    pub target: &'b str,
    /// The protocol version.
    pub version: Version,
    /// The field lines, in order, names case preserved.
    pub headers: &'h [Header<'b>],
    /// How the body is delimited, decided by [`framing()`].
    pub framing: Framing,
    /// Whether the connection may be reused after the response: HTTP/1.1 unless `Connection`
    /// lists `close`; HTTP/1.0 only if `Connection` lists `keep-alive` (and not `close`).
    pub keep_alive: bool,
    /// Whether the client sent `Expect: 100-continue` (always `false` for HTTP/1.0, which
    /// must not receive a 1xx response, RFC 9110 §15.2).
    pub expect_continue: bool,
    /// The request's content, decoded from its framing; empty from [`parse`], which sees only
    /// the head. The server fills it in (see [`Request::body`]).
    body: &'b [u8],
}

impl<'b> Request<'_, 'b> {
    /// The request's content (the body, de-chunked), as the server read it before calling the
    /// handler: complete, and at most [`Limits::max_body`] bytes. Empty for a request without
    /// a body, for one just returned by [`parse`] (which reads only the head), and for requests
    /// passed to a handler whose [`Handler::wants_body`](crate::Handler::wants_body) said no.
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::{parse, Limits, Status, EMPTY_HEADER};
    /// let mut headers = [EMPTY_HEADER; 8];
    /// let buf = b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi";
    /// if let Status::Complete(req, head_len) = parse(buf, &mut headers, &Limits::default())? {
    ///     assert_eq!(req.body(), b"");
    ///     let req = req.with_body(&buf[head_len..]);
    ///     assert_eq!(req.body(), b"hi");
    /// }
    /// # Ok::<(), poolserve::http::ParseError>(())
    /// ```
    #[must_use]
    pub fn body(&self) -> &'b [u8] {
        self.body
    }

    /// This request with `body` as its content (see [`Request::body`]). For servers and tests;
    /// the body is not checked against the head's framing.
    #[must_use]
    pub fn with_body(self, body: &'b [u8]) -> Self {
        Request { body, ..self }
    }

    /// The value of the first field named `name` (ASCII case-insensitive), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::{parse, Limits, Status, EMPTY_HEADER};
    /// let mut headers = [EMPTY_HEADER; 8];
    /// let buf = b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
    /// if let Status::Complete(req, _) = parse(buf, &mut headers, &Limits::default())? {
    ///     assert_eq!(req.header("ACCEPT"), Some(&b"*/*"[..]));
    ///     assert_eq!(req.header("cookie"), None);
    /// }
    /// # Ok::<(), poolserve::http::ParseError>(())
    /// ```
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The path of the target, without the query: for origin-form `/a?b` it is `/a`; for
    /// absolute-form `http://h/a?b` it is `/a` (`/` when empty); for asterisk-form `*`; for the
    /// authority-form of CONNECT the empty string. Still percent-encoded.
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::{parse, Limits, Status, EMPTY_HEADER};
    /// let mut headers = [EMPTY_HEADER; 8];
    /// let buf = b"GET http://example.com?x HTTP/1.1\r\nHost: example.com\r\n\r\n";
    /// if let Status::Complete(req, _) = parse(buf, &mut headers, &Limits::default())? {
    ///     assert_eq!(req.path(), "/");
    /// }
    /// # Ok::<(), poolserve::http::ParseError>(())
    /// ```
    #[must_use]
    pub fn path(&self) -> &'b str {
        let t = self.target;
        if t == "*" {
            return t;
        }
        let rest = if t.starts_with('/') {
            t
        } else if let Some(i) = t.find("://") {
            let after = &t[i + 3..];
            match after.find(['/', '?']) {
                Some(j) => &after[j..],
                None => "",
            }
        } else {
            return "";
        };
        let path = match rest.find('?') {
            Some(q) => &rest[..q],
            None => rest,
        };
        if path.is_empty() { "/" } else { path }
    }

    /// The query of the target (after the first `?`), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::{parse, Limits, Status, EMPTY_HEADER};
    /// let mut headers = [EMPTY_HEADER; 8];
    /// let buf = b"GET /?a=1&b HTTP/1.1\r\nHost: h\r\n\r\n";
    /// if let Status::Complete(req, _) = parse(buf, &mut headers, &Limits::default())? {
    ///     assert_eq!(req.query(), Some("a=1&b"));
    /// }
    /// # Ok::<(), poolserve::http::ParseError>(())
    /// ```
    #[must_use]
    pub fn query(&self) -> Option<&'b str> {
        self.target.find('?').map(|q| &self.target[q + 1..])
    }
}

/// Parses a request head from the start of `buf`.
///
/// `headers` receives the field lines; the number of fields allowed is the smaller of
/// `headers.len()` and `limits.max_headers`. On [`Status::Complete`] the second value is the
/// length of the head, so the body (if any) starts at that offset.
///
/// # Errors
///
/// Any [`ParseError`] about the request line, the field lines, the limits in `limits`, the
/// body framing (see [`framing()`]), the Host field or the method. A limit that the partial
/// input already exceeds is reported at once (414 or 431), so the caller can stop reading.
///
/// # Examples
///
/// ```
/// use poolserve::http::{parse, Limits, ParseError, Status, EMPTY_HEADER};
///
/// let limits = Limits::default();
/// let mut headers = [EMPTY_HEADER; 16];
/// assert!(matches!(parse(b"GET / HTTP/1.1\r\n", &mut headers, &limits), Ok(Status::Partial)));
/// assert_eq!(
///     parse(b"GET  / HTTP/1.1\r\n", &mut headers, &limits),
///     Err(ParseError::BadRequestLine)
/// );
/// assert_eq!(
///     parse(b"GET / HTTP/2.0\r\n", &mut headers, &limits),
///     Err(ParseError::UnsupportedVersion)
/// );
/// ```
pub fn parse<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
    limits: &Limits,
) -> Result<Status<Request<'h, 'b>>, ParseError> {
    let window = &buf[..buf.len().min(limits.max_head)];
    // What running out of `window` means: more input needed, or the head limit crossed.
    let exhausted = if buf.len() > limits.max_head {
        Err(ParseError::HeadersTooLarge)
    } else {
        Ok(Status::Partial)
    };

    // Leading empty lines (RFC 9112 §2.2).
    let mut pos = 0;
    let mut empty_lines = 0;
    loop {
        match window.get(pos) {
            None => return exhausted,
            Some(b'\r') => match window.get(pos + 1) {
                None => return exhausted,
                Some(b'\n') => {
                    empty_lines += 1;
                    if empty_lines > MAX_LEADING_EMPTY_LINES {
                        return Err(ParseError::TooManyEmptyLines);
                    }
                    pos += 2;
                }
                Some(_) => return Err(ParseError::BareCr),
            },
            Some(b'\n') => return Err(ParseError::BareLf),
            Some(_) => break,
        }
    }

    let line = match request_line(window, pos, limits)? {
        Some(line) => line,
        None => return exhausted,
    };
    pos = line.end;

    // Field lines. When the rest of the head is already here and is UTF-8 (no obs-text), one
    // `from_utf8` over it replaces one call per field name.
    let fields_text = EMPTY_LINE
        .find(&window[pos - 2..])
        .and_then(|end| std::str::from_utf8(&window[pos..pos - 2 + end + 2]).ok())
        .map(|text| (pos, text));
    let max_fields = headers.len().min(limits.max_headers);
    let mut count = 0;
    let head_len = loop {
        let Some(&first) = window.get(pos) else {
            return exhausted;
        };
        match first {
            b'\r' => match window.get(pos + 1) {
                None => return exhausted,
                Some(b'\n') => break pos + 2,
                Some(_) => return Err(ParseError::BareCr),
            },
            b'\n' => return Err(ParseError::BareLf),
            b' ' | b'\t' => return Err(ParseError::ObsFold),
            _ => {}
        }
        if count == max_fields {
            return Err(ParseError::TooManyHeaders);
        }
        match field_line(window, pos, fields_text)? {
            Some((header, next)) => {
                headers[count] = header;
                count += 1;
                pos = next;
            }
            None => return exhausted,
        }
    };

    let headers: &'h [Header<'b>] = &headers[..count];
    let framing = framing(line.version, headers, limits)?;
    let has_body = !matches!(framing, Framing::None | Framing::Length(0));
    // One pass over the fields for everything but framing.
    let mut hosts = 0usize;
    let mut host: &[u8] = b"";
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    for h in headers {
        match h.name.len() {
            4 if h.name.eq_ignore_ascii_case("host") => {
                hosts += 1;
                host = h.value;
            }
            6 if h.name.eq_ignore_ascii_case("expect") => {
                expect_continue |= h.value.eq_ignore_ascii_case(b"100-continue");
            }
            10 if h.name.eq_ignore_ascii_case("connection") => {
                let (c, k) = connection_tokens(h.value);
                close |= c;
                keep_alive_token |= k;
            }
            _ => {}
        }
    }
    check_host(line.version, hosts, host).map_err(|e| {
        if has_body {
            ParseError::BadHostWithBody
        } else {
            e
        }
    })?;
    if !KNOWN_METHODS.contains(&line.method) {
        return Err(if has_body {
            ParseError::UnknownMethodWithBody
        } else {
            ParseError::UnknownMethod
        });
    }
    let keep_alive = match line.version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive_token && !close,
    };
    let expect_continue = expect_continue && line.version == Version::Http11;

    Ok(Status::Complete(
        Request {
            method: line.method,
            target: line.target,
            version: line.version,
            headers,
            framing,
            keep_alive,
            expect_continue,
            body: &[],
        },
        head_len,
    ))
}

/// Parses like [`parse`], but first looks only at the bytes added since a previous call on a
/// prefix of the same buffer, `buf[..prev_len]`, returned [`Status::Partial`].
///
/// While the head is incomplete, a call costs O(`buf.len() - prev_len`): the new bytes are
/// searched (with `memchr`) for the end of the head, for a bare CR or LF, and for the end of
/// the request line; only when one of those, or a size limit, is found does it run the full
/// [`parse`]. Hence it returns either `Partial` or exactly what [`parse`] returns, and syntax
/// errors inside field lines may be reported only once the head is complete or a limit is
/// reached.
///
/// Passing a `prev_len` for which the precondition does not hold gives unspecified (but
/// memory-safe, non-panicking) results; `prev_len == 0` is always valid.
///
/// # Errors
///
/// As for [`parse`].
///
/// # Examples
///
/// ```
/// use poolserve::http::{parse_from, Limits, Status, EMPTY_HEADER};
///
/// let limits = Limits::default();
/// let full = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
/// let mut prev = 0;
/// for end in [10, 20, full.len()] {
///     let mut headers = [EMPTY_HEADER; 8];
///     match parse_from(&full[..end], prev, &mut headers, &limits)? {
///         Status::Partial => prev = end,
///         Status::Complete(req, n) => {
///             assert_eq!((req.method, n), ("GET", full.len()));
///         }
///     }
/// }
/// # Ok::<(), poolserve::http::ParseError>(())
/// ```
pub fn parse_from<'h, 'b>(
    buf: &'b [u8],
    prev_len: usize,
    headers: &'h mut [Header<'b>],
    limits: &Limits,
) -> Result<Status<Request<'h, 'b>>, ParseError> {
    let prev_len = prev_len.min(buf.len());
    if prev_len == 0 || buf.len() > limits.max_head {
        return parse(buf, headers, limits);
    }
    let scan_from = prev_len - 1;
    let new = &buf[scan_from..];
    let mut full = false;
    for i in memchr2_iter(b'\r', b'\n', new) {
        let at = scan_from + i;
        if buf[at] == b'\n' {
            if at == 0 || buf[at - 1] != b'\r' {
                full = true; // bare LF
                break;
            }
            if at >= prev_len && memchr(b'\n', &buf[..at]).is_none() {
                full = true; // the first line just ended
                break;
            }
        } else if buf.get(at + 1).is_some_and(|&b| b != b'\n') {
            full = true; // bare CR
            break;
        }
    }
    if !full && memchr(b'\n', buf).is_none() {
        // Still in the request line (or leading empty lines): check the request-line limit.
        full = buf.len() > limits.max_request_line;
    }
    if !full {
        full = head_end(buf, prev_len).is_some();
    }
    if full {
        parse(buf, headers, limits)
    } else {
        Ok(Status::Partial)
    }
}

/// The length of the head at the start of `buf` (up to and including the empty line), if the
/// empty line is there, searching only from about `prev_len` on.
///
/// Leading empty lines are skipped as [`parse`] skips them. This is the `consumed` value
/// [`parse`] would return for a well-formed head; after an error whose
/// [`must_close`](ParseError::must_close) is `false`, it is how many bytes to discard.
///
/// # Examples
///
/// ```
/// use poolserve::http::head_end;
/// let buf = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nNEXT";
/// assert_eq!(head_end(buf, 0), Some(buf.len() - 4));
/// assert_eq!(head_end(b"GET / HTTP/1.1\r\n", 0), None);
/// ```
#[must_use]
pub fn head_end(buf: &[u8], prev_len: usize) -> Option<usize> {
    let mut start = 0;
    let mut skipped = 0;
    while skipped <= MAX_LEADING_EMPTY_LINES && buf[start..].starts_with(b"\r\n") {
        start += 2;
        skipped += 1;
    }
    let from = prev_len.saturating_sub(3).max(start);
    if from >= buf.len() {
        return None;
    }
    EMPTY_LINE.find(&buf[from..]).map(|i| from + i + 4)
}

/// The searcher for the CRLF CRLF that ends a head, built once.
static EMPTY_LINE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\r\n\r\n"));

/// The pieces of a complete, syntactically valid request line.
struct RequestLine<'b> {
    method: &'b str,
    target: &'b str,
    version: Version,
    /// Offset just past the CRLF.
    end: usize,
}

/// Parses the request line starting at `start`. `Ok(None)` means the window ended first and
/// the request-line limit was not crossed.
fn request_line<'b>(
    window: &'b [u8],
    start: usize,
    limits: &Limits,
) -> Result<Option<RequestLine<'b>>, ParseError> {
    // The CR may sit at most at `cap`; `line` holds the bytes that may belong to the line.
    let cap = start.saturating_add(limits.max_request_line);
    let line = &window[..window.len().min(cap.saturating_add(1))];
    let out_of_line = |at: usize| {
        if at >= line.len() && line.len() < window.len() {
            Err(ParseError::UriTooLong)
        } else {
            Ok(None)
        }
    };

    // method SP
    let mut pos = start;
    loop {
        let Some(&b) = line.get(pos) else {
            return out_of_line(pos);
        };
        if b == b' ' {
            break;
        }
        if !TCHAR[usize::from(b)] {
            return Err(if pos == start {
                ParseError::BadRequestLine
            } else {
                ParseError::BadMethod
            });
        }
        if pos - start == MAX_METHOD_LEN {
            return Err(ParseError::MethodTooLong);
        }
        pos += 1;
    }
    if pos == start {
        return Err(ParseError::BadRequestLine);
    }
    let method = &line[start..pos];
    pos += 1;

    // request-target SP
    let target_start = pos;
    // One pass: the first byte outside the URI set ends the target; it must be SP.
    let rest = &line[pos.min(line.len())..];
    let (target_end, complete) = match rest.iter().position(|&b| !URI[usize::from(b)]) {
        Some(i) if rest[i] == b' ' => (target_start + i, true),
        Some(i) => {
            return Err(match rest[i] {
                b'\r' | b'\n' | b'\t' => ParseError::BadRequestLine,
                _ => ParseError::BadTarget,
            });
        }
        None => (line.len().max(target_start), false),
    };
    let target = &line[target_start.min(target_end)..target_end];
    if !complete {
        return out_of_line(target_end);
    }
    if target.is_empty() {
        return Err(ParseError::BadRequestLine);
    }
    check_percent(target)?;
    pos = target_end + 1;

    // HTTP-version CRLF
    const NAME: &[u8] = b"HTTP/";
    for (i, &expected) in NAME.iter().enumerate() {
        match line.get(pos + i) {
            None => return out_of_line(pos + i),
            Some(&b) if b == expected => {}
            Some(_) => return Err(ParseError::BadVersion),
        }
    }
    pos += NAME.len();
    let mut digits = [0u8; 2];
    for (i, slot) in digits.iter_mut().enumerate() {
        let at = pos + 2 * i;
        match line.get(at) {
            None => return out_of_line(at),
            Some(b) if b.is_ascii_digit() => *slot = b - b'0',
            Some(_) => return Err(ParseError::BadVersion),
        }
        if i == 0 {
            match line.get(at + 1) {
                None => return out_of_line(at + 1),
                Some(b'.') => {}
                Some(_) => return Err(ParseError::BadVersion),
            }
        }
    }
    pos += 3;
    match line.get(pos) {
        None => return out_of_line(pos),
        Some(b'\r') => {}
        Some(b'\n') => return Err(ParseError::BareLf),
        Some(_) => return Err(ParseError::BadVersion),
    }
    match window.get(pos + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(ParseError::BareCr),
    }
    let version = match digits {
        [1, 0] => Version::Http10,
        [1, _] => Version::Http11,
        _ => return Err(ParseError::UnsupportedVersion),
    };

    // Method and target are ASCII (checked above): one conversion for both.
    let method_len = method.len();
    let both = std::str::from_utf8(&line[start..target_end]).map_err(|_| ParseError::BadTarget)?;
    let (method, target) = (&both[..method_len], &both[method_len + 1..]);
    check_target_form(method, target)?;
    Ok(Some(RequestLine {
        method,
        target,
        version,
        end: pos + 2,
    }))
}

/// Every `%` must start a `%XX` escape (RFC 3986 §2.1).
fn check_percent(s: &[u8]) -> Result<(), ParseError> {
    // Targets and hosts are short: a plain loop beats a memchr call's setup.
    for i in (0..s.len()).filter(|&i| s[i] == b'%') {
        let ok = s.get(i + 1).and_then(|&b| hex_value(b)).is_some()
            && s.get(i + 2).and_then(|&b| hex_value(b)).is_some();
        if !ok {
            return Err(ParseError::BadTarget);
        }
    }
    Ok(())
}

/// The target form must suit the method (RFC 9112 §3.2): origin-form for everything but
/// CONNECT, authority-form only for CONNECT, asterisk-form only for OPTIONS, absolute-form
/// (`http` or `https`) for anything but CONNECT.
fn check_target_form(method: &str, target: &str) -> Result<(), ParseError> {
    let bytes = target.as_bytes();
    if method == "CONNECT" {
        return if authority_form(bytes) {
            Ok(())
        } else {
            Err(ParseError::BadTarget)
        };
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(())
        } else {
            Err(ParseError::BadTarget)
        };
    }
    if bytes[0] == b'/' {
        return if bytes.iter().any(|&b| b == b'[' || b == b']') {
            Err(ParseError::BadTarget)
        } else {
            Ok(())
        };
    }
    // absolute-form: scheme "://" authority path-abempty [ "?" query ]
    let rest = if bytes.len() > 7 && bytes[..7].eq_ignore_ascii_case(b"http://") {
        &bytes[7..]
    } else if bytes.len() > 8 && bytes[..8].eq_ignore_ascii_case(b"https://") {
        &bytes[8..]
    } else {
        return Err(ParseError::BadTarget);
    };
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !host_port(authority, false) || tail.iter().any(|&b| b == b'[' || b == b']') {
        return Err(ParseError::BadTarget);
    }
    Ok(())
}

/// `uri-host ":" port` with a non-empty port, as CONNECT requires (RFC 9112 §3.2.3).
fn authority_form(s: &[u8]) -> bool {
    host_port(s, true)
}

/// `uri-host [ ":" port ]` (RFC 3986 §3.2.2, §3.2.3) with a non-empty host; the port is
/// 1 to 5 digits. `reg-name` excludes `,` (see [`REG_NAME`]).
fn host_port(s: &[u8], port_required: bool) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..close];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &rest[close + 1..] {
            [] => (literal, None),
            [b':', port @ ..] => (literal, Some(port)),
            _ => return false,
        }
    } else {
        let (host, port) = match s.iter().position(|&b| b == b':') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        if host.is_empty() || !host.iter().all(|&b| REG_NAME[usize::from(b)]) {
            return false;
        }
        if check_percent(host).is_err() {
            return false;
        }
        (host, port)
    };
    if host.is_empty() {
        return false;
    }
    match port {
        None => !port_required,
        Some(p) => !p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit),
    }
}

/// Parses one field line starting at `start` (whose first byte is not CR, LF, SP or HTAB).
/// `Ok(None)` means the window ended first.
fn field_line<'b>(
    window: &'b [u8],
    start: usize,
    text: Option<(usize, &'b str)>,
) -> Result<Option<(Header<'b>, usize)>, ParseError> {
    // The CR may sit at most at `start + MAX_FIELD_LINE`.
    let line = &window[..window.len().min(start + MAX_FIELD_LINE + 1)];
    let exhausted = if line.len() < window.len() {
        Err(ParseError::HeadersTooLarge)
    } else {
        Ok(None)
    };
    let name_len = line[start..].iter().position(|&b| !TCHAR[usize::from(b)]);
    let mut pos = match name_len {
        None => return exhausted,
        Some(n) => start + n,
    };
    match line[pos] {
        b':' if pos > start => {}
        b' ' | b'\t' if pos > start => return Err(ParseError::SpaceBeforeColon),
        b'\r' | b'\n' => return Err(ParseError::MissingColon),
        _ => return Err(ParseError::BadHeaderName),
    }
    let name = match text.and_then(|(offset, t)| t.get(start - offset..pos - offset)) {
        Some(name) => name,
        None => std::str::from_utf8(&line[start..pos]).map_err(|_| ParseError::BadHeaderName)?,
    };
    pos += 1;
    // One vectorised pass finds the first control byte: the CR that ends the value, or an
    // error (a bare LF, NUL, DEL, ...).
    let rest = &line[pos.min(line.len())..];
    let (value_end, cr) = match first_bad_value_byte(rest) {
        Some(i) if rest[i] == b'\r' => (pos + i, true),
        Some(i) => {
            return Err(if rest[i] == b'\n' {
                ParseError::BareLf
            } else {
                ParseError::BadHeaderValue
            });
        }
        None => (line.len().max(pos), false),
    };
    let raw = &line[pos.min(value_end)..value_end];
    if !cr {
        return exhausted;
    }
    match window.get(value_end + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((
            Header {
                name,
                value: trim_ows(raw),
            },
            value_end + 2,
        ))),
        Some(_) => Err(ParseError::BareCr),
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request needs exactly one Host; any request with more than one,
/// or with an invalid value, is rejected. `hosts` is the number of Host lines, `value` the
/// value of the last one.
fn check_host(version: Version, hosts: usize, value: &[u8]) -> Result<(), ParseError> {
    match hosts {
        0 if version == Version::Http11 => Err(ParseError::MissingHost),
        0 => Ok(()),
        1 if host_port(value, false) => Ok(()),
        1 => Err(ParseError::BadHost),
        _ => Err(ParseError::DuplicateHost),
    }
}

/// Reads one `Connection` value as a comma-separated token list (RFC 9110 §7.6.1), not as a
/// substring, and reports whether `close` and whether `keep-alive` are listed.
fn connection_tokens(value: &[u8]) -> (bool, bool) {
    let mut close = false;
    let mut keep_alive = false;
    for token in value.split(|&b| b == b',').map(trim_ows) {
        close |= token.eq_ignore_ascii_case(b"close");
        keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
    }
    (close, keep_alive)
}
