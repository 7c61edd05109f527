//! Shared helpers for the end-to-end server tests: a throw-away site, a running server, a raw client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use poolserve::{Handler, ServeReport, ServerBuilder, ShutdownHandle};

/// The content of a file placed *outside* the served root: no response may ever contain it.
pub const SECRET: &str = "TOP-SECRET-6f1c2a";

/// A temporary directory tree removed on drop: `root/` is served, `secret.txt` sits beside it.
pub struct Site {
    pub dir: PathBuf,
    pub root: PathBuf,
}

impl Site {
    pub fn new() -> Site {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "poolserve-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(dir.join("secret.txt"), SECRET).unwrap();
        std::fs::write(
            root.join("index.html"),
            "<!DOCTYPE html><title>i</title>INDEX\n",
        )
        .unwrap();
        std::fs::write(
            root.join("404.html"),
            "<!DOCTYPE html><title>nf</title>NOT-FOUND-PAGE\n",
        )
        .unwrap();
        std::fs::write(root.join("hello.txt"), "hello, world\n").unwrap();
        std::fs::write(root.join("digits.txt"), "0123456789").unwrap();
        std::fs::write(root.join("sub/index.html"), "SUB-INDEX\n").unwrap();
        std::fs::write(root.join("sub/a <b>&.txt"), "odd name\n").unwrap();
        std::fs::write(root.join(".hidden"), SECRET).unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("link-out")).unwrap();
            std::os::unix::fs::symlink(&dir, root.join("dir-out")).unwrap();
            std::os::unix::fs::symlink(root.join("hello.txt"), root.join("link-in")).unwrap();
        }
        Site { dir, root }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server running on a background thread; shut down (and joined) on drop.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: ShutdownHandle,
    thread: Option<JoinHandle<std::io::Result<ServeReport>>>,
}

impl Running {
    pub fn start(builder: ServerBuilder, handler: impl Handler) -> Running {
        let server = builder.bind("127.0.0.1:0").build().expect("server builds");
        let addr = server.local_addr();
        let handle = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.serve(handler));
        Running {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    /// Shuts down and returns the report.
    pub fn stop(mut self) -> ServeReport {
        self.handle.shutdown();
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("serve thread")
            .expect("serve")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.shutdown();
            let _ = t.join();
        }
    }
}

/// A parsed response: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one response (Content-Length framed; `head_only` for HEAD/304). Returns None on EOF.
pub fn read_reply(s: &mut TcpStream, head_only: bool) -> Option<Reply> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => return None,
            Ok(_) => buf.push(byte[0]),
            Err(e) => panic!("read failed: {e}"),
        }
        assert!(buf.len() < 64 * 1024, "response head too long");
    }
    let head = String::from_utf8(buf).expect("head is UTF-8");
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header has a colon");
            (n.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0u8; if head_only { 0 } else { len }];
    s.read_exact(&mut body).expect("full body");
    Some(Reply {
        status,
        headers,
        body,
    })
}

/// Sends raw bytes on a fresh connection and reads one reply.
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> Option<Reply> {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    read_reply(&mut s, raw.starts_with(b"HEAD"))
}

/// `GET target` with `Connection: close`.
pub fn get(addr: SocketAddr, target: &str) -> Reply {
    exchange(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("a response")
}

/// True when the peer closed: reading returns EOF (or a reset) within the socket's read timeout.
/// A timeout (the connection stayed open) or unexpected data is `false`.
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// Is a command available on PATH?
pub fn have(cmd: &str) -> bool {
    std::process::Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The address in the one line the `poolserve` binary prints at start (`listening on http://ADDR`),
/// read from its stdout within 10 s (a binary that never prints fails the test, not hangs it).
pub fn startup_addr(stdout: std::process::ChildStdout) -> SocketAddr {
    use std::io::{BufRead, BufReader};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a start-up line within 10 s");
    line.trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("start-up line: {line:?}"))
        .parse()
        .expect("an address in the start-up line")
}

/// The Chromium binary on PATH, if any (`.ci/run` installs Debian's `chromium`).
pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| have(c))
}

/// Loads `url` in headless Chromium (at most 60 s, a throw-away profile) and returns the DOM it
/// rendered; panics if Chromium fails.
pub fn chromium_dom(browser: &str, url: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let profile = std::env::temp_dir().join(format!(
        "poolserve-chromium-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let out = std::process::Command::new("timeout")
        .arg("60")
        .arg(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
