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
