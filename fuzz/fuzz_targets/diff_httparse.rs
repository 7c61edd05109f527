//! Fuzz target `diff_httparse`: `poolserve::http::parse` against httparse. The check and the
//! list of intentional differences live in `fuzz/diff_check.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../diff_check.rs"]
mod diff_check;

fuzz_target!(|data: &[u8]| {
    diff_check::check(data);
});
