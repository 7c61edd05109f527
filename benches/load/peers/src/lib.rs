//! Shared bits of the peer servers: argument parsing and the two routes every peer serves.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

/// `PROGRAM PORT DIR`, parsed; exits with a usage message otherwise.
pub fn args() -> (u16, PathBuf) {
    let mut it = std::env::args().skip(1);
    let port = it.next().and_then(|p| p.parse::<u16>().ok());
    let dir = it.next().map(PathBuf::from);
    match (port, dir) {
        (Some(port), Some(dir)) if dir.is_dir() => (port, dir),
        _ => {
            eprintln!(
                "usage: PEER PORT DIR   (serves GET / -> DIR/index.html, GET /1m.bin -> DIR/1m.bin)"
            );
            std::process::exit(2);
        }
    }
}

/// The file behind a request path, or `None` (404). Only the benchmark's two routes exist.
pub fn route(dir: &Path, path: &str) -> Option<(PathBuf, &'static str)> {
    match path {
        "/" | "/index.html" => Some((dir.join("index.html"), "text/html; charset=utf-8")),
        "/1m.bin" => Some((dir.join("1m.bin"), "application/octet-stream")),
        _ => None,
    }
}
