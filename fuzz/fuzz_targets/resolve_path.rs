//! Fuzz target `resolve_path`: `poolserve::files::resolve` stays under the root; the check
//! lives in `poolserve::fuzz_support::resolve_path` so `tests/fuzz_corpus.rs` replays it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    poolserve::fuzz_support::resolve_path(data);
});
