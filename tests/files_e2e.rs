//! End-to-end tests of the static-file handler over TCP on 127.0.0.1: the full set of
//! preconditions (RFC 9110 §13.2.2), `Cache-Control`, redirects that keep the query, and the
//! directory listing.
#![cfg(not(loom))]

mod util;

use poolserve::Server;
use poolserve::files::StaticFiles;
use util::*;

/// `GET /digits.txt` with the extra header lines `extra` (each ending in CRLF); 304s read head-only.
fn get_with(srv: &Running, target: &str, extra: &str) -> Reply {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n");
    let mut s = connect(srv.addr);
    std::io::Write::write_all(&mut s, raw.as_bytes()).unwrap();
    let mut peek = [0u8; 12];
    let n = s.peek(&mut peek).unwrap();
    let head_only = n == 12 && &peek[9..12] == b"304";
    read_reply(&mut s, head_only).expect("a reply")
}

#[test_log::test]
fn preconditions_are_evaluated_in_rfc_9110_order() {
    let site = Site::new();
    let srv = Running::start(
        Server::builder().threads(2),
        StaticFiles::new(&site.root).unwrap(),
    );
    let full = get(srv.addr, "/digits.txt");
    let etag = full.header("etag").unwrap().to_owned();
    let lm = full.header("last-modified").unwrap().to_owned();
    let past = "Sun, 06 Nov 1994 08:49:37 GMT";
    let future = "Fri, 01 Jan 2100 00:00:00 GMT";
    let cases: Vec<(String, u16)> = vec![
        // If-Match: strong comparison; `*` matches any current file.
        (format!("If-Match: {etag}\r\n"), 200),
        (format!("If-Match: \"nope\", {etag}\r\n"), 200),
        ("If-Match: *\r\n".into(), 200),
        ("If-Match: \"nope\"\r\n".into(), 412),
        (format!("If-Match: W/{etag}\r\n"), 412),
        // If-Unmodified-Since: false when the file changed after the date; a bad date is ignored.
        (format!("If-Unmodified-Since: {lm}\r\n"), 200),
        (format!("If-Unmodified-Since: {future}\r\n"), 200),
        (format!("If-Unmodified-Since: {past}\r\n"), 412),
        ("If-Unmodified-Since: yesterday\r\n".into(), 200),
        // If-Match present: If-Unmodified-Since is not looked at.
        (
            format!("If-Match: {etag}\r\nIf-Unmodified-Since: {past}\r\n"),
            200,
        ),
        // Step 1/2 before step 3/4: a failed If-Match is 412 even when If-None-Match would be 304.
        (
            format!("If-Match: \"nope\"\r\nIf-None-Match: {etag}\r\n"),
            412,
        ),
        (
            format!("If-Unmodified-Since: {past}\r\nIf-None-Match: {etag}\r\n"),
            412,
        ),
        // Passing step 1, then step 3 decides.
        (
            format!("If-Match: {etag}\r\nIf-None-Match: {etag}\r\n"),
            304,
        ),
        (
            format!("If-Unmodified-Since: {lm}\r\nIf-Modified-Since: {lm}\r\n"),
            304,
        ),
        // If-None-Match wins over If-Modified-Since.
        (
            format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {lm}\r\n"),
            200,
        ),
        // If-Range last: with passing preconditions, a stale If-Range serves everything.
        (
            format!("If-Match: {etag}\r\nRange: bytes=0-1\r\nIf-Range: {etag}\r\n"),
            206,
        ),
        (
            format!("If-Match: {etag}\r\nRange: bytes=0-1\r\nIf-Range: \"stale\"\r\n"),
            200,
        ),
    ];
    for (extra, want) in &cases {
        let r = get_with(&srv, "/digits.txt", extra);
        assert_eq!(r.status, *want, "{extra:?}");
        match want {
            200 => assert_eq!(r.text(), "0123456789", "{extra:?}"),
            206 => assert_eq!(r.text(), "01", "{extra:?}"),
            _ => {}
        }
    }
}

#[test_log::test]
fn cache_control_goes_on_200_206_and_304_only() {
    let site = Site::new();
    let srv = Running::start(
        Server::builder().threads(2),
        StaticFiles::new(&site.root)
            .unwrap()
            .cache_control("public, max-age=60"),
    );
    let cc = Some("public, max-age=60");
    let full = get(srv.addr, "/digits.txt");
    assert_eq!((full.status, full.header("cache-control")), (200, cc));
    let etag = full.header("etag").unwrap().to_owned();
    let r = get_with(&srv, "/digits.txt", "Range: bytes=1-2\r\n");
    assert_eq!((r.status, r.header("cache-control")), (206, cc));
    let r = get_with(&srv, "/digits.txt", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!((r.status, r.header("cache-control")), (304, cc));
    let r = get_with(&srv, "/", "");
    assert_eq!(
        (r.status, r.header("cache-control")),
        (200, cc),
        "index page"
    );
    for (extra, status) in [("If-Match: \"x\"\r\n", 412), ("Range: bytes=99-\r\n", 416)] {
        let r = get_with(&srv, "/digits.txt", extra);
        assert_eq!((r.status, r.header("cache-control")), (status, None));
    }
    let r = get(srv.addr, "/nope");
    assert_eq!((r.status, r.header("cache-control")), (404, None));
    let r = get(srv.addr, "/sub");
    assert_eq!((r.status, r.header("cache-control")), (301, None));

    // Without the setting, no Cache-Control at all.
    let plain = Running::start(
        Server::builder().threads(1),
        StaticFiles::new(&site.root).unwrap(),
    );
    assert_eq!(get(plain.addr, "/digits.txt").header("cache-control"), None);
}

#[test_log::test]
fn a_directory_redirect_keeps_the_query() {
    let site = Site::new();
    let srv = Running::start(
        Server::builder().threads(1),
        StaticFiles::new(&site.root).unwrap(),
    );
    for (target, location) in [
        ("/sub?x=1", "/sub/?x=1"),
        ("/sub?x=1&y=a%20b", "/sub/?x=1&y=a%20b"),
        ("/sub", "/sub/"),
        ("//sub?q", "/sub/?q"),
        ("http://t/sub?x=1", "/sub/?x=1"),
    ] {
        let r = get(srv.addr, target);
        assert_eq!(
            (r.status, r.header("location")),
            (301, Some(location)),
            "{target}"
        );
    }
    // curl follows the redirect and arrives with the query.
    if !have("curl") {
        eprintln!("skipped the curl part: no curl on PATH");
        return;
    }
    let out = std::process::Command::new("curl")
        .args(["-sSL", "--max-time", "10", "-o", "/dev/null", "-w"])
        .arg("%{http_code} %{url_effective} %{num_redirects}")
        .arg(format!("http://{}/sub?x=1", srv.addr))
        .output()
        .expect("curl runs");
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        summary,
        format!("200 http://{}/sub/?x=1 1", srv.addr),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(unix)]
#[test_log::test]
fn the_listing_shows_decoded_names_sizes_dates_directories_first_and_only_servable_links() {
    use std::os::unix::fs::symlink;
    let site = Site::new();
    let dir = site.root.join("café & <co>");
    std::fs::create_dir_all(dir.join("z-dir")).unwrap();
    std::fs::write(dir.join("a.txt"), "abc").unwrap();
    std::fs::write(dir.join("b <i>.txt"), "12345").unwrap();
    symlink("../hello.txt", dir.join("in-link")).unwrap();
    symlink("../../secret.txt", dir.join("out-link")).unwrap();
    symlink("../sub", dir.join("dir-link")).unwrap();
    symlink(&site.dir, dir.join("dir-out")).unwrap();
    symlink("nowhere", dir.join("dangling")).unwrap();
    let srv = Running::start(
        Server::builder().threads(1),
        StaticFiles::new(&site.root).unwrap().list_dirs(true),
    );
    let r = get(srv.addr, "/caf%C3%A9%20%26%20%3Cco%3E/");
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(
        html.contains("<title>Index of /café &amp; &lt;co&gt;/</title>"),
        "{html}"
    );
    assert!(
        html.contains("<h1>Index of /café &amp; &lt;co&gt;/</h1>"),
        "{html}"
    );
    let rows: Vec<&str> = html
        .lines()
        .filter(|l| l.starts_with("<tr><td><a href=\"./"))
        .collect();
    let names: Vec<&str> = rows
        .iter()
        .map(|row| {
            row.split("\">")
                .nth(1)
                .unwrap()
                .split("</a>")
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        ["dir-link/", "z-dir/", "a.txt", "b &lt;i&gt;.txt", "in-link"],
        "{html}"
    );
    let modified = |name: &str| {
        httpdate::fmt_http_date(
            std::fs::metadata(dir.join(name))
                .unwrap()
                .modified()
                .unwrap(),
        )
    };
    assert!(rows[2].contains("<td>3</td>"), "{}", rows[2]);
    assert!(rows[2].contains(&modified("a.txt")), "{}", rows[2]);
    assert!(rows[3].contains("<td>5</td>"), "{}", rows[3]);
    assert!(
        rows[4].contains("<td>13</td>"),
        "the linked file's size: {}",
        rows[4]
    );
    assert!(rows[0].contains("<td>-</td>"), "{}", rows[0]);
    assert!(
        rows[3].contains("href=\"./b%20%3Ci%3E.txt\""),
        "{}",
        rows[3]
    );
    assert!(!html.contains(SECRET));
    // What the listing links to is served.
    for href in ["dir-link/", "in-link", "a.txt", "b%20%3Ci%3E.txt", "z-dir/"] {
        let target = format!("/caf%C3%A9%20%26%20%3Cco%3E/{href}");
        let status = get(srv.addr, &target).status;
        assert!(status == 200, "{target}: {status}");
    }
}
