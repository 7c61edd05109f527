//! Message body framing: the one place that decides how a request body is delimited.

use super::Limits;
use super::error::ParseError;
use super::request::{Header, Version};
use super::tables::{TCHAR, trim_ows};

/// How the body of a request is delimited (RFC 9112 §6.3).
///
/// # Examples
///
/// ```
/// use poolserve::http::Framing;
/// assert_eq!(Framing::Length(5).declared_len(), Some(5));
/// assert_eq!(Framing::Chunked.declared_len(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// No body: neither Transfer-Encoding nor Content-Length (RFC 9112 §6.3 item 7).
    None,
    /// Exactly this many bytes follow the head (a valid Content-Length, at most
    /// [`Limits::max_body`]).
    Length(u64),
    /// `Transfer-Encoding: chunked`; decode with [`ChunkedDecoder`](crate::http::ChunkedDecoder).
    Chunked,
}

impl Framing {
    /// The body length when it is known from the head (`Some(0)` for [`Framing::None`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use poolserve::http::Framing;
    /// assert_eq!(Framing::None.declared_len(), Some(0));
    /// ```
    #[must_use]
    pub fn declared_len(self) -> Option<u64> {
        match self {
            Framing::None => Some(0),
            Framing::Length(n) => Some(n),
            Framing::Chunked => None,
        }
    }
}

/// Decides the body framing of a request from its version and field lines.
///
/// RFC 9112 §6.3 lists, in order of precedence, how the length of a message body is
/// determined. Items 1, 2 and 8 concern responses only; the request items are quoted here,
/// each followed by what this function does:
///
/// > 3. If a message is received with both a Transfer-Encoding and a Content-Length header
/// >    field, the Transfer-Encoding overrides the Content-Length. Such a message might
/// >    indicate an attempt to perform request smuggling (Section 11.2) or response splitting
/// >    (Section 11.1) and ought to be handled as an error. […]
///
/// → [`ParseError::ContentLengthWithTransferEncoding`] (400, close).
///
/// > 4. If a Transfer-Encoding header field is present and the chunked transfer coding
/// >    (Section 7.1) is the final encoding, the message body length is determined by reading
/// >    and decoding the chunked data until the transfer coding indicates the data is
/// >    complete. […] If a Transfer-Encoding header field is present in a request and the
/// >    chunked transfer coding is not the final encoding, the message body length cannot be
/// >    determined reliably; the server MUST respond with the 400 (Bad Request) status code
/// >    and then close the connection.
///
/// → [`Framing::Chunked`] when the only coding is `chunked` (case-insensitive, empty list
/// elements tolerated, across all Transfer-Encoding lines);
/// [`ParseError::BadTransferEncoding`] when `chunked` is missing, not last, repeated, has
/// parameters, or the list is malformed; [`ParseError::UnknownTransferCoding`] (501) when a
/// coding we do not implement precedes a final `chunked`;
/// [`ParseError::TransferEncodingHttp10`] for any Transfer-Encoding in an HTTP/1.0 request
/// (RFC 9112 §6.1: the framing is faulty).
///
/// > 5. If a message is received without Transfer-Encoding and with an invalid
/// >    Content-Length header field, then the message framing is invalid and the recipient
/// >    MUST treat it as an unrecoverable error, unless the field value can be successfully
/// >    parsed as a comma-separated list (Section 5.6.1 of \[HTTP\]), all values in the list are
/// >    valid, and all values in the list are the same […]. If the unrecoverable error is in a
/// >    request message, the server MUST respond with a 400 (Bad Request) status code and then
/// >    close the connection. […]
///
/// → [`ParseError::BadContentLength`] unless the value is `1*DIGIT` that fits in `u64`
/// (leading zeros are grammar-valid and accepted). We do **not** take the "all values the
/// same" exception: a list, even `5, 5`, is `BadContentLength`, and a second Content-Length
/// line is [`ParseError::DuplicateContentLength`].
///
/// > 6. If a valid Content-Length header field is present without Transfer-Encoding, its
/// >    decimal value defines the expected message body length in octets. […]
///
/// → [`Framing::Length`], or [`ParseError::BodyTooLarge`] (413) above
/// [`Limits::max_body`].
///
/// > 7. If this is a request message and none of the above are true, then the message body
/// >    length is zero (no message body is present).
///
/// → [`Framing::None`].
///
/// # Errors
///
/// The variants named above; each of them closes the connection.
///
/// # Examples
///
/// ```
/// use poolserve::http::{framing, Framing, Header, Limits, ParseError, Version};
///
/// let limits = Limits::default();
/// let te = [Header { name: "Transfer-Encoding", value: b"chunked" }];
/// assert_eq!(framing(Version::Http11, &te, &limits), Ok(Framing::Chunked));
/// assert_eq!(framing(Version::Http10, &te, &limits), Err(ParseError::TransferEncodingHttp10));
///
/// let cl = [Header { name: "content-length", value: b"+5" }];
/// assert_eq!(framing(Version::Http11, &cl, &limits), Err(ParseError::BadContentLength));
/// ```
pub fn framing(
    version: Version,
    headers: &[Header<'_>],
    limits: &Limits,
) -> Result<Framing, ParseError> {
    let mut content_length: Option<&[u8]> = None;
    let mut cl_lines = 0usize;
    let mut te_lines = 0usize;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            cl_lines += 1;
            content_length = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te_lines += 1;
        }
    }

    if te_lines > 0 {
        if version == Version::Http10 {
            return Err(ParseError::TransferEncodingHttp10);
        }
        if cl_lines > 0 {
            return Err(ParseError::ContentLengthWithTransferEncoding);
        }
        return transfer_codings(headers);
    }

    match (cl_lines, content_length) {
        (0, _) | (_, None) => Ok(Framing::None),
        (1, Some(value)) => {
            let n = parse_content_length(value)?;
            if n > limits.max_body {
                Err(ParseError::BodyTooLarge)
            } else {
                Ok(Framing::Length(n))
            }
        }
        _ => Err(ParseError::DuplicateContentLength),
    }
}

/// Walks the coding list of every Transfer-Encoding line, in order.
fn transfer_codings(headers: &[Header<'_>]) -> Result<Framing, ParseError> {
    let mut codings = 0usize;
    let mut chunked_seen = false;
    let mut last_is_chunked = false;
    let mut unknown = false;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
    {
        for element in h.value.split(|&b| b == b',').map(trim_ows) {
            if element.is_empty() {
                continue; // RFC 9110 §5.6.1: empty list elements are tolerated.
            }
            let name_len = element
                .iter()
                .position(|&b| !TCHAR[usize::from(b)])
                .unwrap_or(element.len());
            let (name, params) = element.split_at(name_len);
            let params = trim_ows(params);
            if name.is_empty() || !(params.is_empty() || params[0] == b';') {
                return Err(ParseError::BadTransferEncoding);
            }
            codings += 1;
            if name.eq_ignore_ascii_case(b"chunked") {
                if chunked_seen || !params.is_empty() {
                    return Err(ParseError::BadTransferEncoding);
                }
                chunked_seen = true;
                last_is_chunked = true;
            } else {
                unknown = true;
                last_is_chunked = false;
            }
        }
    }
    if codings == 0 || !last_is_chunked {
        return Err(ParseError::BadTransferEncoding);
    }
    if unknown {
        return Err(ParseError::UnknownTransferCoding);
    }
    Ok(Framing::Chunked)
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6), with a hand-written loop and checked
/// arithmetic: no sign, no whitespace inside, no list, no overflow.
fn parse_content_length(value: &[u8]) -> Result<u64, ParseError> {
    if value.is_empty() {
        return Err(ParseError::BadContentLength);
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return Err(ParseError::BadContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(ParseError::BadContentLength)?;
    }
    Ok(n)
}
