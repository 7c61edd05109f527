#![cfg(not(loom))]
//! Properties of the pure HTTP/1.1 request parser and chunked decoder (proptest).
//!
//! proptest generates *valid* requests as structured values (method, origin/absolute/asterisk
//! target, version, leading empty lines, header names, values with obs-text and optional
//! whitespace, Host, Connection, Expect, and a Content-Length or chunked body with extensions and
//! trailers), serializes them, and checks that parsing gives back exactly what was generated; that
//! every prefix of a valid head is `Partial` (never an error) and incremental feeding through
//! `parse_from` ends in the same result; and that arbitrary or mutated bytes never panic, stay
//! within the limits, and are prefix-consistent (a prefix parses to `Partial` or to exactly the
//! whole input's result). proptest fits because these inputs are structured and a failure should
//! shrink to the shortest request that shows it. Case counts: `PARSER_PROPTEST_CASES` if set, else
//! ten times `PROPTEST_CASES` (so CI's 1000 gives 10,000 per property), else 256 for a quick local
//! run. The runner is driven directly rather than through `proptest!`, because that macro would
//! let `PROPTEST_CASES` override the parser's own count. Failures are persisted in
//! `parser_props.regressions` beside this file.

use std::fmt::Debug;

use poolserve::http::{
    ChunkedDecoder, EMPTY_HEADER, Framing, Header, Limits, Request, Status, Version, head_end,
    parse, parse_from,
};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestRunner};

/// Cases per property; see the module docs.
fn cases() -> u32 {
    let var = |name| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    var("PARSER_PROPTEST_CASES")
        .or_else(|| var("PROPTEST_CASES").map(|n| n.saturating_mul(10)))
        .unwrap_or(256)
}

/// Runs one property with the parser's case count and regression file.
fn check<S>(name: &'static str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        source_file: Some(file!()),
        test_name: Some(name),
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Generating valid requests.

const SPECIAL: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
];

#[derive(Debug, Clone)]
enum Body {
    None,
    Length(Vec<u8>),
    /// Chunks (each non-empty), extensions per chunk line (last one for the final `0` chunk),
    /// trailer lines, upper-case hex sizes.
    Chunked {
        chunks: Vec<Vec<u8>>,
        exts: Vec<String>,
        trailers: Vec<(String, String)>,
        upper: bool,
    },
}

/// One field line as sent: name, value, whitespace before and after the value.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    value: Vec<u8>,
    pre: &'static str,
    post: &'static str,
}

#[derive(Debug, Clone)]
struct Req {
    leading_empty: usize,
    method: &'static str,
    target: String,
    version: Version,
    fields: Vec<Field>,
    keep_alive: bool,
    expect_continue: bool,
    body: Body,
}

impl Req {
    fn head(&self) -> Vec<u8> {
        let mut out = b"\r\n".repeat(self.leading_empty);
        let version = match self.version {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        };
        out.extend_from_slice(format!("{} {} {version}\r\n", self.method, self.target).as_bytes());
        for f in &self.fields {
            out.extend_from_slice(f.name.as_bytes());
            out.push(b':');
            out.extend_from_slice(f.pre.as_bytes());
            out.extend_from_slice(&f.value);
            out.extend_from_slice(f.post.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The body bytes as sent on the wire.
    fn wire_body(&self) -> Vec<u8> {
        match &self.body {
            Body::None => Vec::new(),
            Body::Length(b) => b.clone(),
            Body::Chunked {
                chunks,
                exts,
                trailers,
                upper,
            } => {
                let mut out = Vec::new();
                for (i, c) in chunks.iter().enumerate() {
                    let size = if *upper {
                        format!("{:X}", c.len())
                    } else {
                        format!("{:x}", c.len())
                    };
                    out.extend_from_slice(format!("{size}{}\r\n", exts[i]).as_bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(format!("0{}\r\n", exts[chunks.len()]).as_bytes());
                for (name, value) in trailers {
                    out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                out
            }
        }
    }

    fn decoded_body(&self) -> Vec<u8> {
        match &self.body {
            Body::None => Vec::new(),
            Body::Length(b) => b.clone(),
            Body::Chunked { chunks, .. } => chunks.concat(),
        }
    }

    fn framing(&self) -> Framing {
        match &self.body {
            Body::None => Framing::None,
            Body::Length(b) => Framing::Length(b.len() as u64),
            Body::Chunked { .. } => Framing::Chunked,
        }
    }
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}"
}

fn field_name() -> impl Strategy<Value = String> {
    token().prop_filter("not a header the generator sets itself", |n| {
        !SPECIAL.iter().any(|s| s.eq_ignore_ascii_case(n))
    })
}

/// A field value: VCHAR or obs-text at both ends, SP/HTAB allowed inside.
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    let edge = prop_oneof![3 => 0x21u8..=0x7e, 1 => 0x80u8..=0xff];
    let inner =
        prop_oneof![6 => 0x21u8..=0x7e, 1 => 0x80u8..=0xff, 1 => Just(b' '), 1 => Just(b'\t')];
    prop_oneof![
        1 => Just(Vec::new()),
        1 => edge.clone().prop_map(|b| vec![b]),
        4 => (edge.clone(), prop::collection::vec(inner, 0..24), edge).prop_map(|(a, mut mid, z)| {
            mid.insert(0, a);
            mid.push(z);
            mid
        }),
    ]
}

fn ows() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => Just(""), 3 => Just(" "), 1 => Just("\t"), 1 => Just(" \t ")]
}

fn host() -> impl Strategy<Value = String> {
    (
        "[a-z][a-z0-9-]{0,8}(\\.[a-z][a-z0-9]{0,7}){0,2}",
        prop::option::of(1u32..=65535),
    )
        .prop_map(|(h, port)| match port {
            Some(p) => format!("{h}:{p}"),
            None => h,
        })
}

fn origin_target() -> impl Strategy<Value = String> {
    let segment = "([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2}){0,8}";
    let query = "([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2}){0,12}";
    (
        prop::collection::vec(segment, 0..4),
        prop::option::of(query),
    )
        .prop_map(|(segs, q)| {
            let mut t = format!("/{}", segs.join("/"));
            if let Some(q) = q {
                t.push('?');
                t.push_str(&q);
            }
            t
        })
}

fn absolute_target() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("http://"), Just("https://"), Just("HTTP://")],
        host(),
        prop::option::of(origin_target()),
    )
        .prop_map(|(scheme, host, path)| format!("{scheme}{host}{}", path.unwrap_or_default()))
}

fn body(version: Version) -> BoxedStrategy<Body> {
    let bytes = |max| prop::collection::vec(any::<u8>(), 0..max);
    let length = bytes(600).prop_map(Body::Length);
    if version == Version::Http10 {
        return prop_oneof![Just(Body::None), length].boxed();
    }
    let ext = prop_oneof![
        3 => Just(String::new()),
        1 => (token(), prop::option::of(token())).prop_map(|(n, v)| match v {
            Some(v) => format!(";{n}={v}"),
            None => format!(";{n}"),
        }),
    ];
    let chunked = (
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..200), 0..5),
        prop::collection::vec(ext, 6),
        prop::collection::vec((field_name(), "[!-~]{1,12}"), 0..3),
        any::<bool>(),
    )
        .prop_map(|(chunks, exts, trailers, upper)| Body::Chunked {
            chunks,
            exts,
            trailers,
            upper,
        });
    prop_oneof![Just(Body::None), length, chunked].boxed()
}

fn request() -> impl Strategy<Value = Req> {
    let methods = prop::sample::select(vec![
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH",
    ]);
    let version = prop_oneof![Just(Version::Http11), Just(Version::Http10)];
    (methods, version)
        .prop_flat_map(|(method, version)| {
            let target = if method == "OPTIONS" {
                prop_oneof![2 => origin_target(), 1 => absolute_target(), 1 => Just("*".to_owned())]
                    .boxed()
            } else {
                prop_oneof![3 => origin_target(), 1 => absolute_target()].boxed()
            };
            let want_host = if version == Version::Http11 {
                Just(true).boxed()
            } else {
                any::<bool>().boxed()
            };
            let connection = prop::option::of(prop::sample::select(vec![
                "close",
                "keep-alive",
                "Keep-Alive",
                "upgrade",
                "close, upgrade",
            ]));
            let fields = prop::collection::vec((field_name(), field_value(), ows(), ows()), 0..6);
            (
                Just(method),
                Just(version),
                0usize..=4,
                target,
                (want_host, host()),
                connection,
                any::<bool>(),
                fields,
                body(version),
                (ows(), ows()),
            )
        })
        .prop_flat_map(
            |(
                method,
                version,
                leading_empty,
                target,
                (want_host, host),
                connection,
                expect,
                extra,
                body,
                (pre, post),
            )| {
                let mut fields: Vec<Field> = extra
                    .into_iter()
                    .map(|(name, value, pre, post)| Field {
                        name,
                        value,
                        pre,
                        post,
                    })
                    .collect();
                let special = |name: &str, value: &str| Field {
                    name: name.to_owned(),
                    value: value.as_bytes().to_vec(),
                    pre,
                    post,
                };
                if want_host {
                    fields.push(special("Host", &host));
                }
                if let Some(c) = connection {
                    fields.push(special("Connection", c));
                }
                if expect {
                    fields.push(special("Expect", "100-continue"));
                }
                match &body {
                    Body::None => {}
                    Body::Length(b) => fields.push(special("Content-Length", &b.len().to_string())),
                    Body::Chunked { .. } => fields.push(special("Transfer-Encoding", "chunked")),
                }
                let (close, ka) = match connection {
                    Some(c) => (c.contains("close"), c.eq_ignore_ascii_case("keep-alive")),
                    None => (false, false),
                };
                let keep_alive = match version {
                    Version::Http11 => !close,
                    Version::Http10 => ka && !close,
                };
                let expect_continue = expect && version == Version::Http11;
                (
                    Just(fields).prop_shuffle(),
                    Just((
                        leading_empty,
                        method,
                        target,
                        version,
                        keep_alive,
                        expect_continue,
                        body,
                    )),
                )
            },
        )
        .prop_map(
            |(
                fields,
                (leading_empty, method, target, version, keep_alive, expect_continue, body),
            )| Req {
                leading_empty,
                method,
                target,
                version,
                fields,
                keep_alive,
                expect_continue,
                body,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Checking a parse against the generated request.

fn expect_matches(req: &Req, got: &Request<'_, '_>) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.method, req.method);
    prop_assert_eq!(got.target, req.target.as_str());
    prop_assert_eq!(got.version, req.version);
    prop_assert_eq!(got.headers.len(), req.fields.len());
    for (h, f) in got.headers.iter().zip(&req.fields) {
        prop_assert_eq!(h.name, f.name.as_str());
        prop_assert_eq!(h.value, f.value.as_slice(), "value of {}", f.name);
    }
    prop_assert_eq!(got.framing, req.framing());
    prop_assert_eq!(got.keep_alive, req.keep_alive);
    prop_assert_eq!(got.expect_continue, req.expect_continue);
    let path_end = req.target.find('?').unwrap_or(req.target.len());
    if req.target.starts_with('/') {
        prop_assert_eq!(got.path(), &req.target[..path_end]);
    }
    Ok(())
}

/// Decodes the chunked body at the start of `wire` (followed by other bytes), fed in the pieces
/// given by `cuts`. Returns the decoded body and how many bytes of `wire` it used.
fn decode_in_pieces(wire: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, usize), String> {
    let mut decoder = ChunkedDecoder::new(Limits::default().max_body);
    let mut out = Vec::new();
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c % (wire.len() + 1)).collect();
    bounds.push(wire.len());
    bounds.sort_unstable();
    bounds.dedup();
    let mut at = 0;
    for end in bounds {
        let piece = &wire[at..end];
        let status = decoder
            .decode(piece, &mut out)
            .map_err(|e| format!("{e:?} at byte {at}"))?;
        if status.done {
            return Ok((out, at + status.consumed));
        }
        if status.consumed != piece.len() {
            return Err(format!(
                "not done, but took {} of {} bytes",
                status.consumed,
                piece.len()
            ));
        }
        at = end;
    }
    Err("never done".into())
}

fn header_array() -> [Header<'static>; 32] {
    [EMPTY_HEADER; 32]
}

#[test_log::test]
fn valid_requests_round_trip() {
    check(
        "valid_requests_round_trip",
        (request(), prop::collection::vec(any::<usize>(), 0..6)),
        |(req, cuts)| {
            let head = req.head();
            let wire_body = req.wire_body();
            let mut buf = head.clone();
            buf.extend_from_slice(&wire_body);
            buf.extend_from_slice(b"GET /next HTTP/1.1\r\n"); // the next request must not be touched
            let limits = Limits::default();

            let mut headers = header_array();
            let parsed = parse(&buf, &mut headers, &limits);
            let Ok(Status::Complete(got, consumed)) = parsed else {
                return Err(TestCaseError::fail(format!(
                    "{parsed:?} for {:?}",
                    String::from_utf8_lossy(&head)
                )));
            };
            prop_assert_eq!(consumed, head.len());
            expect_matches(&req, &got)?;
            prop_assert_eq!(head_end(&buf, 0), Some(head.len()));
            let mut headers2 = header_array();
            prop_assert_eq!(parse_from(&buf, 0, &mut headers2, &limits), parsed);

            match &req.body {
                Body::None => {}
                Body::Length(b) => {
                    prop_assert_eq!(&buf[consumed..consumed + b.len()], b.as_slice())
                }
                Body::Chunked { .. } => {
                    let (decoded, used) = decode_in_pieces(&buf[consumed..], &cuts)
                        .map_err(|e| TestCaseError::fail(format!("chunked body: {e}")))?;
                    prop_assert_eq!(decoded, req.decoded_body());
                    prop_assert_eq!(
                        used,
                        wire_body.len(),
                        "the decoder stops exactly at the body's end"
                    );
                }
            }
            Ok(())
        },
    );
}

#[test_log::test]
fn prefixes_of_a_valid_head_are_partial_and_feeding_converges() {
    check(
        "prefixes_of_a_valid_head",
        (request(), prop::collection::vec(any::<usize>(), 0..8)),
        |(req, cuts)| {
            let head = req.head();
            let limits = Limits::default();
            for k in 0..head.len() {
                let mut headers = header_array();
                let got = parse(&head[..k], &mut headers, &limits);
                prop_assert!(
                    matches!(got, Ok(Status::Partial)),
                    "prefix of {} bytes gave {:?}",
                    k,
                    got
                );
            }
            // Incremental feeding at random cut points.
            let mut whole_headers = header_array();
            let whole = parse(&head, &mut whole_headers, &limits);
            prop_assert!(matches!(whole, Ok(Status::Complete(..))));
            let mut bounds: Vec<usize> = cuts.iter().map(|&c| c % (head.len() + 1)).collect();
            bounds.push(head.len());
            bounds.sort_unstable();
            bounds.dedup();
            let mut prev = 0;
            for end in bounds {
                let mut headers = header_array();
                match parse_from(&head[..end], prev, &mut headers, &limits) {
                    Ok(Status::Partial) if end < head.len() => prev = end,
                    got if end == head.len() => prop_assert_eq!(got, whole),
                    got => {
                        return Err(TestCaseError::fail(format!(
                            "parse_from at {end} (prev {prev}) gave {got:?}"
                        )));
                    }
                }
            }
            Ok(())
        },
    );
}

/// Inputs near the valid ones: a valid request with a few bytes replaced, inserted or removed.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<usize>(), any::<u8>(), 0u8..3);
    (request(), prop::collection::vec(edit, 1..4)).prop_map(|(req, edits)| {
        let mut buf = req.head();
        buf.extend_from_slice(&req.wire_body());
        for (at, byte, op) in edits {
            let at = at % (buf.len() + 1);
            match op {
                0 if at < buf.len() => buf[at] = byte,
                1 => buf.insert(at, byte),
                _ if at < buf.len() => {
                    buf.remove(at);
                }
                _ => buf.push(byte),
            }
        }
        buf
    })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..300),
        // Mostly printable with line breaks: gets past the first byte more often.
        1 => prop::collection::vec(prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'\r'), 1 => Just(b'\n')], 0..300),
        2 => mutated(),
    ]
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        1 => Just(Limits::default()),
        1 => (1usize..64, 1usize..256, 0usize..6, 0u64..100).prop_map(|(l, h, n, b)| Limits {
            max_request_line: l,
            max_head: h,
            max_headers: n,
            max_body: b,
        }),
    ]
}

#[test_log::test]
fn arbitrary_bytes_never_panic_and_stay_prefix_consistent() {
    check(
        "arbitrary_bytes",
        (bytes(), limits(), 0usize..33),
        |(buf, limits, slots)| {
            let mut headers = vec![EMPTY_HEADER; slots];
            let whole = parse(&buf, &mut headers, &limits);
            match &whole {
                Ok(Status::Complete(req, n)) => {
                    prop_assert!(
                        *n <= buf.len() && *n <= limits.max_head,
                        "consumed {} of {}",
                        n,
                        buf.len()
                    );
                    prop_assert!(req.headers.len() <= slots.min(limits.max_headers));
                    if let Framing::Length(len) = req.framing {
                        prop_assert!(len <= limits.max_body);
                    }
                }
                Ok(Status::Partial) => {
                    prop_assert!(
                        buf.len() <= limits.max_head,
                        "Partial with {} bytes > max_head",
                        buf.len()
                    );
                }
                Err(e) => {
                    prop_assert!((400..=505).contains(&e.status_code()));
                    prop_assert!(!e.reason().is_empty());
                }
            }
            for k in 0..buf.len() {
                let mut prefix_headers = vec![EMPTY_HEADER; slots];
                let prefix = parse(&buf[..k], &mut prefix_headers, &limits);
                if !matches!(prefix, Ok(Status::Partial)) {
                    prop_assert_eq!(
                        &prefix,
                        &whole,
                        "prefix of {} bytes disagrees with the whole input",
                        k
                    );
                }
                let prefix_was_partial = matches!(prefix, Ok(Status::Partial));
                if prefix_was_partial {
                    let mut from_headers = vec![EMPTY_HEADER; slots];
                    let from = parse_from(&buf, k, &mut from_headers, &limits);
                    if !matches!(from, Ok(Status::Partial)) {
                        prop_assert_eq!(
                            &from,
                            &whole,
                            "parse_from(prev_len = {}) disagrees with parse",
                            k
                        );
                    }
                }
            }
            // The chunked decoder on the same bytes: no panic, consumes within the input, bounded output.
            let mut decoder = ChunkedDecoder::new(limits.max_body);
            let mut out = Vec::new();
            if let Ok(status) = decoder.decode(&buf, &mut out) {
                prop_assert!(status.consumed <= buf.len());
                prop_assert!(status.done || status.consumed == buf.len());
            }
            prop_assert!(out.len() as u64 <= limits.max_body);
            Ok(())
        },
    );
}
