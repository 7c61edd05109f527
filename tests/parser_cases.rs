#![cfg(not(loom))]
//! Table tests: every case of the adversarial catalog (`tests/cases/catalog.txt`, classes A–I)
//! through the parser, the framing decision and the chunked decoder, driven like a connection:
//! parse a head, read or decode its body, go on with the next pipelined request until the
//! bytes run out, an error closes the connection, or the request does not keep it alive.

#[path = "common/cases.rs"]
mod cases;

use cases::{Answer, Case};
use poolserve::http::{
    ChunkedDecoder, EMPTY_HEADER, Framing, Limits, ParseError, Status, head_end, parse, parse_from,
};

/// What the connection logic concluded for a whole case.
#[derive(Debug, PartialEq)]
struct Run {
    answers: Vec<Answer>,
    close: bool,
    expect_continue: Option<bool>,
    errors: Vec<ParseError>,
}

fn drive(raw: &[u8], limits: &Limits) -> Run {
    let mut run = Run {
        answers: Vec::new(),
        close: false,
        expect_continue: None,
        errors: Vec::new(),
    };
    let mut buf = raw;
    loop {
        let mut headers = [EMPTY_HEADER; 128];
        let (framing, keep_alive, consumed) = match parse(buf, &mut headers, limits) {
            Ok(Status::Partial) => {
                run.answers.push(Answer::Incomplete);
                run.close = true;
                return run;
            }
            Err(e) => {
                run.answers.push(Answer::Status(e.status_code()));
                run.errors.push(e);
                if e.must_close() {
                    run.close = true;
                    return run;
                }
                let skip = head_end(buf, 0).expect("a non-closing error has a complete head");
                buf = &buf[skip..];
                if buf.is_empty() {
                    return run;
                }
                continue;
            }
            Ok(Status::Complete(req, n)) => {
                if run.expect_continue.is_none() {
                    run.expect_continue = Some(req.expect_continue);
                }
                (req.framing, req.keep_alive, n)
            }
        };
        buf = &buf[consumed..];
        match framing {
            Framing::None => {}
            Framing::Length(n) => {
                let n = usize::try_from(n).expect("fits");
                if buf.len() < n {
                    run.answers.push(Answer::Incomplete);
                    run.close = true;
                    return run;
                }
                buf = &buf[n..];
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new(limits.max_body);
                let mut body = Vec::new();
                match decoder.decode(buf, &mut body) {
                    Err(e) => {
                        assert!(e.must_close());
                        run.answers.push(Answer::Status(e.status_code()));
                        run.errors.push(e);
                        run.close = true;
                        return run;
                    }
                    Ok(s) if !s.done => {
                        run.answers.push(Answer::Incomplete);
                        run.close = true;
                        return run;
                    }
                    Ok(s) => buf = &buf[s.consumed..],
                }
            }
        }
        run.answers.push(Answer::Ok);
        if !keep_alive {
            run.close = true;
            return run;
        }
        if buf.is_empty() {
            return run;
        }
    }
}

fn check(case: &Case) -> Result<(), String> {
    let run = drive(&case.raw, &Limits::default());
    if run.answers != case.expect || run.close != case.close {
        return Err(format!(
            "{}: expected {:?} close={}, got {:?} close={} (errors {:?})",
            case.name, case.expect, case.close, run.answers, run.close, run.errors
        ));
    }
    if let Some(expected) = case.expect_continue
        && run.expect_continue != Some(expected)
    {
        return Err(format!(
            "{}: expect_continue {:?}, wanted {expected}",
            case.name, run.expect_continue
        ));
    }
    Ok(())
}

#[test_log::test]
fn catalog_cases_get_expected_status_and_close() {
    let cases = cases::load();
    let failures: Vec<String> = cases.iter().filter_map(|c| check(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test_log::test]
fn catalog_covers_classes_a_to_i() {
    let cases = cases::load();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    for class in 'A'..='I' {
        let n = cases.iter().filter(|c| c.id().starts_with(class)).count();
        assert!(n >= 3, "class {class} has only {n} cases");
    }
    let mut ids: Vec<&str> = cases.iter().map(Case::id).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "duplicate case ids");
}

/// Prefixes of every case give `Partial` or the result of the whole input, and `parse_from`
/// fed in pieces agrees with `parse`.
#[test_log::test]
fn catalog_heads_are_split_invariant() {
    let limits = Limits::default();
    for case in cases::load() {
        let raw = &case.raw[..case.raw.len().min(40_000)];
        let full = poolserve::fuzz_support::outcome(raw, &limits);
        let step = (raw.len() / 300).max(1);
        for k in (0..=raw.len()).step_by(step) {
            let part = poolserve::fuzz_support::outcome(&raw[..k], &limits);
            assert!(
                part == poolserve::fuzz_support::Outcome::Partial || part == full,
                "{} prefix {k}: {part:?} vs {full:?}",
                case.name
            );
        }
        let mut prev = 0;
        let mut end = 0;
        while end < raw.len() {
            end = (end + 7).min(raw.len());
            let mut headers = [EMPTY_HEADER; 128];
            let inc = poolserve::fuzz_support::summarize(parse_from(
                &raw[..end],
                prev,
                &mut headers,
                &limits,
            ));
            if inc == poolserve::fuzz_support::Outcome::Partial {
                prev = end;
            } else {
                assert_eq!(inc, full, "{}: parse_from at {end}", case.name);
                break;
            }
        }
    }
}

/// The chunked bodies of the catalog decode identically byte by byte and in one call.
#[test_log::test]
fn catalog_chunked_bodies_are_slice_invariant() {
    for case in cases::load() {
        let mut headers = [EMPTY_HEADER; 128];
        if let Ok(Status::Complete(req, n)) = parse(&case.raw, &mut headers, &Limits::default())
            && req.framing == Framing::Chunked
        {
            let mut seed = vec![0u8];
            seed.extend_from_slice(&case.raw[n..case.raw.len().min(n + 70_000)]);
            poolserve::fuzz_support::chunked_decode(&seed);
        }
    }
}

#[test_log::test]
fn trailers_are_not_merged_and_body_is_decoded() {
    let raw = b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\nContent-Length: 10\r\nHost: evil\r\n\r\nNEXT";
    let mut decoder = ChunkedDecoder::new(100);
    let mut body = Vec::new();
    let status = decoder.decode(raw, &mut body).expect("valid body");
    assert!(status.done);
    assert_eq!(body, b"hello world");
    assert_eq!(&raw[status.consumed..], b"NEXT");
}

#[test_log::test]
fn partial_input_over_a_limit_is_rejected_early() {
    let limits = Limits::default();
    let mut headers = [EMPTY_HEADER; 128];
    let mut long_line = b"GET /".to_vec();
    long_line.resize(limits.max_request_line + 10, b'a');
    assert_eq!(
        parse(&long_line, &mut headers, &limits),
        Err(ParseError::UriTooLong)
    );
    let mut long_head = b"GET / HTTP/1.1\r\n".to_vec();
    while long_head.len() <= limits.max_head {
        long_head.extend_from_slice(b"X-Pad: 0123456789012345678901234567890123456789\r\n");
    }
    assert_eq!(
        parse(&long_head, &mut headers, &limits),
        Err(ParseError::TooManyHeaders)
    );
    let few = Limits {
        max_headers: 1000,
        ..limits
    };
    let mut big = [EMPTY_HEADER; 1000];
    assert_eq!(
        parse(&long_head, &mut big, &few),
        Err(ParseError::HeadersTooLarge)
    );
}

#[test_log::test]
fn every_error_maps_to_one_status() {
    use ParseError::*;
    let all = [
        TooManyEmptyLines,
        BareLf,
        BareCr,
        BadRequestLine,
        BadMethod,
        MethodTooLong,
        UnknownMethod,
        UnknownMethodWithBody,
        BadTarget,
        UriTooLong,
        BadVersion,
        UnsupportedVersion,
        BadHeaderName,
        SpaceBeforeColon,
        MissingColon,
        ObsFold,
        BadHeaderValue,
        HeadersTooLarge,
        TooManyHeaders,
        MissingHost,
        DuplicateHost,
        BadHost,
        BadHostWithBody,
        BadContentLength,
        DuplicateContentLength,
        ContentLengthWithTransferEncoding,
        TransferEncodingHttp10,
        BadTransferEncoding,
        UnknownTransferCoding,
        BodyTooLarge,
        BadChunkSize,
        ChunkSizeOverflow,
        BadChunkExtension,
        ChunkExtensionTooLarge,
        BadChunkData,
        ChunkOverhead,
        BadTrailer,
        TrailersTooLarge,
    ];
    for e in all {
        assert!(
            [400, 413, 414, 431, 501, 505].contains(&e.status_code()),
            "{e:?}"
        );
        assert!(!e.to_string().is_empty());
        let _: &dyn std::error::Error = &e;
    }
    let keep: Vec<_> = all.iter().filter(|e| !e.must_close()).collect();
    assert_eq!(
        keep,
        [&UnknownMethod, &MissingHost, &DuplicateHost, &BadHost]
    );
}
