//! Headless Chromium loads the bundled `public/` site from the server. Skipped (with a printed
//! reason) where Chromium is not installed; `.ci/run` installs Debian's `chromium`.
#![cfg(not(loom))]

mod util;

use std::process::Command;

use poolserve::Server;
use poolserve::files::StaticFiles;
use util::*;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| have(c))
}

#[test_log::test]
fn chromium_renders_the_bundled_site() {
    let Some(browser) = chromium() else {
        eprintln!("skipping: chromium is not installed");
        return;
    };
    let public = concat!(env!("CARGO_MANIFEST_DIR"), "/public");
    let srv = Running::start(
        Server::builder().threads(2),
        StaticFiles::new(public).unwrap(),
    );
    let profile = std::env::temp_dir().join(format!("poolserve-chromium-{}", std::process::id()));
    let out = Command::new("timeout")
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
        .arg(format!("http://{}/", srv.addr))
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains("<title>poolserve</title>"), "{dom}");
    assert!(dom.contains("Hello from poolserve!"), "{dom}");
}
