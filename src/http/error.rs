//! The single error type of the HTTP parsing layer.
//!
//! Every [`ParseError`] variant maps to exactly one response status (400, 413, 414, 431, 501 or
//! 505) and to exactly one connection decision ([`ParseError::must_close`]). The server never has
//! to inspect the variant to decide what to send: [`ParseError::status_code`],
//! [`ParseError::reason`] and [`ParseError::must_close`] are enough.
//!
//! Variants whose `must_close()` is `false` are only ever returned for a *complete* request head
//! that carries *no body* (its framing would have been [`Framing::None`] or `Length(0)`), so the
//! server can answer, drop the head (its length is [`head_end`]) and keep reading the connection.
//! Everything else means "the message boundary can no longer be trusted" (RFC 9112 §2.2) or a
//! limit was hit before the message was read, and the connection must be closed after the
//! response.
//!
//! [`Framing::None`]: crate::http::Framing::None
//! [`head_end`]: crate::http::head_end

use std::fmt;

/// Why a request head, its framing or a chunked body was rejected.
///
/// See the module documentation for the mapping rules; the table of variants, statuses and
/// close decisions is also what [`ParseError::status_code`] and [`ParseError::must_close`]
/// implement.
///
/// # Examples
///
/// ```
/// use poolserve::http::{parse, Header, Limits, ParseError, EMPTY_HEADER};
///
/// let mut headers = [EMPTY_HEADER; 16];
/// let err = parse(b"GET / HTTP/1.1\nHost: a\n\n", &mut headers, &Limits::default()).unwrap_err();
/// assert_eq!(err, ParseError::BareLf);
/// assert_eq!(err.status_code(), 400);
/// assert!(err.must_close());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// More empty lines (CRLF) before the request line than the parser skips
    /// ([`MAX_LEADING_EMPTY_LINES`](crate::http::MAX_LEADING_EMPTY_LINES)). 400, close.
    TooManyEmptyLines,
    /// A line ended with a bare LF instead of CRLF (RFC 9112 §2.2). 400, close.
    BareLf,
    /// A CR not followed by LF (RFC 9112 §2.2). 400, close.
    BareCr,
    /// The request line does not have the shape `method SP target SP version CRLF` with single
    /// spaces (RFC 9112 §3). 400, close.
    BadRequestLine,
    /// The method contains a byte that is not a `tchar` (RFC 9110 §5.6.2). 400, close.
    BadMethod,
    /// The method is longer than [`MAX_METHOD_LEN`](crate::http::MAX_METHOD_LEN), so it cannot be
    /// one we implement (RFC 9112 §3: SHOULD 501). 501, close.
    MethodTooLong,
    /// A syntactically valid method this server does not know (RFC 9110 §9.1). The head was
    /// complete and has no body. 501, keep the connection.
    UnknownMethod,
    /// As [`ParseError::UnknownMethod`], but the head announced a body, which we do not read.
    /// 501, close.
    UnknownMethodWithBody,
    /// The request-target has a byte outside the RFC 3986 set, a bad percent-encoding, a
    /// fragment, or a form that the method does not allow (RFC 9112 §3.2). 400, close.
    BadTarget,
    /// The request line is longer than [`Limits::max_request_line`](crate::http::Limits)
    /// (RFC 9112 §3: MUST 414). 414, close.
    UriTooLong,
    /// The HTTP-version is not `HTTP/` DIGIT `.` DIGIT (RFC 9112 §2.3). 400, close.
    BadVersion,
    /// A well-formed version whose major number is not 1, such as `HTTP/2.0` (RFC 9110
    /// §15.6.6). 505, close.
    UnsupportedVersion,
    /// A field name is empty or contains a non-`tchar` byte (RFC 9110 §5.1). 400, close.
    BadHeaderName,
    /// Whitespace between a field name and the colon (RFC 9112 §5.1: MUST 400). 400, close.
    SpaceBeforeColon,
    /// A field line without a colon (RFC 9112 §5). 400, close.
    MissingColon,
    /// A line starting with SP or HTAB: obs-fold, or whitespace before the first field
    /// (RFC 9112 §5.2, §2.2). 400, close.
    ObsFold,
    /// A field value contains a control byte other than HTAB (RFC 9110 §5.5). 400, close.
    BadHeaderValue,
    /// The head is larger than [`Limits::max_head`](crate::http::Limits) (RFC 6585 §5).
    /// 431, close.
    HeadersTooLarge,
    /// More field lines than [`Limits::max_headers`](crate::http::Limits) or than the caller's
    /// header array holds. 431, close.
    TooManyHeaders,
    /// An HTTP/1.1 request without Host (RFC 9112 §3.2: MUST 400). 400, keep.
    MissingHost,
    /// More than one Host field line (RFC 9112 §3.2: MUST 400). 400, keep.
    DuplicateHost,
    /// A Host value that is not `uri-host [":" port]` (RFC 9112 §3.2). 400, keep.
    BadHost,
    /// As the Host variants, but the head announced a body, which we do not read. 400, close.
    BadHostWithBody,
    /// A Content-Length that is not `1*DIGIT`, overflows, or is a list (RFC 9110 §8.6).
    /// 400, close.
    BadContentLength,
    /// More than one Content-Length field line (RFC 9112 §6.3 item 5). 400, close.
    DuplicateContentLength,
    /// Both Transfer-Encoding and Content-Length (RFC 9112 §6.1, §6.3 item 3). 400, close.
    ContentLengthWithTransferEncoding,
    /// Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1). 400, close.
    TransferEncodingHttp10,
    /// A Transfer-Encoding that is empty, malformed, has `chunked` more than once, with
    /// parameters, or not last (RFC 9112 §6.3 item 4: MUST 400). 400, close.
    BadTransferEncoding,
    /// A transfer coding other than `chunked` (RFC 9112 §6.1: SHOULD 501). 501, close.
    UnknownTransferCoding,
    /// The body is larger than [`Limits::max_body`](crate::http::Limits) (RFC 9110 §15.5.14).
    /// 413, close.
    BodyTooLarge,
    /// A chunk-size that is not `1*HEXDIG` (RFC 9112 §7.1). 400, close.
    BadChunkSize,
    /// A chunk-size with more than [`MAX_CHUNK_SIZE_DIGITS`](crate::http::MAX_CHUNK_SIZE_DIGITS)
    /// digits or that does not fit in `u64`. 400, close.
    ChunkSizeOverflow,
    /// A malformed chunk extension (RFC 9112 §7.1.1). 400, close.
    BadChunkExtension,
    /// Chunk extensions of one body exceed the decoder's extension budget. 400, close.
    ChunkExtensionTooLarge,
    /// Chunk data not followed by CRLF, or a bad line ending after the chunk-size. 400, close.
    BadChunkData,
    /// Chunk framing overhead out of proportion to the data (many tiny chunks). 400, close.
    ChunkOverhead,
    /// A malformed trailer field line (RFC 9112 §7.1.2). 400, close.
    BadTrailer,
    /// The trailer section exceeds the decoder's byte or field budget. 431, close.
    TrailersTooLarge,
}

impl ParseError {
    /// The HTTP status code the server must answer with.
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::ParseError;
    /// assert_eq!(ParseError::UriTooLong.status_code(), 414);
    /// assert_eq!(ParseError::UnsupportedVersion.status_code(), 505);
    /// ```
    #[must_use]
    pub fn status_code(&self) -> u16 {
        use ParseError::*;
        match self {
            MethodTooLong | UnknownMethod | UnknownMethodWithBody | UnknownTransferCoding => 501,
            UriTooLong => 414,
            UnsupportedVersion => 505,
            HeadersTooLarge | TooManyHeaders | TrailersTooLarge => 431,
            BodyTooLarge => 413,
            TooManyEmptyLines
            | BareLf
            | BareCr
            | BadRequestLine
            | BadMethod
            | BadTarget
            | BadVersion
            | BadHeaderName
            | SpaceBeforeColon
            | MissingColon
            | ObsFold
            | BadHeaderValue
            | MissingHost
            | DuplicateHost
            | BadHost
            | BadHostWithBody
            | BadContentLength
            | DuplicateContentLength
            | ContentLengthWithTransferEncoding
            | TransferEncodingHttp10
            | BadTransferEncoding
            | BadChunkSize
            | ChunkSizeOverflow
            | BadChunkExtension
            | ChunkExtensionTooLarge
            | BadChunkData
            | ChunkOverhead
            | BadTrailer => 400,
        }
    }

    /// The standard reason phrase for [`ParseError::status_code`].
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::ParseError;
    /// assert_eq!(ParseError::TooManyHeaders.reason(), "Request Header Fields Too Large");
    /// ```
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self.status_code() {
            400 => "Bad Request",
            413 => "Content Too Large",
            414 => "URI Too Long",
            431 => "Request Header Fields Too Large",
            501 => "Not Implemented",
            _ => "HTTP Version Not Supported",
        }
    }

    /// Whether the connection must be closed after the error response.
    ///
    /// `false` only for errors found in a complete head without a body, where the next
    /// request's first byte is known to be right after the head.
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::ParseError;
    /// assert!(!ParseError::MissingHost.must_close());
    /// assert!(ParseError::DuplicateContentLength.must_close());
    /// ```
    #[must_use]
    pub fn must_close(&self) -> bool {
        !matches!(
            self,
            ParseError::UnknownMethod
                | ParseError::MissingHost
                | ParseError::DuplicateHost
                | ParseError::BadHost
        )
    }

    /// A short, stable, human-readable description (no request bytes are echoed).
    fn description(&self) -> &'static str {
        use ParseError::*;
        match self {
            TooManyEmptyLines => "too many empty lines before the request line",
            BareLf => "line terminated by a bare LF",
            BareCr => "bare CR not followed by LF",
            BadRequestLine => "malformed request line",
            BadMethod => "method is not a token",
            MethodTooLong => "method too long",
            UnknownMethod => "method not implemented",
            UnknownMethodWithBody => "method not implemented (request has a body)",
            BadTarget => "malformed request-target",
            UriTooLong => "request line too long",
            BadVersion => "malformed HTTP version",
            UnsupportedVersion => "HTTP version not supported",
            BadHeaderName => "malformed field name",
            SpaceBeforeColon => "whitespace between field name and colon",
            MissingColon => "field line without a colon",
            ObsFold => "obsolete line folding or leading whitespace",
            BadHeaderValue => "control character in field value",
            HeadersTooLarge => "header section too large",
            TooManyHeaders => "too many header fields",
            MissingHost => "missing Host header",
            DuplicateHost => "more than one Host header",
            BadHost => "invalid Host header",
            BadHostWithBody => "invalid or missing Host header (request has a body)",
            BadContentLength => "invalid Content-Length",
            DuplicateContentLength => "more than one Content-Length",
            ContentLengthWithTransferEncoding => "both Transfer-Encoding and Content-Length",
            TransferEncodingHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            BadTransferEncoding => "invalid Transfer-Encoding",
            UnknownTransferCoding => "transfer coding not implemented",
            BodyTooLarge => "body too large",
            BadChunkSize => "invalid chunk size",
            ChunkSizeOverflow => "chunk size too large",
            BadChunkExtension => "invalid chunk extension",
            ChunkExtensionTooLarge => "chunk extensions too large",
            BadChunkData => "chunk data not terminated by CRLF",
            ChunkOverhead => "too much chunk framing overhead",
            BadTrailer => "invalid trailer field",
            TrailersTooLarge => "trailer section too large",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description(), self.status_code())
    }
}

impl std::error::Error for ParseError {}
