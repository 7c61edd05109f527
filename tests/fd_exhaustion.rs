//! The `poolserve` binary out of file descriptors, for real: run under a low `ulimit -n` (soft and
//! hard, so the binary cannot raise it), it is held at the limit by open connections, and a file
//! it cannot open must be `503` with `Retry-After: 1` — never `404` — with a rate-limited warning.
#![cfg(all(not(loom), target_os = "linux"))]

mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use util::*;

/// `sh`, with no `POOLSERVE_*` variable from the caller's environment.
fn sh() -> Command {
    let mut cmd = Command::new("sh");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("POOLSERVE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// The binary under `sh -c 'ulimit -n LIMIT; exec poolserve ARGS'`, its stderr collected.
struct Limited {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Limited {
    fn start(limit: u32, args: &[&str]) -> Limited {
        let mut child = sh()
            .arg("-c")
            .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_poolserve"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&stderr);
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("server: {line}");
                lines.lock().unwrap().push(line);
            }
        });
        let addr = startup_addr(child.stdout.take().unwrap());
        Limited {
            child,
            addr,
            stderr,
        }
    }

    /// The stderr lines containing `needle`, waiting up to 5 s for at least `at_least` of them.
    fn lines_with(&self, needle: &str, at_least: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found: Vec<String> = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .cloned()
                .collect();
            if found.len() >= at_least || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a keep-alive `GET target` on `s` and reads the reply (None: closed or timed out).
fn ask(s: &mut TcpStream, target: &str) -> Option<Reply> {
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .ok()?;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_reply(s, false)))
        .ok()
        .flatten()
}

#[test_log::test]
fn out_of_file_descriptors_is_503_with_retry_after_not_404() {
    let site = Site::new();
    let root = path_str(&site.root);
    let srv = Limited::start(
        48,
        &[
            root,
            "--bind",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--keep-alive-timeout",
            "60",
            "--no-access-log",
        ],
    );
    // Point 3: at the limit of 48, the default 10000 connections cannot all be held; start-up says
    // so, and what to do.
    let warned = srv.lines_with("exceeds what the open-file limit allows", 1);
    assert_eq!(warned.len(), 1, "{:?}", srv.stderr.lock().unwrap());
    assert!(
        warned[0].contains("--max-connections 10000"),
        "{}",
        warned[0]
    );
    assert!(warned[0].contains("ulimit -Hn"), "{}", warned[0]);
    assert!(
        warned[0].contains("pass --max-connections 24"),
        "{}",
        warned[0]
    );

    // Hold connections open, each asking for an existing file, until one is answered 503.
    let mut held = Vec::new();
    let mut refused = None;
    for i in 0..64 {
        let mut s = TcpStream::connect(srv.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let Some(r) = ask(&mut s, "/hello.txt") else {
            panic!("connection {i} got no answer before any 503");
        };
        assert_ne!(
            r.status, 404,
            "connection {i}: an existing file was answered 404"
        );
        if r.status == 503 {
            assert_eq!(r.header("retry-after"), Some("1"));
            refused = Some(s);
            break;
        }
        assert_eq!((r.status, r.text().as_str()), (200, "hello, world\n"));
        held.push(s);
    }
    let mut s = refused.expect("a request was answered 503 before 64 connections were open");
    eprintln!("503 after {} connections held open", held.len());

    // More requests while still out of descriptors: the directory paths (index page, then the
    // directory itself) are 503 as well, never 404; the warnings are rate-limited.
    let mut answered_503 = 1;
    for target in ["/hello.txt", "/sub/", "/empty/", "/digits.txt"] {
        let r = ask(&mut s, target).expect("the connection stays open after a 503");
        assert_eq!(r.status, 503, "{target}");
        assert_eq!(r.header("retry-after"), Some("1"), "{target}");
        answered_503 += 1;
    }
    std::thread::sleep(Duration::from_millis(1100));
    let r = ask(&mut s, "/hello.txt").expect("still answered");
    assert_eq!(r.status, 503);
    answered_503 += 1;
    let warnings = srv.lines_with("out of resources serving", 2);
    assert!(
        warnings.len() >= 2 && warnings.len() < answered_503,
        "{} warnings for {answered_503} answers: {warnings:?}",
        warnings.len()
    );
    assert!(
        warnings
            .last()
            .unwrap()
            .contains("more since the last warning"),
        "{warnings:?}"
    );

    // Free some descriptors: the same connection gets the file again.
    held.truncate(held.len() / 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = 0;
    for _ in 0..100 {
        status = ask(&mut s, "/hello.txt").map_or(0, |r| r.status);
        if status == 200 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status, 200, "served again once descriptors were freed");
}

/// The soft limit on open files: `(soft, hard)` from `/proc/PID/limits`.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap().to_owned(),
        fields.next().unwrap().to_owned(),
    )
}

#[test_log::test]
fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
    let (_, hard) = open_file_limits(std::process::id());
    if hard.parse::<u64>().is_ok_and(|h| h < 2048) {
        eprintln!("skipped: the hard limit here ({hard}) leaves nothing to raise to");
        return;
    }
    let site = Site::new();
    let mut child = sh()
        .arg("-c")
        .arg("ulimit -Sn 256 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_poolserve"))
        .args([
            path_str(&site.root),
            "--bind",
            ":0",
            "--max-connections",
            "1000",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh starts");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(10));
    let limits = open_file_limits(child.id());
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    assert!(line.is_ok_and(|l| l.starts_with("listening on")));
    assert_eq!(limits.0, limits.1, "soft limit raised to the hard one");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("exceeds"), "{stderr}");
}
