//! The `poolserve` binary's command line, run as a user runs it: flags and their environment
//! twins, the checks made at start, and README.md's copy of `--help`.
#![cfg(not(loom))]

mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use util::*;

/// The binary, run in the crate's directory, with no `POOLSERVE_*` variable from the caller's
/// environment (so that `--help` shows them unset and no test sees another's settings).
fn poolserve() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_poolserve"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("POOLSERVE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs the binary to completion (it must exit within 10 s: every use here fails at start).
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the binary did not exit within 10 s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// A server started by `cmd`; killed on drop.
struct Started {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server and reads its one start-up line (bounded: a reader thread and a 10 s wait).
fn start(cmd: &mut Command) -> Started {
    let mut child = cmd
        .arg("--no-access-log")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("binary starts");
    let addr = startup_addr(child.stdout.take().unwrap());
    Started { child, addr }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the run failed at start with exit code 2 and exactly one line on stderr containing
/// every one of `wanted`.
fn assert_one_line_error(out: &Output, wanted: &[&str]) {
    let err = stderr_of(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("poolserve: "), "{err:?}");
    for w in wanted {
        assert!(err.contains(w), "{w:?} missing from {err:?}");
    }
}

#[test_log::test]
fn every_bad_number_is_refused_at_start_with_one_line_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--threads", "0"], "must be at least 1"),
        (&["--threads", "5000"], "at most 1024"),
        (&["--max-connections", "0"], "must be at least 1"),
        (&["--header-timeout", "0"], "at least 1 second"),
        (&["--keep-alive-timeout", "0"], "at least 1 second"),
        (&["--body-timeout", "0"], "at least 1 second"),
        (&["--write-timeout", "0"], "at least 1 second"),
        (&["--grace-period", "100000"], "at most 86400"),
        (&["--max-requests", "0"], "must be at least 1"),
        (&["--max-body", "1MiB"], "invalid digit"),
        (&["--port", "65536"], "--port"),
        (&["--bind", ":http"], "not a port number"),
        (&["--cache-control", "a\u{1}b"], "control characters"),
    ];
    for (args, why) in cases {
        let out = run(poolserve().args(*args));
        assert_one_line_error(&out, &[args[0], why]);
    }
}

#[test_log::test]
fn a_bad_value_from_the_environment_names_the_variable() {
    let out = run(poolserve().env("POOLSERVE_THREADS", "0"));
    assert_one_line_error(&out, &["POOLSERVE_THREADS", "--threads", "at least 1"]);
    let out = run(poolserve().env("POOLSERVE_LIST_DIRS", "maybe"));
    assert_one_line_error(&out, &["'maybe'", "POOLSERVE_LIST_DIRS"]);
    let out = run(poolserve().env("POOLSERVE_WRITE_TIMEOUT", "0"));
    assert_one_line_error(&out, &["POOLSERVE_WRITE_TIMEOUT"]);
    // The same bad value on the command line is named by its flag.
    let out = run(poolserve().args(["--threads", "0"]));
    assert_one_line_error(&out, &["'--threads <N>'"]);
    assert!(!stderr_of(&out).contains("POOLSERVE_THREADS"));
}

#[test_log::test]
fn the_default_root_missing_is_one_line_that_suggests_naming_a_directory() {
    let site = Site::new(); // a directory without `public/` in it
    let out = run(poolserve().current_dir(&site.dir));
    assert_one_line_error(&out, &["`public`", "poolserve DIR"]);
    let out = run(poolserve().current_dir(&site.dir).arg("nowhere"));
    assert_one_line_error(&out, &["cannot serve nowhere"]);
}

#[test_log::test]
fn dir_argument_port_flag_and_bind_colon_port() {
    let site = Site::new();
    let root = path_str(&site.root);
    // `DIR` serves that directory; `--bind :0` is the default host on a free port.
    let srv = start(poolserve().args([root, "--bind", ":0"]));
    assert_eq!(srv.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(srv.addr.port(), 0);
    assert_eq!(get(srv.addr, "/hello.txt").text(), "hello, world\n");
    drop(srv);
    // `-p 0` combines with --bind's host.
    let srv = start(poolserve().args(["--root", root, "--bind", "127.0.0.1", "-p", "0"]));
    assert_ne!(srv.addr.port(), 0);
    assert_eq!(get(srv.addr, "/hello.txt").status, 200);
    drop(srv);
    // A port from the environment loses to one on the command line.
    let srv = start(
        poolserve()
            .env("POOLSERVE_PORT", "1")
            .args([root, "--bind", ":0"]),
    );
    assert_eq!(get(srv.addr, "/hello.txt").status, 200);
    drop(srv);
    let srv = start(
        poolserve()
            .env("POOLSERVE_BIND", "127.0.0.1:1")
            .args([root, "-p", "0"]),
    );
    assert_ne!(srv.addr.port(), 1);
    assert_eq!(get(srv.addr, "/hello.txt").status, 200);
    drop(srv);
    // DIR and --root both on the command line must agree.
    let out = run(poolserve().args([root, "--root", "public"]));
    assert_one_line_error(&out, &["different directories"]);
    let out = run(poolserve().args(["--bind", ":8000", "--port", "9000"]));
    assert_one_line_error(&out, &["different ports"]);
}

#[test_log::test]
fn boolean_variables_take_yes_no_one_zero_true_false() {
    let site = Site::new();
    let root = path_str(&site.root);
    for (value, listing) in [
        ("1", true),
        ("yes", true),
        ("true", true),
        ("0", false),
        ("no", false),
        ("false", false),
    ] {
        let srv = start(
            poolserve()
                .env("POOLSERVE_LIST_DIRS", value)
                .args([root, "--bind", ":0"]),
        );
        let r = get(srv.addr, "/empty/");
        assert_eq!(r.status == 200, listing, "POOLSERVE_LIST_DIRS={value}");
        if listing {
            assert!(r.text().contains("Index of /empty/"));
        }
    }
}

#[test_log::test]
fn cache_control_flag_and_variable_reach_file_answers() {
    let site = Site::new();
    let root = path_str(&site.root);
    let srv = start(poolserve().args([root, "--bind", ":0", "--cache-control", "max-age=60"]));
    let r = get(srv.addr, "/hello.txt");
    assert_eq!(
        (r.status, r.header("cache-control")),
        (200, Some("max-age=60"))
    );
    drop(srv);
    let srv = start(
        poolserve()
            .env("POOLSERVE_CACHE_CONTROL", "no-cache")
            .args([root, "--bind", ":0"]),
    );
    assert_eq!(
        get(srv.addr, "/hello.txt").header("cache-control"),
        Some("no-cache")
    );
    drop(srv);
    let srv = start(poolserve().args([root, "--bind", ":0"]));
    assert_eq!(get(srv.addr, "/hello.txt").header("cache-control"), None);
}

/// A client that stops reading is dropped after `--write-timeout` seconds without progress.
#[test_log::test]
fn write_timeout_drops_a_client_that_stops_reading() {
    let site = Site::new();
    let size = 48usize << 20; // far more than the loopback socket buffers hold
    std::fs::write(site.root.join("big.bin"), vec![1u8; size]).unwrap();
    let srv =
        start(poolserve().args([path_str(&site.root), "--bind", ":0", "--write-timeout", "1"]));
    let mut s = connect(srv.addr);
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_secs(4)); // not reading: the server's writes stall
    let mut got = Vec::new();
    let t0 = Instant::now();
    let mut buf = vec![0u8; 1 << 16];
    while t0.elapsed() < Duration::from_secs(20) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert!(
        got.len() < size,
        "the whole body arrived ({} bytes): the stalled write was not dropped",
        got.len()
    );
    assert!(got.starts_with(b"HTTP/1.1 200"), "the response had started");
}

/// README.md shows `--help` verbatim, and its flag table says what `--help` says.
#[test_log::test]
fn readme_shows_the_help_text_and_a_table_that_matches_it() {
    let out = run(poolserve().arg("--help"));
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split_once("<!-- poolserve --help -->\n```text\n")
        .and_then(|(_, rest)| rest.split_once("\n```\n"))
        .map(|(block, _)| block)
        .expect("README.md has the help block");
    assert_eq!(
        block,
        help.trim_end(),
        "README.md's copy of --help is stale"
    );

    let mut want = Vec::new();
    for line in help.lines() {
        let line = line.trim_start();
        if !line.starts_with('-') || line.starts_with("-h,") || line.starts_with("-V,") {
            continue;
        }
        let (spec, desc) = line.split_once("  ").expect("two spaces after the flag");
        let spec = spec.replace(['<', '>'], "");
        let flag = match spec.split_once(", ") {
            Some((short, long)) => format!("`{short}`, `{long}`"),
            None => format!("`{spec}`"),
        };
        let desc = desc.trim();
        let tag = |name: &str| {
            desc.split_once(&format!("[{name}: "))
                .and_then(|(_, rest)| rest.split_once(']'))
                .map(|(v, _)| v.trim_end_matches('=').to_owned())
        };
        let env = tag("env").expect("every flag has a variable");
        let default = tag("default").unwrap_or_else(|| "off".into());
        let meaning = desc.split(" [").next().unwrap();
        want.push(format!("| {flag} | `{env}` | {default} | {meaning} |"));
    }
    assert!(want.len() >= 16, "{want:?}");
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| flag | environment |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(table, want, "README.md's flag table differs from --help");
}
