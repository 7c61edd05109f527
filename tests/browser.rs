//! Headless Chromium loads the bundled `public/` site from the server. Skipped (with a printed
//! reason) where Chromium is not installed; `.ci/run` installs Debian's `chromium`.
#![cfg(not(loom))]

mod util;

use poolserve::Server;
use poolserve::files::StaticFiles;
use util::*;

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
    let dom = chromium_dom(browser, &format!("http://{}/", srv.addr));
    assert!(dom.contains("<title>poolserve</title>"), "{dom}");
    assert!(dom.contains("Hello from poolserve!"), "{dom}");
}
