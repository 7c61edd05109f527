//! Fuzz target `conn`: the check lives in `poolserve::fuzz_support::conn_script` so that
//! `tests/fuzz_corpus.rs` replays the corpus through the same assertions on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    poolserve::fuzz_support::conn_script(data);
});
