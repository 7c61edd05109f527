#!/usr/bin/env bash
# Runs the loom model suite and fails unless it passed at least the expected number of models.
#
# A loom suite can "pass" by running nothing (a missing `--cfg loom`, a cfg typo, a filter): every
# model file is `#![cfg(loom)]`, so it then compiles to zero tests and libtest reports success.
# This script adds up the `test result:` lines and refuses fewer passes than expected.
#
# Usage: loom-tests/run.sh [extra libtest args...]
#   LOOM_MIN_MODELS   minimum number of passing tests (default below; raise it when adding models)
#   LOOM_MAX_PREEMPTIONS  raises every model's preemption bound (never lowers it)
set -euo pipefail

# 11 models of the real pool (pool.rs) + 9 of its fast paths (pool_fast_path.rs) + 3 of its less
# travelled shutdown paths (pool_shutdown_paths.rs) + 7 negative examples (negative.rs) + 7 of the
# server's hand-off protocol (handoff.rs: 5 models, 2 negative twins) + 4 of spawned jobs' handles
# (handles.rs).
expected="${LOOM_MIN_MODELS:-41}"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

start=$SECONDS
status=0
RUSTFLAGS="--cfg loom -C debug-assertions" \
    cargo test --release -p loom-tests --target-dir target/loom -- "$@" 2>&1 | tee "$log" || status=$?
elapsed=$((SECONDS - start))

passed=0
failed=0
lines=0
while IFS= read -r line; do
    lines=$((lines + 1))
    if [[ $line =~ ([0-9]+)\ passed\;\ ([0-9]+)\ failed ]]; then
        passed=$((passed + BASH_REMATCH[1]))
        failed=$((failed + BASH_REMATCH[2]))
    fi
done < <(grep -E '^test result: ' "$log" || true)

echo "loom-tests/run.sh: ${lines} test binaries, ${passed} passed, ${failed} failed, ${elapsed}s (expected >= ${expected} passed)"

if ((status != 0)); then
    echo "loom-tests/run.sh: cargo test failed (exit ${status})" >&2
    exit "$status"
fi
if ((failed != 0)); then
    echo "loom-tests/run.sh: ${failed} loom test(s) failed" >&2
    exit 1
fi
if ((passed < expected)); then
    echo "loom-tests/run.sh: only ${passed} loom test(s) passed, expected at least ${expected};" \
        "was the suite built without --cfg loom, or were models filtered out?" >&2
    exit 1
fi
