//! Loader for the adversarial request catalog in `tests/cases/catalog.txt`.
//!
//! Shared by the parser table tests, the corpus-replay test and the server's raw-socket tests.
//! Include it with `#[path = "common/cases.rs"] mod cases;` from a file in `tests/`.
#![allow(dead_code)]

use std::path::PathBuf;

/// What the parser layer answers to one request of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The head (and body) were accepted.
    Ok,
    /// An error response with this status.
    Status(u16),
    /// More bytes are needed; at EOF the connection is closed without a response.
    Incomplete,
}

/// One catalog case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Catalog id and slug, e.g. `A1 http09-request`.
    pub name: String,
    /// The bytes the client sends.
    pub raw: Vec<u8>,
    /// The parser's answer to each request, in order.
    pub expect: Vec<Answer>,
    /// Whether the connection is closed after the last answer.
    pub close: bool,
    /// The status the static-file server sends for the first request, when fixed.
    pub server: Option<u16>,
    /// The expected `expect_continue` of the first request, when given.
    pub expect_continue: Option<bool>,
}

impl Case {
    /// The catalog id (the first word of the name), e.g. `A1`.
    pub fn id(&self) -> &str {
        self.name.split_whitespace().next().unwrap_or("")
    }
}

/// The catalog file's path.
pub fn catalog_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases/catalog.txt")
}

/// Loads and parses every case; panics with a line number on a malformed file.
pub fn load() -> Vec<Case> {
    let text = std::fs::read_to_string(catalog_path()).expect("read tests/cases/catalog.txt");
    parse_catalog(&text)
}

/// Parses catalog text (see the header of `tests/cases/catalog.txt` for the format).
pub fn parse_catalog(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut current: Option<Case> = None;
    let mut raw_text = String::new();
    let finish = |case: Option<Case>, raw_text: &mut String, cases: &mut Vec<Case>| {
        if let Some(mut case) = case {
            case.raw = unescape(&expand(raw_text));
            assert!(!case.expect.is_empty(), "case {} has no expect", case.name);
            cases.push(case);
        }
        raw_text.clear();
    };
    for (lineno, line) in text.lines().enumerate() {
        let lineno = lineno + 1;
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            finish(current.take(), &mut raw_text, &mut cases);
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("line {lineno}: expected `key: value`"));
        let value = value.strip_prefix(' ').unwrap_or(value);
        if key == "name" {
            finish(current.take(), &mut raw_text, &mut cases);
            current = Some(Case {
                name: value.to_owned(),
                raw: Vec::new(),
                expect: Vec::new(),
                close: false,
                server: None,
                expect_continue: None,
            });
            continue;
        }
        let case = current
            .as_mut()
            .unwrap_or_else(|| panic!("line {lineno}: `{key}` before `name`"));
        match key {
            "raw" => raw_text.push_str(value),
            "expect" => {
                case.expect = value
                    .split_whitespace()
                    .map(|w| match w {
                        "ok" => Answer::Ok,
                        "incomplete" => Answer::Incomplete,
                        n => Answer::Status(
                            n.parse()
                                .unwrap_or_else(|_| panic!("line {lineno}: bad answer {n}")),
                        ),
                    })
                    .collect();
            }
            "close" => case.close = yes_no(value, lineno),
            "server" => {
                case.server = Some(
                    value
                        .trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("line {lineno}: bad status")),
                );
            }
            "continue" => case.expect_continue = Some(yes_no(value, lineno)),
            other => panic!("line {lineno}: unknown key {other}"),
        }
    }
    finish(current.take(), &mut raw_text, &mut cases);
    cases
}

fn yes_no(value: &str, lineno: usize) -> bool {
    match value.trim() {
        "yes" => true,
        "no" => false,
        v => panic!("line {lineno}: expected yes/no, got {v}"),
    }
}

/// Expands every `{{TEXT}*N}` into N copies of TEXT.
fn expand(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let close = after.find("}*").expect("`{{` without `}*`");
        let text = &after[..close];
        let count_end = after[close + 2..]
            .find('}')
            .expect("repeat count without `}`");
        let count: usize = after[close + 2..close + 2 + count_end]
            .parse()
            .expect("repeat count");
        out.push_str(&text.repeat(count));
        rest = &after[close + 2 + count_end + 1..];
    }
    out.push_str(rest);
    out
}

/// Decodes `\r`, `\n`, `\t`, `\\` and `\xHH`; every other byte is taken literally.
fn unescape(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).expect("\\x escape");
                out.push(u8::from_str_radix(hex, 16).expect("\\x escape"));
                i += 2;
            }
            other => panic!("unknown escape {other:?}"),
        }
        i += 2;
    }
    out
}
