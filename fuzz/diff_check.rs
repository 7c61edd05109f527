//! The check behind the `diff_httparse` fuzz target: differential test of `poolserve::http::parse` against httparse.
//!
//! Where both accept a head, method, target, version, field lines and head length must agree.
//! Where they disagree, the input must fall into one of the documented intentional-difference
//! classes below; anything else panics.
//!
//! | class | we | httparse |
//! |---|---|---|
//! | `version-1x`: `HTTP/1.2`…`HTTP/1.9` | accept as HTTP/1.1 (RFC 9110 §2.5) | reject |
//! | `version-major`: a major other than 1 | 505 once `HTTP/d.d CRLF` is complete | reject at the digit |
//! | `bare-lf`: a line ends in LF without CR | 400 `BareLf` | accept |
//! | `leading-empty`: more than 4 leading empty lines | 400 `TooManyEmptyLines` | skip any number |
//! | `limits`: request line, head size, field count, method length | 414 / 431 / 501 | no limit |
//! | `target`: byte outside RFC 3986, bad `%XX`, `#`, non-ASCII, form not allowed for the method | 400 `BadTarget` | accept |
//! | `semantic`: re-serialising httparse's view canonically gives us the same error (Host, unknown method, framing, target form) | 400 / 413 / 501 | accept (no such checks) |
//!
//! "Re-serialising canonically" means building `METHOD SP target SP version CRLF` and
//! `name: value CRLF` lines from what httparse returned: if our parser rejects that clean
//! message with the same error, the disagreement is about meaning, not syntax.
//!
//! Included by `fuzz_targets/diff_httparse.rs` and by `tests/fuzz_corpus.rs` (httparse is a
//! dev-dependency of the main crate), so corpus inputs are replayed on stable too.
use poolserve::fuzz_support::{Outcome, outcome};
use poolserve::http::{
    Limits, MAX_FIELD_LINE, MAX_LEADING_EMPTY_LINES, MAX_METHOD_LEN, ParseError, Version,
};

/// Errors that only a check httparse does not make can produce.
fn is_semantic(e: ParseError) -> bool {
    use ParseError::*;
    matches!(
        e,
        MissingHost
            | DuplicateHost
            | BadHost
            | BadHostWithBody
            | UnknownMethod
            | UnknownMethodWithBody
            | BadContentLength
            | DuplicateContentLength
            | ContentLengthWithTransferEncoding
            | TransferEncodingHttp10
            | BadTransferEncoding
            | UnknownTransferCoding
            | BodyTooLarge
            | BadTarget
            | MethodTooLong
    )
}

fn has_bare_lf(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
}

fn leading_empty_lines(data: &[u8]) -> usize {
    data.chunks(2).take_while(|c| *c == b"\r\n").count()
}

/// Whether the first line names a version httparse rejects but we do not (yet): a major
/// version other than 1, which we answer with 505 only once the version and its CRLF are
/// complete, or `1.2`…`1.9`, which we accept as HTTP/1.1.
fn version_1x(data: &[u8]) -> bool {
    // httparse skips any leading CR and LF.
    let start = data
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(data.len());
    let data = &data[start..];
    let line_end = data
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(data.len());
    let line = &data[..line_end];
    let Some(at) = line.windows(5).rposition(|w| w == b"HTTP/") else {
        return false;
    };
    match &line[at + 5..] {
        [major, ..] if major.is_ascii_digit() && *major != b'1' => true,
        [b'1', b'.', minor, ..] => minor.is_ascii_digit() && *minor >= b'2',
        _ => false,
    }
}

/// Limit-related errors and whether the input really is over the limit.
fn over_limit(e: ParseError, data: &[u8], limits: &Limits) -> bool {
    match e {
        ParseError::HeadersTooLarge => {
            data.len() > limits.max_head
                || data
                    .split(|&b| b == b'\n')
                    .any(|line| line.len() > MAX_FIELD_LINE)
        }
        ParseError::UriTooLong => data.len() > limits.max_request_line,
        ParseError::TooManyHeaders => {
            data.windows(2).filter(|w| *w == b"\r\n").count() > limits.max_headers
        }
        ParseError::MethodTooLong => {
            let start = leading_empty_lines(data) * 2;
            data[start..].iter().take_while(|&&b| b != b' ').count() > MAX_METHOD_LEN
        }
        _ => false,
    }
}

fn canonical(req: &httparse::Request<'_, '_>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(req.method.unwrap_or("").as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.path.unwrap_or("").as_bytes());
    out.extend_from_slice(if req.version == Some(0) {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    for h in req.headers.iter() {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Runs the differential check on one input; panics on an unexplained disagreement.
pub fn check(data: &[u8]) {
    let limits = Limits::default();
    let ours = outcome(data, &limits);
    let mut hh = [httparse::EMPTY_HEADER; 128];
    let mut theirs = httparse::Request::new(&mut hh);
    let result = theirs.parse(data);

    match (&ours, &result) {
        (
            Outcome::Complete {
                method,
                target,
                version,
                headers,
                consumed,
                ..
            },
            Ok(httparse::Status::Complete(n)),
        ) => {
            assert_eq!(Some(method.as_str()), theirs.method, "method");
            assert_eq!(Some(target.as_str()), theirs.path, "target");
            let v = if *version == Version::Http10 { 0 } else { 1 };
            assert_eq!(Some(v), theirs.version, "version");
            assert_eq!(consumed, n, "head length");
            assert_eq!(headers.len(), theirs.headers.len(), "header count");
            for ((name, value), h) in headers.iter().zip(theirs.headers.iter()) {
                assert_eq!(name, h.name, "header name");
                assert_eq!(value.as_slice(), h.value, "value of {name}");
            }
        }
        (Outcome::Complete { .. }, Err(httparse::Error::Version))
        | (Outcome::Partial, Err(httparse::Error::Version)) => {
            assert!(version_1x(data), "version class: {ours:?}");
        }
        (Outcome::Complete { .. }, other) => {
            panic!("we accept, httparse says {other:?}");
        }
        (Outcome::Error(e), Ok(httparse::Status::Complete(n))) => {
            let head = &data[..*n];
            if *e == ParseError::BareLf {
                assert!(has_bare_lf(head), "BareLf without a bare LF");
            } else if *e == ParseError::TooManyEmptyLines {
                assert!(leading_empty_lines(data) > MAX_LEADING_EMPTY_LINES);
            } else if over_limit(*e, data, &limits) {
            } else {
                let again = outcome(&canonical(&theirs), &limits);
                assert!(
                    again == Outcome::Error(*e) && is_semantic(*e),
                    "we reject with {e:?}, httparse accepts; canonical form gives {again:?}"
                );
            }
        }
        (Outcome::Error(e), Ok(httparse::Status::Partial)) => {
            // httparse has no limits and accepts more bytes; we may fail earlier.
            let ok = over_limit(*e, data, &limits)
                || matches!(e, ParseError::BareLf | ParseError::BadTarget)
                || (*e == ParseError::TooManyEmptyLines
                    && leading_empty_lines(data) > MAX_LEADING_EMPTY_LINES);
            assert!(ok, "we reject a prefix with {e:?}, httparse wants more");
        }
        (Outcome::Partial, Ok(httparse::Status::Complete(n))) => {
            panic!("httparse complete at {n}, we want more");
        }
        (Outcome::Partial, Err(e)) => {
            panic!("httparse rejects with {e:?}, we want more");
        }
        (Outcome::Error(_), Err(_)) | (Outcome::Partial, Ok(httparse::Status::Partial)) => {}
    }
}
