//! End-to-end tests of the server over real TCP on 127.0.0.1, with a raw client, `curl` and
//! Python's `http.client` / `urllib`.
#![cfg(not(loom))]

mod util;

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use poolserve::Server;
use poolserve::files::StaticFiles;
use poolserve::http::{Request, Response};
use util::*;

fn static_server(site: &Site) -> Running {
    Running::start(
        Server::builder().threads(2),
        StaticFiles::new(&site.root).unwrap(),
    )
}

#[test_log::test]
fn serves_index_and_404_page() {
    let site = Site::new();
    let srv = static_server(&site);
    let r = get(srv.addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<!DOCTYPE html><title>i</title>INDEX\n");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.header("date").is_some());
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let r = get(srv.addr, "/nope");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("NOT-FOUND-PAGE"));
    let r = get(srv.addr, "/hello.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "hello, world\n"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[test_log::test]
fn traversal_never_serves_a_file_outside_the_root() {
    let site = Site::new();
    let srv = static_server(&site);
    let attempts = [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "/%252e%252e/secret.txt",
        "//../secret.txt",
        "/./../secret.txt",
        "/link-out",
        "/dir-out/secret.txt",
        "/.hidden",
        "/%2ehidden",
        "/secret.txt%00.html",
        "http://t/../secret.txt",
    ];
    for target in attempts {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let reply = exchange(srv.addr, raw.as_bytes());
        if let Some(r) = reply {
            assert_ne!(r.status, 200, "{target} was served");
            assert!(!r.text().contains(SECRET), "{target} leaked the secret");
        }
    }
    // A symlink that stays inside the root is fine.
    assert_eq!(get(srv.addr, "/link-in").text(), "hello, world\n");
}

#[test_log::test]
fn keep_alive_pipelining_answers_in_order() {
    let site = Site::new();
    let srv = static_server(&site);
    let mut s = connect(srv.addr);
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /digits.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let a = read_reply(&mut s, false).unwrap();
    let b = read_reply(&mut s, false).unwrap();
    let c = read_reply(&mut s, false).unwrap();
    assert_eq!((a.status, a.text().as_str()), (200, "hello, world\n"));
    assert_eq!((b.status, b.text().as_str()), (200, "0123456789"));
    assert_eq!(c.status, 404);
    assert_eq!(c.header("connection"), Some("close"));
    assert!(closed_by_peer(&mut s));
}

#[test_log::test]
fn http10_closes_unless_keep_alive_is_asked() {
    let site = Site::new();
    let srv = static_server(&site);
    let mut s = connect(srv.addr);
    s.write_all(b"GET /hello.txt HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut s, false).unwrap().status, 200);
    assert!(closed_by_peer(&mut s));

    let mut s = connect(srv.addr);
    s.write_all(b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let r = read_reply(&mut s, false).unwrap();
    assert_eq!(r.header("connection"), Some("keep-alive"));
    s.write_all(b"GET /digits.txt HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut s, false).unwrap().text(), "0123456789");
}

#[test_log::test]
fn head_conditional_and_range_requests() {
    let site = Site::new();
    let srv = static_server(&site);
    let full = get(srv.addr, "/digits.txt");
    let etag = full.header("etag").unwrap().to_string();
    let lm = full.header("last-modified").unwrap().to_string();

    let head = exchange(
        srv.addr,
        b"HEAD /digits.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("10"));
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    let raw = format!(
        "GET /digits.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
    );
    let mut s = connect(srv.addr);
    s.write_all(raw.as_bytes()).unwrap();
    let r = read_reply(&mut s, true).unwrap();
    assert_eq!(r.status, 304);
    assert!(r.header("content-length").is_none());

    // If-None-Match wins over If-Modified-Since.
    let raw = format!(
        "GET /digits.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"other\"\r\nIf-Modified-Since: {lm}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(exchange(srv.addr, raw.as_bytes()).unwrap().status, 200);
    let raw = format!(
        "GET /digits.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {lm}\r\nConnection: close\r\n\r\n"
    );
    let mut s = connect(srv.addr);
    s.write_all(raw.as_bytes()).unwrap();
    assert_eq!(read_reply(&mut s, true).unwrap().status, 304);

    let r = exchange(
        srv.addr,
        b"GET /digits.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=2-4\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!((r.status, r.text().as_str()), (206, "234"));
    assert_eq!(r.header("content-range"), Some("bytes 2-4/10"));
    let r = exchange(
        srv.addr,
        b"GET /digits.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=-3\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.text(), "789");
    let r = exchange(
        srv.addr,
        b"GET /digits.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=10-\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */10"));
    // If-Range with a stale validator: the whole file.
    let r = exchange(srv.addr, b"GET /digits.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=2-4\r\nIf-Range: \"stale\"\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!((r.status, r.text().len()), (200, 10));
}

#[test_log::test]
fn methods_and_directories() {
    let site = Site::new();
    let srv = static_server(&site);
    let r = exchange(
        srv.addr,
        b"DELETE /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    let r = exchange(
        srv.addr,
        b"OPTIONS /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 204);
    let r = get(srv.addr, "/sub");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/sub/"));
    assert_eq!(get(srv.addr, "/sub/").text(), "SUB-INDEX\n");
    // No open redirect: the Location never starts with two slashes.
    let r = get(srv.addr, "//sub");
    assert_eq!(r.header("location"), Some("/sub/"));
    // A directory without index.html and listings off: 404.
    assert_eq!(get(srv.addr, "/empty/").status, 404);
}

#[test_log::test]
fn directory_listing_is_opt_in_and_escapes_names() {
    let site = Site::new();
    std::fs::remove_file(site.root.join("sub/index.html")).unwrap();
    let srv = Running::start(
        Server::builder().threads(1),
        StaticFiles::new(&site.root).unwrap().list_dirs(true),
    );
    let r = get(srv.addr, "/sub/");
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(html.contains("a &lt;b&gt;&amp;.txt"), "{html}");
    assert!(!html.contains("<b>"));
    assert!(!get(srv.addr, "/").text().contains(".hidden"));
}

/// A path ending in `/` tries `index.html` before looking at the directory; every case where that
/// shortcut does not apply must get the answer the directory logic gives.
#[test_log::test]
fn directory_requests_try_index_html_first_and_fall_back_unchanged() {
    let site = Site::new();
    // `index.html` that is itself a directory: not an index page, so the listing is served.
    std::fs::create_dir_all(site.root.join("odd/index.html")).unwrap();
    std::fs::write(site.root.join("odd/page.txt"), "page\n").unwrap();
    #[cfg(unix)]
    {
        // An index page that escapes the root through a symlink is refused (listing instead)...
        std::fs::create_dir_all(site.root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../secret.txt", site.root.join("escape/index.html"))
            .unwrap();
        // ...while one that stays inside the root is served.
        std::fs::create_dir_all(site.root.join("alias")).unwrap();
        std::os::unix::fs::symlink("../hello.txt", site.root.join("alias/index.html")).unwrap();
    }
    let srv = Running::start(
        Server::builder().threads(1),
        StaticFiles::new(&site.root).unwrap().list_dirs(true),
    );
    let r = get(srv.addr, "/sub/");
    assert_eq!((r.status, r.text().as_str()), (200, "SUB-INDEX\n"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = get(srv.addr, "/odd/");
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(html.contains("Index of /odd/"), "{html}");
    assert!(html.contains("./index.html/"), "{html}");
    assert!(html.contains("./page.txt"), "{html}");
    // Without the slash, a directory is still redirected, even when it has an index page.
    let r = get(srv.addr, "/sub");
    assert_eq!((r.status, r.header("location")), (301, Some("/sub/")));
    // A directory without `index.html`: the listing, as before.
    assert!(get(srv.addr, "/empty/").text().contains("Index of /empty/"));
    // Absent directories are 404, with the site's page.
    let r = get(srv.addr, "/missing/");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("NOT-FOUND-PAGE"));
    // A regular file named with a trailing slash (`hello.txt/index.html` fails with ENOTDIR):
    // the slash is dropped by path resolution and the file is served, as before this shortcut.
    assert_eq!(get(srv.addr, "/hello.txt/").text(), "hello, world\n");
    #[cfg(unix)]
    {
        let r = get(srv.addr, "/escape/");
        assert!(
            !r.text().contains(SECRET),
            "the index symlink leaked the secret"
        );
        assert!(r.text().contains("Index of /escape/"), "{}", r.text());
        let r = get(srv.addr, "/alias/");
        assert_eq!((r.status, r.text().as_str()), (200, "hello, world\n"));
    }
    drop(srv);
    // Listings off: a directory whose `index.html` is a directory answers 404.
    let srv = static_server(&site);
    assert_eq!(get(srv.addr, "/odd/").status, 404);
    assert_eq!(get(srv.addr, "/sub/").text(), "SUB-INDEX\n");
}

/// The site's `404.html` is opened like any served file: a symlink that leads out of the root is
/// not followed (the plain 404 is sent), one that stays inside is used, and a directory named
/// `404.html` is ignored.
#[cfg(unix)]
#[test_log::test]
fn not_found_page_never_leaves_the_root() {
    let site = Site::new();
    let page = site.root.join("404.html");
    std::fs::remove_file(&page).unwrap();
    std::os::unix::fs::symlink("../secret.txt", &page).unwrap();
    let srv = static_server(&site);
    let r = get(srv.addr, "/missing");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains(SECRET), "the 404 page leaked the secret");
    drop(srv);
    std::fs::remove_file(&page).unwrap();
    std::os::unix::fs::symlink("hello.txt", &page).unwrap();
    let srv = static_server(&site);
    assert_eq!(get(srv.addr, "/missing").text(), "hello, world\n");
    drop(srv);
    std::fs::remove_file(&page).unwrap();
    std::fs::create_dir(&page).unwrap();
    let srv = static_server(&site);
    let r = get(srv.addr, "/missing");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("NOT-FOUND-PAGE"));
}

#[test_log::test]
fn malformed_requests_get_4xx_and_the_server_lives_on() {
    let site = Site::new();
    let srv = static_server(&site);
    // (request, status, connection closed afterwards). Errors in a complete head without a body
    // (missing Host, unknown method) leave the framing intact, so the connection stays usable.
    let cases: &[(&[u8], u16, bool)] = &[
        (b"GET / HTTP/1.1\nHost: t\n\n", 400, true),
        (b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 400, true),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, true),
        (b"GET / HTTP/1.1\r\n\r\n", 400, false),
        (b"BREW / HTTP/1.1\r\nHost: t\r\n\r\n", 501, false),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            400,
            true,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n\r\n",
            413,
            true,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello",
            400,
            true,
        ),
        // RFC 9112 §6.3: chunked not the final coding → 400; an unknown coding → 501.
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
            true,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: zstd2, chunked\r\n\r\n",
            501,
            true,
        ),
    ];
    for (raw, want, close) in cases {
        let mut s = connect(srv.addr);
        s.write_all(raw).unwrap();
        let r = read_reply(&mut s, false)
            .unwrap_or_else(|| panic!("no reply to {:?}", String::from_utf8_lossy(raw)));
        assert_eq!(r.status, *want, "{:?}", String::from_utf8_lossy(raw));
        if *close {
            assert_eq!(r.header("connection"), Some("close"));
            assert!(closed_by_peer(&mut s));
        } else {
            assert_eq!(r.header("connection"), None);
            s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            assert_eq!(read_reply(&mut s, false).unwrap().status, 200);
        }
    }
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    assert_eq!(exchange(srv.addr, long.as_bytes()).unwrap().status, 414);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    assert_eq!(exchange(srv.addr, big.as_bytes()).unwrap().status, 431);
    assert_eq!(get(srv.addr, "/").status, 200);
}

#[test_log::test]
fn request_bodies_are_consumed_not_parsed_as_requests() {
    let site = Site::new();
    let srv = static_server(&site);
    let mut s = connect(srv.addr);
    // The body looks like a request; it must not be answered as one.
    s.write_all(b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 37\r\n\r\nGET /digits.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut s, false).unwrap().status, 405);
    assert_eq!(read_reply(&mut s, false).unwrap().text(), "hello, world\n");
    let mut s = connect(srv.addr);
    s.write_all(b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /digits.txt HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut s, false).unwrap().status, 405);
    assert_eq!(read_reply(&mut s, false).unwrap().text(), "0123456789");
}

#[test_log::test]
fn expect_continue_gets_100_before_the_body() {
    let srv = Running::start(Server::builder().threads(1), |req: &Request<'_, '_>| {
        Response::new(200).body(req.body().to_vec())
    });
    let mut s = connect(srv.addr);
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let interim = read_reply(&mut s, true).unwrap();
    assert_eq!(interim.status, 100);
    s.write_all(b"hello").unwrap();
    let reply = read_reply(&mut s, false).unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (200, "hello"));
}

/// A handler that answers from the head (the static files) gets no `100 Continue` sent on its
/// behalf: the final answer comes at once, and the connection closes (RFC 9110 §10.1.1).
#[test_log::test]
fn expect_continue_to_a_refusing_handler_gets_the_final_status_at_once() {
    let site = Site::new();
    let srv = static_server(&site);
    let mut s = connect(srv.addr);
    s.write_all(
        b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let reply = read_reply(&mut s, false).unwrap();
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(closed_by_peer(&mut s));
}

#[test_log::test]
fn slow_header_gets_408_at_the_deadline() {
    let site = Site::new();
    let srv = Running::start(
        Server::builder()
            .threads(1)
            .header_timeout(Duration::from_millis(300)),
        StaticFiles::new(&site.root).unwrap(),
    );
    let mut s = connect(srv.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost").unwrap();
    let r = read_reply(&mut s, false).expect("a 408");
    assert_eq!(r.status, 408);
    // The one worker is free again.
    assert_eq!(get(srv.addr, "/").status, 200);
}

#[test_log::test]
fn idle_keep_alive_connections_do_not_starve_a_new_client() {
    let site = Site::new();
    // One worker, a long keep-alive timeout: the idle connection must yield its worker.
    let srv = Running::start(
        Server::builder()
            .threads(1)
            .keep_alive_timeout(Duration::from_secs(60)),
        StaticFiles::new(&site.root).unwrap(),
    );
    let mut idle = connect(srv.addr);
    idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut idle, false).unwrap().status, 200);
    // The fresh client is answered well before the 60 s keep-alive timeout (the read timeout of
    // `connect` is 10 s, so a starved client fails this test instead of hanging).
    assert_eq!(get(srv.addr, "/hello.txt").status, 200);
}

#[test_log::test]
fn over_capacity_connections_get_503_with_retry_after() {
    let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let g = Arc::clone(&gate);
    let slow = move |_: &Request<'_, '_>| {
        let (lock, cv) = &*g;
        let open = cv
            .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(10), |o| !*o)
            .unwrap();
        drop(open);
        Response::new(200).body("done")
    };
    let srv = Running::start(Server::builder().threads(1).max_connections(2), slow);
    let mut busy = connect(srv.addr);
    busy.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100)); // let the worker pick it up
    let mut queued = connect(srv.addr);
    queued
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut refused = connect(srv.addr);
    let r = read_reply(&mut refused, false).expect("503");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    assert_eq!(read_reply(&mut busy, false).unwrap().text(), "done");
    assert_eq!(read_reply(&mut queued, false).unwrap().text(), "done");
    let report = srv.stop();
    assert_eq!(report.rejected, 1);
}

#[test_log::test]
fn shutdown_finishes_in_flight_requests_with_connection_close() {
    let started = Arc::new(AtomicUsize::new(0));
    let s2 = Arc::clone(&started);
    let slow = move |_: &Request<'_, '_>| {
        s2.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        Response::new(200).body("finished")
    };
    let srv = Running::start(Server::builder().threads(2), slow);
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut s = connect(srv.addr);
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        clients.push(s);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while started.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    srv.handle.shutdown();
    for mut s in clients {
        let r = read_reply(&mut s, false).expect("in-flight request answered");
        assert_eq!((r.status, r.text().as_str()), (200, "finished"));
        assert_eq!(r.header("connection"), Some("close"));
    }
    let report = srv.stop();
    assert_eq!(report.unfinished, 0);
    assert_eq!(report.connections, 2);
}

#[test_log::test]
fn a_panicking_handler_gets_500_and_the_server_survives() {
    let srv = Running::start(Server::builder().threads(1), |req: &Request<'_, '_>| {
        if req.path() == "/boom" {
            panic!("handler bug");
        }
        Response::new(200).body("ok")
    });
    assert_eq!(get(srv.addr, "/boom").status, 500);
    assert_eq!(get(srv.addr, "/fine").text(), "ok");
}

#[test_log::test]
fn curl_gets_the_index_and_a_range() {
    if !have("curl") {
        eprintln!("skipping: curl is not installed");
        return;
    }
    let site = Site::new();
    let srv = static_server(&site);
    let out = Command::new("curl")
        .args(["-sS", "-i", &format!("http://{}/", srv.addr)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.ends_with("INDEX\n"), "{text}");
    let out = Command::new("curl")
        .args([
            "-sS",
            "-r",
            "0-3",
            &format!("http://{}/digits.txt", srv.addr),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0123");
    let out = Command::new("curl")
        .args([
            "-sS",
            "--path-as-is",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{}/../secret.txt", srv.addr),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400");
}

#[test_log::test]
fn python_http_client_and_urllib() {
    if !have("python3") {
        eprintln!("skipping: python3 is not installed");
        return;
    }
    let site = Site::new();
    let srv = static_server(&site);
    let script = r#"
import http.client, sys, urllib.request, urllib.error
host, port = sys.argv[1], int(sys.argv[2])
c = http.client.HTTPConnection(host, port, timeout=10)
for path, want in [("/hello.txt", 200), ("/nope", 404), ("/digits.txt", 200)]:
    c.request("GET", path)          # one keep-alive connection for all three
    r = c.getresponse()
    body = r.read()
    assert r.status == want, (path, r.status)
c.request("HEAD", "/digits.txt")
r = c.getresponse()
assert r.getheader("Content-Length") == "10" and r.read() == b""
with urllib.request.urlopen(f"http://{host}:{port}/sub/") as r:
    assert r.read() == b"SUB-INDEX\n"
try:
    urllib.request.urlopen(f"http://{host}:{port}/.hidden")
    raise SystemExit("hidden file served")
except urllib.error.HTTPError as e:
    assert e.code == 404
print("ok")
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &srv.addr.ip().to_string(),
            &srv.addr.port().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[test_log::test]
fn sixty_four_idle_keep_alive_connections_do_not_delay_a_new_client() {
    let site = Site::new();
    let srv = Running::start(
        Server::builder()
            .threads(4)
            .keep_alive_timeout(Duration::from_secs(60)),
        StaticFiles::new(&site.root).unwrap(),
    );
    let mut idle: Vec<_> = (0..64)
        .map(|_| {
            let mut s = connect(srv.addr);
            s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            assert_eq!(read_reply(&mut s, false).unwrap().status, 200);
            s
        })
        .collect();
    // 64 idle keep-alive connections, 4 workers: a new client is still answered (a starved client
    // would hit the 10 s read timeout of `connect` and fail here).
    assert_eq!(get(srv.addr, "/digits.txt").text(), "0123456789");
    // …and the idle connections were parked, not closed: each still serves a request.
    for s in &mut idle {
        s.write_all(b"GET /digits.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_reply(s, false).unwrap().text(), "0123456789");
    }
}

#[test_log::test]
fn idle_connections_close_after_the_keep_alive_timeout_and_at_shutdown() {
    let site = Site::new();
    let srv = Running::start(
        Server::builder()
            .threads(1)
            .keep_alive_timeout(Duration::from_millis(300)),
        StaticFiles::new(&site.root).unwrap(),
    );
    let mut s = connect(srv.addr);
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut s, false).unwrap().status, 200);
    assert!(
        closed_by_peer(&mut s),
        "idle connection closed after the keep-alive timeout"
    );

    let srv2 = Running::start(
        Server::builder().threads(1),
        StaticFiles::new(&site.root).unwrap(),
    );
    let mut s = connect(srv2.addr);
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut s, false).unwrap().status, 200);
    let report = srv2.stop();
    assert!(closed_by_peer(&mut s), "idle connection closed at shutdown");
    assert_eq!(report.unfinished, 0);
    drop(srv);
}

#[test_log::test]
fn slowloris_clients_hold_sockets_not_workers() {
    let site = Site::new();
    let srv = Running::start(
        Server::builder()
            .threads(2)
            .header_timeout(Duration::from_secs(30)),
        StaticFiles::new(&site.root).unwrap(),
    );
    // 32 clients each send a few bytes of a head and then stall (well inside the 30 s deadline).
    let mut slow: Vec<_> = (0..32)
        .map(|_| {
            let mut s = connect(srv.addr);
            s.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
            s
        })
        .collect();
    // With 2 workers, a fresh client is still answered (a starved one fails on the read timeout).
    assert_eq!(get(srv.addr, "/hello.txt").status, 200);
    // The slow clients are still waiting, and are answered once they finish their heads.
    for s in &mut slow {
        s.write_all(b"st: t\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!(read_reply(s, false).unwrap().status, 200);
    }
}

#[test_log::test]
fn a_half_closed_partial_request_is_closed_without_an_answer() {
    // Regression: data and FIN arriving together are one edge-triggered event; the worker must
    // read on to the EOF instead of parking the connection until the header deadline.
    let site = Site::new();
    let srv = Running::start(
        Server::builder()
            .threads(2)
            .header_timeout(Duration::from_secs(60)),
        StaticFiles::new(&site.root).unwrap(),
    );
    for _ in 0..50 {
        let mut s = connect(srv.addr);
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-a: b\r\n")
            .unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        // EOF well before the 60 s header deadline (a read timeout after 10 s fails the test).
        assert!(closed_by_peer(&mut s), "closed without a response");
    }
}

#[test_log::test]
fn one_worker_runs_the_event_loop_and_serves_many_busy_keep_alive_clients() {
    // With one worker, that worker runs every event-loop turn and every connection job in turn:
    // a turn must never wait in `epoll_wait` while a connection job is queued behind it, and no
    // readiness may be lost between turns. 8 clients, each sending 25 requests back to back on one
    // keep-alive connection, all at once; every reply must come back, in order (a stall would hit
    // the 10 s read timeout of `connect`).
    let site = Site::new();
    let srv = Running::start(
        Server::builder().threads(1),
        StaticFiles::new(&site.root).unwrap(),
    );
    let addr = srv.addr;
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                for i in 0..25 {
                    let target = if i % 2 == 0 {
                        "/digits.txt"
                    } else {
                        "/hello.txt"
                    };
                    let request = format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n");
                    s.write_all(request.as_bytes()).unwrap();
                    let reply = read_reply(&mut s, false).expect("reply");
                    assert_eq!(reply.status, 200);
                    if i % 2 == 0 {
                        assert_eq!(reply.text(), "0123456789");
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    let report = srv.stop();
    assert_eq!(report.connections, 8);
    assert_eq!(report.unfinished, 0);
}

/// Settings the server cannot honour are refused by `build` with a clear error, never a panic
/// later (an overflowing queue size, or a deadline past what `Instant` can hold).
#[test_log::test]
fn out_of_range_settings_are_refused_at_build() {
    for (builder, what) in [
        (
            Server::builder().max_connections(usize::MAX),
            "max_connections",
        ),
        (Server::builder().max_connections(0), "max_connections"),
        (
            Server::builder().max_requests_per_connection(0),
            "max_requests_per_connection",
        ),
        (
            Server::builder().keep_alive_timeout(Duration::MAX),
            "keep_alive_timeout",
        ),
        (
            Server::builder().write_timeout(Duration::MAX),
            "write_timeout",
        ),
    ] {
        let err = builder.bind("127.0.0.1:0").build().expect_err(what);
        assert!(err.to_string().contains(what), "{err}");
    }
}
