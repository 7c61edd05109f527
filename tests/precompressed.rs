//! Precompressed siblings (`FILE.br`, `FILE.gz`) end to end over 127.0.0.1: the `Accept-Encoding`
//! negotiation, `Vary`, per-representation `ETag`s, conditionals and ranges over the encoded bytes,
//! the hidden-file / symlink / containment guarantees for siblings, the switch to turn it off
//! (library and command line), and real clients decoding what they get: `curl --compressed`,
//! Python's `urllib` + `gzip` and `http.client`, and headless Chromium running a script that
//! arrives brotli- or gzip-encoded.
//!
//! The encoded files are made here, by two tiny encoders that only *store* (gzip with deflate's
//! stored blocks, RFC 1951 §3.2.4; brotli with uncompressed meta-blocks, RFC 7932 §9.2): the
//! server never decodes anything, and the real decoders in curl, Python and Chromium then prove the
//! bytes went out intact with the right `Content-Encoding`. Tests that only look at headers use
//! arbitrary bytes as the "encoded" files.
#![cfg(not(loom))]

mod util;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use poolserve::Server;
use poolserve::files::StaticFiles;
use poolserve::http::{Request, Response};
use poolserve::{Handler, ServerBuilder};
use util::*;

const JS: &str = "document.title = 'identity';\n";
/// Stand-ins for encoded bytes where nothing decodes them.
const BR_BYTES: &[u8] = b"\x8b\x02\x80BR-ENCODED-BYTES\x03";
const GZ_BYTES: &[u8] = b"\x1f\x8bGZ-ENCODED-BYTES";

/// A site with `x.js` and its two siblings, plus the awkward cases.
fn site() -> Site {
    let site = Site::new();
    let root = &site.root;
    std::fs::write(root.join("x.js"), JS).unwrap();
    std::fs::write(root.join("x.js.br"), BR_BYTES).unwrap();
    std::fs::write(root.join("x.js.gz"), GZ_BYTES).unwrap();
    // Only a gzip sibling.
    std::fs::write(root.join("only-gz.css"), "a{}\n").unwrap();
    std::fs::write(root.join("only-gz.css.gz"), GZ_BYTES).unwrap();
    // A sibling older than its file: ignored.
    std::fs::write(root.join("stale.txt"), "fresh\n").unwrap();
    std::fs::write(root.join("stale.txt.br"), BR_BYTES).unwrap();
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(root.join("stale.txt.br"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    // A hidden file with a sibling, and a sibling beside the out-of-root secret.
    std::fs::write(root.join(".hidden.br"), SECRET).unwrap();
    std::fs::write(site.dir.join("secret.txt.br"), SECRET).unwrap();
    std::fs::write(site.dir.join("secret.txt.gz"), SECRET).unwrap();
    // Siblings that are symlinks leading out of the root (absolute and relative) or that are
    // directories: never sent.
    std::fs::write(root.join("plain.txt"), "plain\n").unwrap();
    std::os::unix::fs::symlink(site.dir.join("secret.txt.br"), root.join("plain.txt.br")).unwrap();
    std::os::unix::fs::symlink("../secret.txt.gz", root.join("plain.txt.gz")).unwrap();
    std::fs::write(root.join("dir-sib.txt"), "dir\n").unwrap();
    std::fs::create_dir(root.join("dir-sib.txt.br")).unwrap();
    // A sibling that is a symlink inside the root works like any symlink inside the root.
    std::fs::write(root.join("in.txt"), "in\n").unwrap();
    std::fs::write(root.join("in-target.br"), BR_BYTES).unwrap();
    std::os::unix::fs::symlink("in-target.br", root.join("in.txt.br")).unwrap();
    // The index page has a gzip sibling.
    std::fs::write(root.join("index.html.gz"), GZ_BYTES).unwrap();
    site
}

fn start(builder: ServerBuilder, handler: impl Handler) -> Running {
    Running::start(builder.threads(2), handler)
}

/// One request with the extra header lines `extra` (each ending in CRLF) on its own connection.
fn ask(addr: SocketAddr, method: &str, target: &str, extra: &str) -> Reply {
    let raw = format!("{method} {target} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n");
    let mut s = connect(addr);
    s.write_all(raw.as_bytes()).unwrap();
    let mut peek = [0u8; 12];
    let n = s.peek(&mut peek).unwrap();
    let head_only = method == "HEAD" || (n == 12 && &peek[9..12] == b"304");
    read_reply(&mut s, head_only).expect("a reply")
}

fn ae(value: &str) -> String {
    format!("Accept-Encoding: {value}\r\n")
}

#[test_log::test]
fn accept_encoding_picks_the_representation() {
    let site = site();
    let srv = start(Server::builder(), StaticFiles::new(&site.root).unwrap());
    // (Accept-Encoding lines, the body expected)
    let cases: &[(&str, &[u8])] = &[
        ("", JS.as_bytes()),
        (&ae("gzip, deflate, br, zstd"), BR_BYTES),
        (&ae("deflate, gzip, br, zstd"), BR_BYTES),
        (&ae("gzip"), GZ_BYTES),
        (&ae("x-gzip"), GZ_BYTES),
        (&ae("br;q=0, gzip"), GZ_BYTES),
        (&ae("BR;Q=0, GZIP"), GZ_BYTES),
        (&ae("br;q=0, gzip;q=0"), JS.as_bytes()),
        (&ae("identity"), JS.as_bytes()),
        (&ae(""), JS.as_bytes()),
        (&ae("*"), BR_BYTES),
        (&ae("gzip, *;q=0"), GZ_BYTES),
        (&ae("br;q=0, *"), GZ_BYTES),
        (&ae("*;q=0"), JS.as_bytes()),
        (&ae("gzip;q=0.5, br;q=0.5"), BR_BYTES),
        (&ae("gzip;q=1, br;q=0.5"), GZ_BYTES),
        (&ae("identity;q=1, br;q=0.5"), JS.as_bytes()),
        (
            "Accept-Encoding: gzip;q=0.2\r\nAccept-Encoding: br;q=0.9\r\n",
            BR_BYTES,
        ),
    ];
    let mut etags = std::collections::HashSet::new();
    for (extra, want) in cases {
        let r = ask(srv.addr, "GET", "/x.js", extra);
        assert_eq!(r.status, 200, "{extra:?}");
        assert_eq!(r.body, *want, "{extra:?}");
        let encoding = if *want == BR_BYTES {
            Some("br")
        } else if *want == GZ_BYTES {
            Some("gzip")
        } else {
            None
        };
        assert_eq!(r.header("content-encoding"), encoding, "{extra:?}");
        assert_eq!(
            r.header("content-type"),
            Some("text/javascript; charset=utf-8"),
            "{extra:?}"
        );
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{extra:?}");
        let etag = r.header("etag").unwrap().to_owned();
        let suffix = match encoding {
            Some("br") => "-br\"",
            Some(_) => "-gz\"",
            None => "\"",
        };
        assert!(etag.ends_with(suffix), "{extra:?}: {etag}");
        etags.insert((encoding, etag));
    }
    // One ETag per representation, and three representations.
    assert_eq!(etags.len(), 3, "{etags:?}");
    // HEAD says what GET would send.
    let r = ask(srv.addr, "HEAD", "/x.js", &ae("br"));
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(
        r.header("content-length"),
        Some(BR_BYTES.len().to_string().as_str())
    );
    // The index page's sibling, through the `/` shortcut, keeps text/html.
    let r = ask(srv.addr, "GET", "/", &ae("gzip"));
    assert_eq!(
        (r.header("content-encoding"), r.header("content-type")),
        (Some("gzip"), Some("text/html; charset=utf-8"))
    );
    assert_eq!(r.body, GZ_BYTES);
    // Only a gzip sibling: br-only clients get the file as it is, but it varies.
    let r = ask(srv.addr, "GET", "/only-gz.css", &ae("br"));
    assert_eq!(
        (r.text().as_str(), r.header("vary")),
        ("a{}\n", Some("Accept-Encoding"))
    );
    assert_eq!(r.header("content-encoding"), None);
}

#[test_log::test]
fn vary_only_where_a_sibling_could_be_sent() {
    let site = site();
    let srv = start(Server::builder(), StaticFiles::new(&site.root).unwrap());
    for target in ["/hello.txt", "/stale.txt", "/plain.txt", "/dir-sib.txt"] {
        let r = ask(srv.addr, "GET", target, &ae("gzip, deflate, br"));
        assert_eq!(r.status, 200, "{target}");
        assert_eq!(r.header("content-encoding"), None, "{target}");
        assert_eq!(r.header("vary"), None, "{target}");
    }
    assert_eq!(
        ask(srv.addr, "GET", "/stale.txt", &ae("br")).text(),
        "fresh\n"
    );
    assert_eq!(
        ask(srv.addr, "GET", "/plain.txt", &ae("br")).text(),
        "plain\n"
    );
    // A symlinked sibling that stays inside the root is used.
    let r = ask(srv.addr, "GET", "/in.txt", &ae("br"));
    assert_eq!(
        (r.body.as_slice(), r.header("content-encoding")),
        (BR_BYTES, Some("br"))
    );
}

#[test_log::test]
fn conditionals_and_ranges_apply_to_the_encoded_bytes() {
    let site = site();
    let srv = start(
        Server::builder(),
        StaticFiles::new(&site.root)
            .unwrap()
            .cache_control("max-age=60"),
    );
    let br = ask(srv.addr, "GET", "/x.js", &ae("br"));
    let br_etag = br.header("etag").unwrap().to_owned();
    let id = ask(srv.addr, "GET", "/x.js", "");
    let id_etag = id.header("etag").unwrap().to_owned();
    assert_ne!(br_etag, id_etag);
    // 304 for the representation the client has; it carries Vary and the cache headers.
    let r = ask(
        srv.addr,
        "GET",
        "/x.js",
        &format!("{}If-None-Match: {br_etag}\r\n", ae("br")),
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(r.header("etag"), Some(br_etag.as_str()));
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    let r = ask(
        srv.addr,
        "GET",
        "/x.js",
        &format!("If-None-Match: {id_etag}\r\n"),
    );
    assert_eq!((r.status, r.header("vary")), (304, Some("Accept-Encoding")));
    // The brotli validator does not validate the identity representation, and the other way round.
    let r = ask(
        srv.addr,
        "GET",
        "/x.js",
        &format!("If-None-Match: {br_etag}\r\n"),
    );
    assert_eq!((r.status, r.text().as_str()), (200, JS));
    let r = ask(
        srv.addr,
        "GET",
        "/x.js",
        &format!("{}If-None-Match: {id_etag}\r\n", ae("br")),
    );
    assert_eq!((r.status, r.body.as_slice()), (200, BR_BYTES));
    // If-Match is strong and per representation.
    let r = ask(
        srv.addr,
        "GET",
        "/x.js",
        &format!("{}If-Match: {id_etag}\r\n", ae("br")),
    );
    assert_eq!((r.status, r.header("vary")), (412, Some("Accept-Encoding")));
    // Ranges count the encoded bytes.
    let r = ask(
        srv.addr,
        "GET",
        "/x.js",
        &format!("{}Range: bytes=3-7\r\n", ae("br")),
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &BR_BYTES[3..=7]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 3-7/{}", BR_BYTES.len()).as_str())
    );
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = ask(
        srv.addr,
        "GET",
        "/x.js",
        &format!("{}Range: bytes=500-\r\n", ae("br")),
    );
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{}", BR_BYTES.len()).as_str())
    );
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    // If-Range with the other representation's validator: the whole encoded file.
    let r = ask(
        srv.addr,
        "GET",
        "/x.js",
        &format!("{}Range: bytes=0-1\r\nIf-Range: {id_etag}\r\n", ae("br")),
    );
    assert_eq!((r.status, r.body.as_slice()), (200, BR_BYTES));
    let r = ask(
        srv.addr,
        "GET",
        "/x.js",
        &format!("{}Range: bytes=0-1\r\nIf-Range: {br_etag}\r\n", ae("br")),
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &BR_BYTES[..2]));
}

#[test_log::test]
fn siblings_keep_the_hidden_symlink_and_containment_guarantees() {
    let site = site();
    let srv = start(Server::builder(), StaticFiles::new(&site.root).unwrap());
    let every = &ae("br, gzip, *");
    for target in [
        "/.hidden",
        "/.hidden.br",
        "/link-out",
        "/dir-out/secret.txt",
        "/secret.txt",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/plain.txt",
        "/plain.txt.br",
        "/plain.txt.gz",
    ] {
        let r = ask(srv.addr, "GET", target, every);
        assert!(
            !r.text().contains(SECRET),
            "{target} leaked the secret: {r:?}"
        );
        assert_eq!(r.header("content-encoding"), None, "{target}");
        assert!(
            matches!(r.status, 200 | 400 | 404),
            "{target}: {}",
            r.status
        );
    }
    assert_eq!(ask(srv.addr, "GET", "/.hidden", every).status, 404);
    assert_eq!(ask(srv.addr, "GET", "/link-out", every).status, 404);
    assert_eq!(ask(srv.addr, "GET", "/plain.txt.br", every).status, 404);
    // Asking for a sibling by name serves that file as itself: no Content-Encoding, its own type.
    let r = ask(srv.addr, "GET", "/x.js.br", every);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, BR_BYTES);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), None);
    let r = ask(srv.addr, "GET", "/x.js.gz", "");
    assert_eq!((r.status, r.body.as_slice()), (200, GZ_BYTES));
    assert_eq!(r.header("content-encoding"), None);
}

#[test_log::test]
fn turned_off_it_sends_the_file_as_it_is_without_vary() {
    let site = site();
    let srv = start(
        Server::builder(),
        StaticFiles::new(&site.root).unwrap().precompressed(false),
    );
    let r = ask(srv.addr, "GET", "/x.js", &ae("br, gzip"));
    assert_eq!(r.text(), JS);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), None);
}

/// The binary: on by default, off with `--no-precompressed` or `POOLSERVE_NO_PRECOMPRESSED`.
#[test_log::test]
fn the_command_line_switch_and_its_variable() {
    let site = site();
    let root = path_str(&site.root);
    for (flag, var, on) in [
        (None, None, true),
        (Some("--no-precompressed"), None, false),
        (None, Some("yes"), false),
        (None, Some("1"), false),
        (None, Some("off"), true),
        (None, Some("0"), true),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_poolserve"));
        cmd.args([root, "--bind", "127.0.0.1:0", "--no-access-log"]);
        cmd.env_remove("POOLSERVE_NO_PRECOMPRESSED");
        if let Some(flag) = flag {
            cmd.arg(flag);
        }
        if let Some(var) = var {
            cmd.env("POOLSERVE_NO_PRECOMPRESSED", var);
        }
        let bin = Binary::start(&mut cmd);
        let r = ask(bin.addr, "GET", "/x.js", &ae("gzip, br"));
        let what = format!("flag {flag:?}, variable {var:?}");
        assert_eq!(r.header("content-encoding").is_some(), on, "{what}");
        assert_eq!(r.header("vary").is_some(), on, "{what}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_poolserve"))
        .args([root, "--bind", "127.0.0.1:0"])
        .env("POOLSERVE_NO_PRECOMPRESSED", "maybe")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("POOLSERVE_NO_PRECOMPRESSED"), "{err}");
}

/// The binary, running until dropped (then killed and reaped).
struct Binary {
    child: Child,
    addr: SocketAddr,
}

impl Binary {
    fn start(cmd: &mut Command) -> Binary {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("poolserve starts");
        let addr = startup_addr(child.stdout.take().unwrap());
        Binary { child, addr }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- Real decoders ----

/// CRC-32 (IEEE), bit by bit: small inputs only.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid gzip member (RFC 1952) holding `data` in deflate stored blocks (RFC 1951 §3.2.4).
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks: Vec<&[u8]> = data.chunks(65_535).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        out.push(u8::from(i == last)); // BFINAL, BTYPE = 00 (stored), padded to the byte
        let len = u16::try_from(chunk.len()).unwrap();
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
    out
}

/// A valid brotli stream (RFC 7932) holding `data` (1 to 65,536 bytes) in one uncompressed
/// meta-block: WBITS = 16 (bit 0); ISLAST = 0; MNIBBLES = 4 (bits 00); MLEN - 1 in 16 bits;
/// ISUNCOMPRESSED = 1; pad to the byte; the data; then an empty last meta-block (ISLAST = 1,
/// ISLASTEMPTY = 1), padded. Bits are packed from the least significant end.
fn brotli_stored(data: &[u8]) -> Vec<u8> {
    assert!((1..=65_536).contains(&data.len()));
    let mlen_1 = u32::try_from(data.len() - 1).unwrap();
    // bit 0: WBITS; bit 1: ISLAST; bits 2-3: MNIBBLES; bits 4-19: MLEN-1; bit 20: ISUNCOMPRESSED.
    let header: u32 = (mlen_1 << 4) | (1 << 20);
    let mut out = header.to_le_bytes()[..3].to_vec();
    out.extend_from_slice(data);
    out.push(0b11);
    out
}

#[test]
fn the_stored_encoders_frame_their_input() {
    // Known answers: CRC-32 of "123456789" is 0xCBF43926.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    let gz = gzip_stored(b"abc");
    assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
    assert_eq!(gz.len(), 10 + 5 + 3 + 8);
    let br = brotli_stored(b"abc");
    assert_eq!(br.len(), 3 + 3 + 1);
    assert_eq!(br[0], 2 << 4); // MLEN-1 = 2, shifted past WBITS, ISLAST and MNIBBLES
}

/// `curl --compressed` (which asks for what its build decodes, e.g. `deflate, gzip, br, zstd`)
/// decodes the gzip and, when curl has brotli, the brotli sibling back to the original.
#[test_log::test]
fn curl_compressed_decodes_the_siblings() {
    if !have("curl") {
        eprintln!("skipping: curl is not installed");
        return;
    }
    let site = Site::new();
    let original = "console.log('hello from the original');\n".repeat(20);
    let write = |name: &str, bytes: &[u8]| std::fs::write(site.root.join(name), bytes).unwrap();
    write("gz.js", original.as_bytes());
    write("gz.js.gz", &gzip_stored(original.as_bytes()));
    write("both.js", original.as_bytes());
    write("both.js.gz", &gzip_stored(original.as_bytes()));
    write("both.js.br", &brotli_stored(original.as_bytes()));
    let srv = start(Server::builder(), StaticFiles::new(&site.root).unwrap());
    let version = Command::new("curl").arg("-V").output().unwrap();
    let curl_has_brotli = String::from_utf8_lossy(&version.stdout).contains("brotli");
    let fetch = |path: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--compressed", "-D", "-", "--max-time", "10"])
            .arg(format!("http://{}{path}", srv.addr))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_ascii_lowercase(), body.to_owned())
    };
    let (head, body) = fetch("/gz.js");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    assert_eq!(body, original);
    let (head, body) = fetch("/both.js");
    if curl_has_brotli {
        assert!(head.contains("content-encoding: br"), "{head}");
    } else {
        eprintln!("note: this curl has no brotli; it was sent the gzip sibling");
        assert!(head.contains("content-encoding: gzip"), "{head}");
    }
    assert_eq!(body, original);
}

/// Python: `urllib` asking for gzip gets the encoded bytes, which the stdlib `gzip` module turns
/// back into the original; `http.client` on one keep-alive connection sees br, identity, and a
/// 304 carrying `Vary`.
#[test_log::test]
fn python_urllib_gzip_and_http_client() {
    if !have("python3") {
        eprintln!("skipping: python3 is not installed");
        return;
    }
    let site = Site::new();
    let original = "body { color: rebeccapurple; }\n".repeat(50);
    std::fs::write(site.root.join("s.css"), &original).unwrap();
    std::fs::write(site.root.join("s.css.gz"), gzip_stored(original.as_bytes())).unwrap();
    std::fs::write(site.root.join("s.css.br"), BR_BYTES).unwrap();
    let srv = start(Server::builder(), StaticFiles::new(&site.root).unwrap());
    let script = r#"
import gzip, http.client, sys, urllib.request
host, port, original = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
req = urllib.request.Request(f"http://{host}:{port}/s.css", headers={"Accept-Encoding": "gzip"})
with urllib.request.urlopen(req) as r:
    assert r.headers["Content-Encoding"] == "gzip", r.headers
    assert r.headers["Content-Type"] == "text/css; charset=utf-8", r.headers
    assert r.headers["Vary"] == "Accept-Encoding", r.headers
    raw = r.read()
assert raw != original and gzip.decompress(raw) == original
c = http.client.HTTPConnection(host, port, timeout=10)
c.request("GET", "/s.css", headers={"Accept-Encoding": "br;q=1, gzip;q=0.5"})
r = c.getresponse(); body = r.read()
assert r.status == 200 and r.getheader("Content-Encoding") == "br", r.getheaders()
assert body == bytes.fromhex(sys.argv[4])
etag = r.getheader("ETag")
assert etag.endswith('-br"'), etag
c.request("GET", "/s.css")
r = c.getresponse(); body = r.read()
assert r.getheader("Content-Encoding") is None and body == original
assert r.getheader("Vary") == "Accept-Encoding"
c.request("GET", "/s.css", headers={"Accept-Encoding": "br", "If-None-Match": etag})
r = c.getresponse(); r.read()
assert r.status == 304 and r.getheader("Vary") == "Accept-Encoding", (r.status, r.getheaders())
print("ok")
"#;
    let hex: String = BR_BYTES.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &srv.addr.ip().to_string(),
            &srv.addr.port().to_string(),
            &original,
            &hex,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

/// Headless Chromium loads a page whose scripts exist only as encoded siblings that differ from
/// the plain files (so the DOM shows which one ran): `gz.js` has a gzip sibling, `br.js` a brotli
/// and a gzip one. Chromium must decode each; for `br.js` it must run the brotli one if its
/// `Accept-Encoding` (recorded by the test's handler) offered `br`, else the gzip one.
#[test_log::test]
fn chromium_runs_scripts_served_from_br_and_gz_siblings() {
    let Some(browser) = chromium() else {
        eprintln!("skipping: chromium is not installed");
        return;
    };
    let site = Site::new();
    let write = |name: &str, bytes: &[u8]| std::fs::write(site.root.join(name), bytes).unwrap();
    write(
        "page.html",
        b"<!DOCTYPE html><html><head><title>enc</title></head><body>\
          <p id=gz>gz: not run</p><p id=br>br: not run</p>\
          <script src=gz.js></script><script src=br.js></script></body></html>",
    );
    let script = |id: &str, text: &str| {
        format!("document.getElementById('{id}').textContent = '{id}: {text}';\n")
    };
    write("gz.js", script("gz", "PLAIN").as_bytes());
    write("gz.js.gz", &gzip_stored(script("gz", "FROM-GZ").as_bytes()));
    write("br.js", script("br", "PLAIN").as_bytes());
    write("br.js.gz", &gzip_stored(script("br", "FROM-GZ").as_bytes()));
    write(
        "br.js.br",
        &brotli_stored(script("br", "FROM-BR").as_bytes()),
    );
    let files = StaticFiles::new(&site.root).unwrap();
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let record = Arc::clone(&seen);
    let handler = move |req: &Request<'_, '_>| -> Response {
        let ae = req
            .header("accept-encoding")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        record.lock().unwrap().push((req.path().to_owned(), ae));
        files.handle(req)
    };
    let srv = start(Server::builder(), handler);
    let dom = chromium_dom(browser, &format!("http://{}/page.html", srv.addr));
    assert!(dom.contains("gz: FROM-GZ"), "{dom}");
    let seen = seen.lock().unwrap().clone();
    let br_ae = seen
        .iter()
        .find(|(path, _)| path == "/br.js")
        .map(|(_, ae)| ae.clone())
        .expect("chromium asked for /br.js");
    let offers_br = br_ae.split(',').any(|c| c.trim() == "br");
    if offers_br {
        assert!(
            dom.contains("br: FROM-BR"),
            "Accept-Encoding {br_ae:?}: {dom}"
        );
    } else {
        eprintln!(
            "note: chromium did not offer br over plain http (Accept-Encoding: {br_ae:?}); \
             it got and ran the gzip sibling"
        );
        assert!(dom.contains("br: FROM-GZ"), "{dom}");
    }
}
