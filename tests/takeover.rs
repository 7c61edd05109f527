//! Zero-downtime restart over 127.0.0.1: `SO_REUSEPORT` (`ServerBuilder::reuse_port`,
//! `--reuse-port`), a listener handed in (`ServerBuilder::listener`), systemd socket activation
//! (`LISTEN_FDS`/`LISTEN_PID`, fd 3) in the binary, and a new process taking over from an old one
//! under continuous keep-alive load without a request going unanswered.
#![cfg(not(loom))]
#![cfg(unix)]

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use poolserve::Server;
use poolserve::files::StaticFiles;
use util::*;

#[test_log::test]
fn reuse_port_lets_two_servers_listen_on_one_address() {
    let site = Site::new();
    let first = Running::start(
        Server::builder().threads(1).reuse_port(true),
        StaticFiles::new(&site.root).unwrap(),
    );
    // Without the option on both, the address is taken.
    let taken = Server::builder()
        .bind(first.addr.to_string())
        .threads(1)
        .build();
    assert!(taken.is_err(), "a second plain bind succeeded");
    let second = Server::builder()
        .bind(first.addr.to_string())
        .threads(1)
        .reuse_port(true)
        .build()
        .expect("a second SO_REUSEPORT bind succeeds");
    assert_eq!(second.local_addr(), first.addr);
    drop(second);
    assert_eq!(get(first.addr, "/hello.txt").text(), "hello, world\n");
}

#[test_log::test]
fn a_given_listener_is_served_and_bind_is_not_used() {
    let site = Site::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::builder()
        .bind("256.0.0.1:1") // never resolved: the listener wins
        .listener(listener)
        .threads(1)
        .build()
        .unwrap();
    assert_eq!(server.local_addr(), addr);
    let handle = server.shutdown_handle();
    let files = StaticFiles::new(&site.root).unwrap();
    let thread = std::thread::spawn(move || server.serve(files));
    assert_eq!(get(addr, "/hello.txt").text(), "hello, world\n");
    handle.shutdown();
    thread.join().unwrap().unwrap();
    // Closed at shutdown: nobody listens there any more.
    assert!(TcpStream::connect(addr).is_err());
}

/// `poolserve` started with `args`, its start-up line read; killed and reaped on drop.
struct Proc {
    child: Child,
    addr: SocketAddr,
    _stdout: BufReader<ChildStdout>,
}

impl Proc {
    fn start(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let addr = listening_line(&mut stdout);
        Proc {
            child,
            addr,
            _stdout: stdout,
        }
    }

    /// Sends SIGTERM (with the `kill` command) and waits, at most `limit`, for the exit status.
    fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {limit:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening_line(stdout: &mut impl BufRead) -> SocketAddr {
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    line.trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("start-up line: {line:?}"))
        .parse()
        .unwrap()
}

fn poolserve() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_poolserve"));
    cmd.env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("POOLSERVE_REUSE_PORT")
        .env("RUST_LOG", "warn");
    cmd
}

/// The binary takes fd 3 as its listener when `LISTEN_FDS=1` and `LISTEN_PID` is its pid (the
/// systemd protocol), and ignores the variables when `LISTEN_PID` names another process. A Python
/// wrapper plays systemd: it binds a socket, puts it at fd 3, sets the variables and `exec`s the
/// server (so the pid stays the same).
#[test_log::test]
fn socket_activation_passes_fd_3() {
    if !have("python3") {
        eprintln!("skipping: python3 is not installed (it plays systemd here)");
        return;
    }
    let site = Site::new();
    let wrapper = r#"
import os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
print(s.getsockname()[1], flush=True)
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid()) if sys.argv[1] == "mine" else "1"
os.execv(sys.argv[2], sys.argv[2:])
"#;
    for whose in ["mine", "other"] {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", wrapper, whose, env!("CARGO_BIN_EXE_poolserve")])
            .args([path_str(&site.root), "--bind", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped());
        let mut child = KillOnDrop(cmd.spawn().unwrap());
        let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
        let mut port = String::new();
        stdout.read_line(&mut port).unwrap();
        let passed: u16 = port.trim().parse().unwrap();
        let addr = listening_line(&mut stdout);
        if whose == "mine" {
            assert_eq!(addr.port(), passed, "the passed socket is served");
        } else {
            assert_ne!(
                addr.port(),
                passed,
                "LISTEN_PID of another process is ignored"
            );
        }
        assert_eq!(get(addr, "/hello.txt").text(), "hello, world\n", "{whose}");
        drop(child);
    }
}

/// A child process killed and reaped when dropped, also when a test fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the load client saw.
#[derive(Debug, Default)]
struct Tally {
    /// Complete responses, by the process that sent them (`A` or `B`, from the body).
    from_a: u64,
    from_b: u64,
    /// Requests sent again because the server closed the connection without answering them.
    retries: u64,
    /// Connections opened.
    connections: u64,
    /// Anything else: a refused connection, a torn or wrong response, too many retries.
    failures: Vec<String>,
    /// The process that answered last.
    last: Option<u8>,
}

/// How a request on a connection ended.
enum Outcome {
    /// A complete response: its body, and whether the server will close the connection.
    Answered(Vec<u8>, bool),
    /// The connection was closed (EOF, reset or broken pipe) before any byte of a response: the
    /// request was not answered and, being a GET, may be sent again.
    ClosedUnanswered,
    /// A partial response, a malformed one, or a timeout: a failure.
    Broken(String),
}

/// Sends one `GET /who.txt` on `s` and reads its response.
fn exchange_once(s: &mut TcpStream) -> Outcome {
    let closed = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionAborted
        )
    };
    if let Err(e) = s.write_all(b"GET /who.txt HTTP/1.1\r\nHost: t\r\n\r\n") {
        return if closed(&e) {
            Outcome::ClosedUnanswered
        } else {
            Outcome::Broken(format!("write: {e}"))
        };
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) if head.is_empty() => return Outcome::ClosedUnanswered,
            Err(e) if head.is_empty() && closed(&e) => return Outcome::ClosedUnanswered,
            Ok(0) => return Outcome::Broken(format!("EOF inside a head: {head:?}")),
            Err(e) => return Outcome::Broken(format!("read: {e} after {head:?}")),
            Ok(_) => head.push(byte[0]),
        }
        if head.len() > 16 * 1024 {
            return Outcome::Broken("head too long".into());
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200 ") {
        return Outcome::Broken(format!("not a 200: {head}"));
    }
    let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    else {
        return Outcome::Broken(format!("no Content-Length: {head}"));
    };
    let mut body = vec![0u8; len];
    if let Err(e) = s.read_exact(&mut body) {
        return Outcome::Broken(format!("torn body: {e}"));
    }
    let close = head.lines().any(|l| l == "connection: close");
    Outcome::Answered(body, close)
}

/// Sequential `GET /who.txt` requests on keep-alive connections to `addr` until `until`.
///
/// The client behaves as browsers do with a persistent connection (RFC 9112 §9.3.1): after a
/// response with `Connection: close` it opens a new connection; and when the server closes a
/// connection *without answering* the request just sent on it (EOF, reset or broken pipe before
/// the first byte of a response) it sends that request again on a new connection, which is
/// allowed because GET is idempotent (RFC 9110 §9.2.2). During a takeover this happens when the
/// old process closes an idle keep-alive connection at the moment the client reuses it (the
/// server closes idle connections at shutdown; the request crossed the close on the wire), or
/// when a new connection was queued on the old process's socket in the instant between its last
/// accept and its close (the kernel resets those). Such re-sends are counted in
/// [`Tally::retries`], apart from answers; a request re-sent more than three times, a refused
/// connection, or a partial or malformed response is a failure.
fn load(addr: SocketAddr, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<TcpStream> = None;
    'requests: while Instant::now() < until {
        for _attempt in 0..4 {
            let s = match &mut conn {
                Some(s) => s,
                None => match TcpStream::connect(addr) {
                    Ok(s) => {
                        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        tally.connections += 1;
                        conn.insert(s)
                    }
                    Err(e) => {
                        tally.failures.push(format!("connect: {e}"));
                        return tally;
                    }
                },
            };
            match exchange_once(s) {
                Outcome::Answered(body, close) => {
                    match body.as_slice() {
                        b"A" => tally.from_a += 1,
                        b"B" => tally.from_b += 1,
                        other => tally.failures.push(format!("body {other:?}")),
                    }
                    tally.last = body.first().copied();
                    if close {
                        conn = None;
                    }
                    continue 'requests;
                }
                Outcome::ClosedUnanswered => {
                    tally.retries += 1;
                    conn = None;
                }
                Outcome::Broken(why) => {
                    tally.failures.push(why);
                    conn = None;
                    continue 'requests;
                }
            }
        }
        tally
            .failures
            .push("a request went unanswered four times".into());
    }
    tally
}

/// Size of the file a slow reader is still downloading from the old process when it is stopped.
const BIG: usize = 16 << 20;

/// Downloads `/big.bin` (`BIG` bytes, byte `i` being `i % 251`) from `addr`, reading about 4 MiB a
/// second, so that the response is still being written when the process is told to stop. Its
/// length on success; any short, torn or wrong response is an error.
fn slow_download(mut s: TcpStream) -> Result<usize, String> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => return Err(format!("head: {other:?} after {head:?}")),
        }
        if head.len() > 16 * 1024 {
            return Err("head too long".into());
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200 ") || !head.contains(&format!("content-length: {BIG}\r\n")) {
        return Err(format!("unexpected head: {head}"));
    }
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while got < BIG {
        let want = buf.len().min(BIG - got);
        let n = match s.read(&mut buf[..want]) {
            Ok(0) => return Err(format!("torn: EOF after {got} of {BIG} bytes")),
            Ok(n) => n,
            Err(e) => return Err(format!("torn: {e} after {got} of {BIG} bytes")),
        };
        if let Some(i) = (0..n).find(|&i| usize::from(buf[i]) != (got + i) % 251) {
            return Err(format!("wrong byte at {}", got + i));
        }
        got += n;
        if got % (256 * 1024) < n {
            std::thread::sleep(Duration::from_millis(60));
        }
    }
    Ok(got)
}

/// The takeover: process A serves `who.txt` = `A` with `--reuse-port`; a client thread sends
/// requests back to back for 3 s, and another downloads a 16 MiB file from A slowly (so a response
/// is being written when A is stopped: it must arrive whole, which an abrupt exit would not do); after 1 s process B (`who.txt` = `B`) starts on the same port
/// with `--reuse-port`, and once it is listening A gets SIGTERM, stops accepting, drains and exits
/// 0. Every request gets a complete response (from A before, from B after), none fails; the
/// re-sends allowed by [`load`]'s rules are counted and printed.
#[test_log::test]
fn a_new_process_takes_over_the_port_under_keep_alive_load() {
    let a_site = Site::new();
    let b_site = Site::new();
    let big: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    std::fs::write(a_site.root.join("big.bin"), big).unwrap();
    std::fs::write(a_site.root.join("who.txt"), "A").unwrap();
    std::fs::write(b_site.root.join("who.txt"), "B").unwrap();
    let mut a = Proc::start(poolserve().args([
        path_str(&a_site.root),
        "--bind",
        "127.0.0.1:0",
        "--reuse-port",
        "--threads",
        "2",
        "--grace-period",
        "5",
    ]));
    let addr = a.addr;
    let start = Instant::now();
    let client = std::thread::spawn(move || load(addr, start + Duration::from_secs(3)));
    // Connected while A is the only listener, so A serves it; still reading when A is stopped.
    let slow = TcpStream::connect(addr).unwrap();
    let slow = std::thread::spawn(move || (slow_download(slow), start.elapsed()));
    std::thread::sleep(Duration::from_secs(1));
    let b = Proc::start(
        poolserve()
            .args([
                path_str(&b_site.root),
                "--threads",
                "2",
                "--grace-period",
                "5",
            ])
            .env("POOLSERVE_BIND", addr.to_string())
            .env("POOLSERVE_REUSE_PORT", "1"),
    );
    assert_eq!(b.addr, addr);
    let sigterm_at = start.elapsed();
    let a_status = a.terminate(Duration::from_secs(10));
    let exited_at = start.elapsed();
    let tally = client.join().unwrap();
    let (slow, slow_done_at) = slow.join().unwrap();
    eprintln!(
        "SIGTERM to A at {sigterm_at:?}, A exited at {exited_at:?}; {tally:?}; \
         slow download: {slow:?}, done at {slow_done_at:?}"
    );
    assert_eq!(
        slow,
        Ok(BIG),
        "the response being written when A was stopped"
    );
    assert!(
        slow_done_at > sigterm_at,
        "the slow download ended before SIGTERM: it proves nothing about the drain"
    );
    assert!(a_status.success(), "A did not drain cleanly: {a_status}");
    assert!(tally.failures.is_empty(), "{tally:?}");
    assert!(tally.from_a > 10, "A served too little: {tally:?}");
    assert!(tally.from_b > 10, "B took over too little: {tally:?}");
    assert_eq!(tally.last, Some(b'B'), "{tally:?}");
    assert!(
        tally.retries <= tally.connections,
        "more re-sends than connections: {tally:?}"
    );
    // And B still answers after the load.
    assert_eq!(get(addr, "/who.txt").text(), "B");
}
