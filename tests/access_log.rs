//! The access log, from the real binary's stderr: one Combined-Log-Format line per request that
//! reached the parser, with the request line for `413`/`408` once the head was parsed, `-` when it
//! never was, and aborted transfers with the bytes actually sent.
#![cfg(not(loom))]

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use util::*;

#[test_log::test]
fn one_combined_log_line_per_request_including_errors_and_aborted_transfers() {
    let site = Site::new();
    std::fs::write(site.root.join("big.bin"), vec![1u8; 32 << 20]).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_poolserve"))
        .arg(&site.root)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--max-body",
            "100",
        ])
        .args(["--header-timeout", "1", "--write-timeout", "1"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let addr = startup_addr(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("poolserve::access") {
                let _ = tx.send(line);
            }
        }
    });
    let next_line = || {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("an access-log line within 10 s")
    };

    // A plain request, with Referer and User-Agent.
    let reply = exchange(
        addr,
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nReferer: http://r/\"x\r\nUser-Agent: tester/1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(reply.status, 200);
    let line = next_line();
    assert!(
        line.contains("127.0.0.1 - - [")
            && line.contains(
                " +0000] \"GET /hello.txt HTTP/1.1\" 200 13 \"http://r/\\\"x\" \"tester/1\" "
            ),
        "{line}"
    );
    assert!(line.ends_with("ms"), "{line}");

    // 413 from Content-Length: the request line is known.
    let reply = exchange(
        addr,
        b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n",
    )
    .unwrap();
    assert_eq!(reply.status, 413);
    let line = next_line();
    assert!(line.contains("\"POST /up HTTP/1.1\" 413 "), "{line}");

    // A head that never completes: 408, and no request line to log.
    let mut s = connect(addr);
    s.write_all(b"GET /slow HTTP/1.1\r\nHost").unwrap();
    let reply = read_reply(&mut s, false).expect("a 408");
    assert_eq!(reply.status, 408);
    let line = next_line();
    assert!(line.contains("\"-\" 408 "), "{line}");

    // A download the client stops reading: aborted after the write timeout, with what was sent.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 1024];
    let _ = s.read(&mut first);
    let line = next_line();
    assert!(line.contains("\"GET /big.bin HTTP/1.1\" 200 "), "{line}");
    assert!(line.ends_with(" aborted"), "{line}");
    let sent: u64 = line
        .split("\" 200 ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a byte count");
    assert!(sent > 0 && sent < 32 << 20, "{sent} bytes logged");

    // Nothing else was logged: one line per request.
    let quiet_until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < quiet_until {
        if let Ok(extra) = rx.recv_timeout(Duration::from_millis(50)) {
            panic!("an extra access-log line: {extra}");
        }
    }
    drop(s);
    let _ = child.kill();
    let _ = child.wait();
}
