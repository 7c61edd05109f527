//! The adversarial catalog at the socket level: every case of classes A–I
//! (`tests/cases/catalog.txt`) is sent to a running server over TCP, and classes J (ranges and
//! conditionals) and K (path traversal and the filesystem) are checked against a site built for them.
//! Each case checks the status, and whether the connection stays usable or is closed.
#![cfg(not(loom))]

#[path = "common/cases.rs"]
mod cases;
mod util;

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use cases::Answer;
use poolserve::Server;
use poolserve::files::StaticFiles;
use poolserve::http::{Request, Response};
use util::*;

/// Statuses that only the parser/framing layer produces.
const PARSER_ERRORS: [u16; 6] = [400, 413, 414, 431, 501, 505];

/// Reads the next final (non-1xx) response.
fn final_reply(s: &mut TcpStream, head_only: bool) -> Option<Reply> {
    loop {
        let r = read_reply(s, head_only)?;
        if r.status >= 200 {
            return Some(r);
        }
    }
}

/// The connection is still usable: another request on it is answered.
fn still_open(s: &mut TcpStream) -> bool {
    if s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n")
        .is_err()
    {
        return false;
    }
    final_reply(s, false).is_some_and(|r| r.status == 200)
}

/// Which handler the catalog is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Serving {
    /// The static-file handler: it answers from the head alone ([`Handler::wants_body`] is
    /// false), so a request with a body that it refuses (`405`) may be answered before the body
    /// has arrived, or before a framing error in it is seen; the connection then closes.
    Files,
    /// A handler that reads every body: every case gets exactly the parser's verdict.
    Bodies,
}

/// May the server answer this case's first request from its head alone with `status`? Only the
/// static handler, only `405` to a method it refuses, only once the head is complete.
fn early_answer_allowed(serving: Serving, case: &cases::Case, status: u16) -> bool {
    serving == Serving::Files
        && status == 405
        && poolserve::http::head_end(&case.raw, 0).is_some()
        && ["POST ", "PUT ", "PATCH ", "DELETE "]
            .iter()
            .any(|m| case.raw.starts_with(m.as_bytes()))
}

/// Sends every case of classes A–I to a server on `addr`; fails listing every case that failed.
fn assert_catalog_passes(addr: std::net::SocketAddr, serving: Serving) {
    let failures = run_catalog(addr, serving);
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Sends every case of classes A–I to a server on `addr` and returns the failures.
fn run_catalog(addr: std::net::SocketAddr, serving: Serving) -> Vec<String> {
    let all = cases::load();
    assert!(all.len() >= 100, "the catalog has {} cases", all.len());
    let mut failures = Vec::new();
    for case in &all {
        let mut s = connect(addr);
        if s.write_all(&case.raw).is_err() {
            failures.push(format!("{}: write failed", case.name));
            continue;
        }
        let head_only = case.raw.starts_with(b"HEAD");
        // The catalog's `close` is the parser's verdict; the server also closes an HTTP/1.0
        // connection that did not ask for keep-alive (RFC 9112 §9.3), whatever the status.
        let first_line = case.raw.split(|&b| b == b'\n').next().unwrap_or_default();
        let http10_close = first_line.ends_with(b"HTTP/1.0\r")
            && !String::from_utf8_lossy(&case.raw)
                .to_ascii_lowercase()
                .contains("keep-alive");
        let want_close = case.close || http10_close;
        let mut problem = None;
        let mut incomplete = false;
        let mut answered_early = false;
        for (i, answer) in case.expect.iter().enumerate() {
            match answer {
                Answer::Incomplete => {
                    incomplete = true;
                    break;
                }
                Answer::Status(want) => match final_reply(&mut s, head_only) {
                    Some(r) if r.status == *want => {}
                    Some(r) if i == 0 && early_answer_allowed(serving, case, r.status) => {
                        answered_early = true;
                        break;
                    }
                    Some(r) => {
                        problem = Some(format!("request {i}: status {} (wanted {want})", r.status))
                    }
                    None => problem = Some(format!("request {i}: no response (wanted {want})")),
                },
                Answer::Ok => match final_reply(&mut s, head_only) {
                    Some(r) => {
                        let want = match serving {
                            Serving::Files if i == 0 => case.server,
                            Serving::Files => None,
                            Serving::Bodies => Some(200),
                        };
                        if let Some(want) = want.filter(|w| *w != r.status) {
                            problem =
                                Some(format!("request {i}: status {} (wanted {want})", r.status));
                        } else if PARSER_ERRORS.contains(&r.status) {
                            problem = Some(format!(
                                "request {i}: accepted by the parser, but the server said {}",
                                r.status
                            ));
                        }
                    }
                    None => problem = Some(format!("request {i}: no response")),
                },
            }
            if problem.is_some() {
                break;
            }
        }
        if problem.is_none() {
            if answered_early {
                if !closed_by_peer(&mut s) {
                    problem = Some("answered early but left open (wanted close)".into());
                }
            } else if incomplete {
                // The client gives up: the server closes without a response (or, for the static
                // handler, answered from the complete head before giving up on the body).
                let _ = s.shutdown(Shutdown::Write);
                match final_reply(&mut s, head_only) {
                    None => {}
                    Some(r) if early_answer_allowed(serving, case, r.status) => {}
                    Some(r) => {
                        problem = Some(format!("answered an incomplete request: {}", r.status))
                    }
                }
            } else if want_close && !closed_by_peer(&mut s) {
                problem = Some("connection left open (wanted close)".into());
            } else if !want_close && !still_open(&mut s) {
                problem = Some("connection closed or unusable (wanted open)".into());
            }
        }
        if let Some(p) = problem {
            failures.push(format!("{:?} {}: {p}", serving, case.name));
        }
    }
    // The server is still up after all of it.
    assert_eq!(get(addr, "/hello.txt").status, 200);
    failures
}

#[test_log::test]
fn catalog_classes_a_to_i_over_tcp() {
    let site = Site::new();
    let srv = Running::start(
        Server::builder().threads(2),
        StaticFiles::new(&site.root).unwrap(),
    );
    assert_catalog_passes(srv.addr, Serving::Files);
}

/// The same catalog against a handler that reads every body (and echoes its length), so framing
/// errors in bodies are found and answered exactly as the parser says, and nothing is answered
/// before a request is complete.
#[test_log::test]
fn catalog_classes_a_to_i_over_tcp_with_a_body_reading_handler() {
    let site = Site::new();
    let files = StaticFiles::new(&site.root).unwrap();
    let handler = move |req: &Request<'_, '_>| {
        if req.path() == "/hello.txt" {
            return poolserve::Handler::handle(&files, req);
        }
        Response::new(200).body(format!("{} body bytes\n", req.body().len()))
    };
    let srv = Running::start(Server::builder().threads(2), handler);
    assert_catalog_passes(srv.addr, Serving::Bodies);
}

#[test_log::test]
fn catalog_class_j_ranges_and_conditionals() {
    let site = Site::new();
    std::fs::write(site.root.join("k.bin"), vec![b'x'; 1000]).unwrap();
    let srv = Running::start(
        Server::builder().threads(2),
        StaticFiles::new(&site.root).unwrap(),
    );
    let etag = get(srv.addr, "/k.bin").header("etag").unwrap().to_string();
    let ask = |extra: &str, method: &str| -> Reply {
        let raw = format!("{method} /k.bin HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
        let mut s = connect(srv.addr);
        s.write_all(raw.as_bytes()).unwrap();
        let reply = final_reply(&mut s, false).expect("a response");
        assert!(
            reply.status == 405 || still_open(&mut s),
            "{extra}: connection kept open"
        );
        reply
    };
    // J1
    let r = ask("Range: bytes=0-99\r\n", "GET");
    assert_eq!((r.status, r.body.len()), (206, 100));
    assert_eq!(r.header("content-range"), Some("bytes 0-99/1000"));
    // J2
    let r = ask("Range: bytes=5000-\r\n", "GET");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */1000"));
    // J3
    for bad in ["bytes=5-2", "bytes=abc"] {
        let r = ask(&format!("Range: {bad}\r\n"), "GET");
        assert_eq!((r.status, r.body.len()), (200, 1000), "{bad}");
    }
    // J4: many (overlapping) ranges are ignored: the whole file.
    let many = vec!["0-0"; 1000].join(",");
    let r = ask(&format!("Range: bytes={many}\r\n"), "GET");
    assert_eq!((r.status, r.body.len()), (200, 1000));
    // J5: POST with Range: the Range is ignored; POST is not allowed on a file.
    let r = ask("Range: bytes=0-1\r\nContent-Length: 0\r\n", "POST");
    assert_eq!(r.status, 405);
    // J6
    for inm in [etag.as_str(), "*"] {
        let raw = format!("GET /k.bin HTTP/1.1\r\nHost: a\r\nIf-None-Match: {inm}\r\n\r\n");
        let mut s = connect(srv.addr);
        s.write_all(raw.as_bytes()).unwrap();
        let r = read_reply(&mut s, true).unwrap();
        assert_eq!(r.status, 304, "{inm}");
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert!(r.header("last-modified").is_some() && r.header("date").is_some());
        assert!(still_open(&mut s));
    }
    // J7: INM wins over a future IMS.
    let r = ask(
        "If-None-Match: \"x\"\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n",
        "GET",
    );
    assert_eq!(r.status, 200);
    // J8: an invalid date is ignored.
    let r = ask("If-Modified-Since: garbage\r\n", "GET");
    assert_eq!(r.status, 200);
}

#[test_log::test]
fn catalog_class_k_paths_and_filesystem() {
    let site = Site::new();
    std::fs::create_dir_all(site.root.join("docs")).unwrap();
    std::fs::create_dir_all(site.root.join("evil.example/..")).ok();
    std::fs::create_dir_all(site.root.join("evil.example")).unwrap();
    std::fs::write(site.root.join("docs/<img src=x onerror=alert(1)>.txt"), "x").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("/etc", site.root.join("link")).unwrap();
    let srv = Running::start(
        Server::builder().threads(2),
        StaticFiles::new(&site.root).unwrap().list_dirs(true),
    );
    let cases: &[(&str, &str, u16)] = &[
        ("K1", "/../../etc/passwd", 400),
        ("K2", "/%2e%2e/%2e%2e/etc/passwd", 400),
        ("K3", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 400),
        ("K4", "/..%5c..%5cwindows%5cwin.ini", 400),
        ("K5", "/..\\..\\etc\\passwd", 400),
        ("K6", "/%252e%252e/%252e%252e/etc/passwd", 404),
        ("K7", "/index.html%00.txt", 400),
        ("K8", "//etc/passwd", 404),
        ("K9", "/C:/Windows/win.ini", 400),
        ("K9b", "/foo/c:/x", 400),
        ("K10", "/%c0%ae%c0%ae/etc/passwd", 400),
        ("K11", "/link/passwd", 404),
        ("K12", "/.git/config", 404),
        ("K12b", "/.env", 404),
        // The catalog allows 404; ours is 400 because `:` is refused in paths (K9) before the
        // lookup. Either way the decoded CR/LF never reaches a header (checked below).
        ("K16", "/%0d%0aSet-Cookie:%20x=y", 400),
        ("K17", "/CON", 404),
        ("K17b", "/hello.txt.", 404),
        ("K17c", "/hello.txt::$DATA", 400),
        ("K18", "/./a/../index.html", 200),
    ];
    let mut failures = Vec::new();
    for (id, target, want) in cases {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut s = connect(srv.addr);
        s.write_all(raw.as_bytes()).unwrap();
        match final_reply(&mut s, false) {
            Some(r) => {
                if r.status != *want {
                    failures.push(format!("{id} {target}: {} (wanted {want})", r.status));
                }
                if r.text().contains(SECRET) || r.text().contains("root:") {
                    failures.push(format!("{id} {target}: leaked a file outside the root"));
                }
                if r.headers.iter().any(|(n, _)| n == "set-cookie") {
                    failures.push(format!("{id} {target}: header injection"));
                }
                // The parser rejects K5's raw backslash (framing is lost: close); every other case
                // is a well-framed request, so the connection stays usable.
                let parser_rejected = *id == "K5";
                if !parser_rejected && !still_open(&mut s) {
                    failures.push(format!("{id} {target}: connection not kept open"));
                }
            }
            None => failures.push(format!("{id} {target}: no response")),
        }
    }
    // K13: a directory redirects to its slash form with one leading slash.
    let r = get(srv.addr, "/docs");
    assert_eq!((r.status, r.header("location")), (301, Some("/docs/")));
    // K14: never a protocol-relative Location.
    let r = get(srv.addr, "//evil.example/%2e%2e");
    assert!(
        r.header("location").is_none_or(|l| !l.starts_with("//")),
        "{:?}",
        r.header("location")
    );
    // K15: the listing escapes names and is served as HTML with nosniff.
    let r = get(srv.addr, "/docs/");
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("<img"), "{}", r.text());
    assert!(r.text().contains("&lt;img src=x onerror=alert(1)&gt;.txt"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
