//! Slow and misbehaving clients never hold a worker: with **one** worker, clients that trickle a
//! body, do not read a large response, or send garbage and hold the socket leave the server free
//! for a fresh client, and still get correct, complete responses when they go on. Also: handlers
//! get request bodies, the server-wide body budget, and the body and write deadlines.
//!
//! "Promptly" is a liveness bound, not a benchmark: the fresh client must be answered within
//! [`PROMPT`], where a worker held by a slow client would keep it waiting for the whole of that
//! client's timeout (seconds to tens of seconds). Each check here was run against the server
//! before the event loop took over these waits, and failed there.
#![cfg(not(loom))]

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use poolserve::Server;
use poolserve::files::StaticFiles;
use poolserve::http::{Limits, Request, Response};
use util::*;

/// How long a fresh client may wait while the slow ones hold their sockets.
const PROMPT: Duration = Duration::from_secs(3);
/// Slow clients in each test (twice the default worker count, eight times this test's one).
const SLOW: usize = 8;

/// `GET /hello.txt` on a fresh connection, answered within [`PROMPT`].
fn fresh_client_is_answered_promptly(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PROMPT)).unwrap();
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply); // a timeout leaves what arrived so far
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.starts_with("HTTP/1.1 200 OK") && text.ends_with("hello, world\n"),
        "a fresh client was not answered within {PROMPT:?} while slow clients held their \
         sockets; got {text:?}"
    );
}

/// `n` connections, each of which has sent `bytes` (and then does nothing more).
fn clients_sending(addr: SocketAddr, n: usize, bytes: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(bytes).unwrap();
            s
        })
        .collect()
}

/// A handler that reads bodies: answers with the body's length and its bytes.
fn echo(req: &Request<'_, '_>) -> Response {
    if req.path() == "/hello.txt" {
        return Response::new(200).body("hello, world\n");
    }
    let mut body = format!("{} body bytes\n", req.body().len()).into_bytes();
    body.extend_from_slice(req.body());
    Response::new(200).body(body)
}

#[test_log::test]
fn clients_trickling_bodies_do_not_hold_the_worker() {
    let srv = Running::start(Server::builder().threads(1).access_log(false), echo);
    let body: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut head = b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n".to_vec();
    head.extend_from_slice(&body[..10]);
    let mut slow = clients_sending(srv.addr, SLOW, &head);
    std::thread::sleep(Duration::from_millis(200)); // every slow body is under way
    fresh_client_is_answered_promptly(srv.addr);
    // Each slow client finishes its body, in pieces, and gets the whole body back.
    for piece in body[10..].chunks(330) {
        for s in &mut slow {
            s.write_all(piece).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for s in &mut slow {
        let reply = read_reply(s, false).expect("a response to the slow upload");
        assert_eq!(reply.status, 200);
        let mut want = b"1000 body bytes\n".to_vec();
        want.extend_from_slice(&body);
        assert!(reply.body == want, "the body arrived changed");
    }
}

/// Builds a site with a file larger than the socket buffers on both sides can hold.
fn site_with_big_file(len: usize) -> (Site, Vec<u8>) {
    let site = Site::new();
    let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
    std::fs::write(site.root.join("big.bin"), &data).unwrap();
    (site, data)
}

#[test_log::test]
fn clients_not_reading_a_large_response_do_not_hold_the_worker() {
    let (site, data) = site_with_big_file(32 << 20);
    let srv = Running::start(
        Server::builder().threads(1).access_log(false),
        StaticFiles::new(&site.root).unwrap(),
    );
    let mut slow = clients_sending(srv.addr, SLOW, b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(300)); // every socket buffer is full by now
    fresh_client_is_answered_promptly(srv.addr);
    // Now they read: each gets the whole file, byte for byte, and the connection stays usable.
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let reply = read_reply(s, false).expect("the large response");
        assert_eq!(reply.status, 200);
        assert!(reply.body == data, "the file arrived changed");
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_reply(s, false).expect("next response").status, 200);
    }
}

#[test_log::test]
fn clients_sending_garbage_and_holding_the_socket_do_not_hold_the_worker() {
    let site = Site::new();
    let srv = Running::start(
        Server::builder().threads(1).access_log(false),
        StaticFiles::new(&site.root).unwrap(),
    );
    // Each of these used to cost the worker a lingering close of up to half a second.
    let mut slow = clients_sending(
        srv.addr,
        SLOW,
        b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n",
    );
    fresh_client_is_answered_promptly(srv.addr);
    for s in &mut slow {
        let reply = read_reply(s, false).expect("an error response");
        assert_eq!(reply.status, 400);
        assert!(closed_by_peer(s), "closed after the error");
    }
}

#[test_log::test]
fn handlers_get_the_body_with_content_length_and_chunked() {
    let srv = Running::start(Server::builder().threads(1).access_log(false), echo);
    let mut s = connect(srv.addr);
    // Pipelined: a Content-Length body, a chunked body, then a request without one.
    s.write_all(
        b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
          POST /b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nT: v\r\n\r\n\
          GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        read_reply(&mut s, false).unwrap().text(),
        "5 body bytes\nhello"
    );
    assert_eq!(
        read_reply(&mut s, false).unwrap().text(),
        "7 body bytes\nabcdefg"
    );
    assert_eq!(read_reply(&mut s, false).unwrap().text(), "hello, world\n");
    // A body over the limit is refused from its Content-Length, before any of it is read.
    let srv = Running::start(
        Server::builder()
            .threads(1)
            .access_log(false)
            .limits(Limits {
                max_body: 10,
                ..Limits::default()
            }),
        echo,
    );
    let mut s = connect(srv.addr);
    s.write_all(b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut s, false).unwrap().status, 413);
}

/// With room for one body at a time, three uploads that all begin at once still all complete,
/// correctly: one holds the budget for its whole body, the others wait (not reading) until it
/// frees. (With reservations taken a read at a time, they deadlocked: checked, it failed here.)
#[test_log::test]
fn uploads_over_the_body_budget_wait_and_then_complete() {
    const LEN: usize = 40_000;
    let srv = Running::start(
        Server::builder()
            .threads(2)
            .access_log(false)
            .limits(Limits {
                max_body: LEN as u64,
                ..Limits::default()
            })
            .max_buffered_body(LEN as u64),
        echo,
    );
    let body: Vec<u8> = (0..LEN).map(|i| b'A' + (i % 23) as u8).collect();
    let head = format!("POST /u HTTP/1.1\r\nHost: t\r\nContent-Length: {LEN}\r\n\r\n");
    let mut clients = clients_sending(srv.addr, 3, head.as_bytes());
    for (i, piece) in body.chunks(8_000).enumerate() {
        for s in &mut clients {
            s.write_all(piece).unwrap();
        }
        if i == 0 {
            // Every upload has begun before any can finish: with reservations taken piece by
            // piece, each would hold a part of the budget and wait for the others for ever.
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    for s in &mut clients {
        let reply = read_reply(s, false).expect("a response");
        assert_eq!(reply.status, 200);
        assert!(reply.body.ends_with(&body), "the body arrived changed");
    }
}

#[test_log::test]
fn a_body_that_never_ends_gets_408_at_the_total_deadline() {
    let srv = Running::start(
        Server::builder()
            .threads(1)
            .access_log(false)
            .body_timeout(Duration::from_secs(5))
            .body_total_timeout(Duration::from_millis(600)),
        echo,
    );
    let mut s = connect(srv.addr);
    s.write_all(b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    // One byte every 100 ms: never idle for the body timeout, but never done either.
    let mut reply = None;
    for _ in 0..40 {
        if s.write_all(b"x").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        s.set_nonblocking(true).unwrap();
        let mut peek = [0u8; 1];
        let arrived = matches!(s.peek(&mut peek), Ok(1));
        s.set_nonblocking(false).unwrap();
        if arrived {
            reply = read_reply(&mut s, false);
            break;
        }
    }
    let reply = reply.expect("a 408 within four seconds");
    assert_eq!(reply.status, 408);
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test_log::test]
fn a_client_that_never_reads_is_closed_after_the_write_timeout() {
    let (site, data) = site_with_big_file(32 << 20);
    let srv = Running::start(
        Server::builder()
            .threads(1)
            .access_log(false)
            .write_timeout(Duration::from_millis(500)),
        StaticFiles::new(&site.root).unwrap(),
    );
    let mut s = connect(srv.addr);
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // the write timeout passes, unread
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let end = s.read_to_end(&mut got);
    assert!(
        got.len() < data.len(),
        "the server waited for a client that did not read (got all {} bytes)",
        got.len()
    );
    // It ended with a close (EOF or reset), not with the read timeout.
    if let Err(e) = end {
        assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "still open: {e}");
    }
    fresh_client_is_answered_promptly(srv.addr);
}

/// Shutdown drains for real: a response going out to a slow reader is finished within the grace
/// period once the client reads, and one whose client never reads is closed when it ends and
/// counted as unfinished.
#[test_log::test]
fn shutdown_finishes_responses_to_slow_readers_and_counts_the_ones_that_never_read() {
    let (site, data) = site_with_big_file(32 << 20);
    let srv = Running::start(
        Server::builder()
            .threads(1)
            .access_log(false)
            .grace_period(Duration::from_secs(3)),
        StaticFiles::new(&site.root).unwrap(),
    );
    let mut reader = connect(srv.addr);
    let mut never = connect(srv.addr);
    for s in [&mut reader, &mut never] {
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    srv.handle.shutdown();
    std::thread::sleep(Duration::from_millis(300));
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let reply = read_reply(&mut reader, false).expect("the response, after shutdown began");
    assert_eq!(reply.status, 200);
    assert!(reply.body == data, "the file arrived changed");
    assert_eq!(
        reply.header("connection"),
        None,
        "it was sent before shutdown"
    );
    let report = srv.stop();
    assert_eq!(
        report.unfinished, 1,
        "the client that never read is counted"
    );
    drop(never);
}

/// Every request fully sent before shutdown is answered, even while slow readers hold large
/// downloads: fifty clients send a complete request and shutdown begins at once; each gets a
/// complete `200`.
#[test_log::test]
fn requests_fully_sent_before_shutdown_are_answered_while_slow_readers_download() {
    let (site, _data) = site_with_big_file(16 << 20);
    let srv = Running::start(
        Server::builder()
            .threads(1)
            .access_log(false)
            .grace_period(Duration::from_secs(5)),
        StaticFiles::new(&site.root).unwrap(),
    );
    let _slow = clients_sending(srv.addr, 4, b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(200));
    let mut clients: Vec<TcpStream> = (0..50).map(|_| connect(srv.addr)).collect();
    for s in &mut clients {
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
    }
    srv.handle.shutdown();
    let mut answered = 0;
    for s in &mut clients {
        if let Some(reply) = read_reply(s, false)
            && reply.status == 200
            && reply.text() == "hello, world\n"
        {
            answered += 1;
        }
    }
    assert_eq!(
        answered, 50,
        "requests sent before shutdown went unanswered"
    );
}
