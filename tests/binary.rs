//! Tests of the `poolserve` binary as a user runs it: the start-up line, the bundled site, and
//! SIGTERM in the middle of a load.
#![cfg(not(loom))]

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use util::*;

/// Starts the binary on a free port and returns it with its address (read from its one line).
fn start(args: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_poolserve"))
        .args(["--bind", "127.0.0.1:0", "--no-access-log"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("binary starts");
    let addr = startup_addr(child.stdout.take().unwrap());
    (child, addr)
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
}

/// Waits (bounded) for the child to exit and returns its exit code.
fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("the server did not exit within {within:?}");
}

#[test_log::test]
fn serves_the_bundled_site_and_exits_cleanly_on_sigterm() {
    let (mut child, addr) = start(&[]);
    let r = get(addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/public/index.html")).unwrap()
    );
    let r = get(addr, "/nope");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/public/404.html")).unwrap()
    );
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
}

#[test_log::test]
fn sigterm_under_load_completes_every_accepted_request() {
    let site = Site::new();
    std::fs::write(site.root.join("big.bin"), vec![7u8; 2 << 20]).unwrap();
    let root = site.root.to_str().unwrap().to_owned();
    let (mut child, addr) = start(&["--root", &root, "--threads", "2"]);
    let stop = Arc::new(AtomicBool::new(false));
    let (accepted, completed, refused) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (stop, accepted, completed, refused) = (
                stop.clone(),
                accepted.clone(),
                completed.clone(),
                refused.clone(),
            );
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        refused.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    if s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                        .is_err()
                    {
                        refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let mut got = Vec::new();
                    let _ = s.read_to_end(&mut got);
                    if got.is_empty() {
                        refused.fetch_add(1, Ordering::Relaxed); // closed unanswered: never accepted
                        continue;
                    }
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
                    if let Some(h) = head_end {
                        let head = String::from_utf8_lossy(&got[..h]);
                        if head.starts_with("HTTP/1.1 200") && got.len() - h == 2 << 20 {
                            completed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    // Let the load run, then SIGTERM in the middle of it.
    let t0 = Instant::now();
    while accepted.load(Ordering::Relaxed) < 20 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    sigterm(&child);
    let code = wait_exit(&mut child, Duration::from_secs(15));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (a, c, r) = (
        accepted.load(Ordering::Relaxed),
        completed.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    eprintln!(
        "SIGTERM under load: {a} requests answered, {c} complete, {r} refused after shutdown"
    );
    assert!(a >= 20, "the load ran before the signal");
    assert_eq!(a, c, "every request that got a response got all of it");
    assert_eq!(code, Some(0));
}
