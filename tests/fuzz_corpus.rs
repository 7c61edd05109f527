#![cfg(not(loom))]
//! Replays every fuzz input kept in the repository through the fuzz targets' checks, on
//! stable Rust and without cargo-fuzz: `fuzz/regressions/<target>/` (committed seeds from the
//! catalog and every crash input ever found) and, when present, libFuzzer's working corpus
//! `fuzz/corpus/<target>/`. A crash once found therefore stays fixed.
//!
//! `POOLSERVE_WRITE_SEEDS=1 cargo test --test fuzz_corpus` rewrites the catalog seeds.

#[path = "common/cases.rs"]
mod cases;

#[path = "../fuzz/diff_check.rs"]
mod diff_check;

use std::fs;
use std::path::{Path, PathBuf};

use poolserve::fuzz_support;
use poolserve::http::{EMPTY_HEADER, Framing, Limits, Status, parse};

/// Seeds are cut to this length (the fuzzers run with `-max_len=4096` anyway).
const MAX_SEED: usize = 64 * 1024;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Runs `check` on every file of the target's regression and corpus directories; returns how
/// many inputs were replayed.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let mut count = 0;
    for kind in ["regressions", "corpus"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.iter().filter(|p| p.is_file()) {
            let data = fs::read(path).expect("read corpus file");
            let result = std::panic::catch_unwind(|| check(&data));
            assert!(
                result.is_ok(),
                "{target}: {} fails its check",
                path.display()
            );
            count += 1;
        }
    }
    count
}

#[test_log::test]
fn replay_parse_request() {
    let n = replay("parse_request", fuzz_support::parse_request);
    assert!(n > 0, "no parse_request inputs replayed");
    log::info!("parse_request: {n} inputs");
}

#[test_log::test]
fn replay_parse_request_split() {
    let n = replay("parse_request_split", fuzz_support::parse_request_split);
    assert!(n > 0, "no parse_request_split inputs replayed");
    log::info!("parse_request_split: {n} inputs");
}

#[test_log::test]
fn replay_chunked_decode() {
    let n = replay("chunked_decode", fuzz_support::chunked_decode);
    assert!(n > 0, "no chunked_decode inputs replayed");
    log::info!("chunked_decode: {n} inputs");
}

#[test_log::test]
fn replay_diff_httparse() {
    let n = replay("diff_httparse", diff_check::check);
    assert!(n > 0, "no diff_httparse inputs replayed");
    log::info!("diff_httparse: {n} inputs");
}

#[test_log::test]
fn replay_resolve_path() {
    let n = replay("resolve_path", fuzz_support::resolve_path);
    assert!(n > 0, "no resolve_path inputs replayed");
    log::info!("resolve_path: {n} inputs");
}

#[test_log::test]
fn replay_conn() {
    let n = replay("conn", fuzz_support::conn_script);
    assert!(n > 0, "no conn inputs replayed");
    log::info!("conn: {n} inputs");
}

/// `conn` seeds are cut to this length (its fuzzer runs with `-max_len=4096`; a longer input
/// fed a byte at a time only costs time).
const MAX_CONN_SEED: usize = 4096 - CONN_SCRIPT_ROOM;
/// Room left in a `conn` seed for its header and script.
const CONN_SCRIPT_ROOM: usize = 4 + 2 * 255;

/// The `conn` seeds of one case: its bytes all at once, a byte at a time (writes too), and
/// split at irregular points with `WouldBlock`s, partial writes and readiness events between
/// (see `fuzz_support::conn_script` for the format). `salt` varies the splits between cases.
fn conn_seeds(raw: &[u8], salt: usize) -> [(&'static str, Vec<u8>); 3] {
    let raw = &raw[..raw.len().min(MAX_CONN_SEED)];
    let with = |header: [u8; 4], script: &[u8]| {
        let mut seed = header.to_vec();
        seed.extend_from_slice(script);
        seed.extend_from_slice(raw);
        seed
    };
    let mut script = Vec::new();
    let mut x = salt.wrapping_mul(2_654_435_761) | 1;
    for _ in 0..64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let size = (x % 23) as u8 + 1;
        match x % 5 {
            // A read of `size` bytes; one that would block; a partial write; a readiness event.
            0 | 1 => script.extend_from_slice(&[0, size]),
            2 => script.extend_from_slice(&[12, 0]),
            3 => script.extend_from_slice(&[1, size]),
            _ => script.extend_from_slice(&[2, 0]),
        }
    }
    [
        ("whole", with([0, 0, 0, 0], &[])),
        ("bytes", with([0, 1, 1, 0], &[])),
        ("split", with([0, 0, 0, 64], &script)),
    ]
}

/// The seeds each catalog case contributes: `(target, file name, bytes)`.
fn catalog_seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for case in cases::load() {
        let name = format!("catalog-{}", case.id());
        let head = case.raw[..case.raw.len().min(MAX_SEED)].to_vec();
        for target in ["parse_request", "parse_request_split", "diff_httparse"] {
            seeds.push((target, name.clone(), head.clone()));
        }
        let mut headers = [EMPTY_HEADER; 128];
        if let Ok(Status::Complete(req, n)) = parse(&case.raw, &mut headers, &Limits::default())
            && req.framing == Framing::Chunked
        {
            let mut body = vec![0u8];
            body.extend_from_slice(&case.raw[n..case.raw.len().min(n + MAX_SEED)]);
            seeds.push(("chunked_decode", name.clone(), body));
        }
        for (kind, bytes) in conn_seeds(&case.raw, seeds.len()) {
            seeds.push(("conn", format!("{name}-{kind}"), bytes));
        }
    }
    seeds
}

/// Every catalog case is a committed seed of the fuzz targets it applies to.
#[test_log::test]
fn catalog_cases_are_fuzz_seeds() {
    let write = std::env::var_os("POOLSERVE_WRITE_SEEDS").is_some();
    let mut missing = Vec::new();
    for (target, name, bytes) in catalog_seeds() {
        let path = fuzz_dir().join("regressions").join(target).join(&name);
        if write {
            fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).expect("mkdir");
            fs::write(&path, &bytes).expect("write seed");
        } else if fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            missing.push(format!("{target}/{name}"));
        }
    }
    assert!(
        missing.is_empty(),
        "seeds out of date (run with POOLSERVE_WRITE_SEEDS=1): {missing:?}"
    );
}
