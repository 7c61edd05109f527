#!/usr/bin/env bash
# Short fuzzing smoke run for CI: every cargo-fuzz target for N seconds (default 30), on
# stable (`-s none`: no sanitizer), seeded from the committed fuzz/regressions/<target>/.
# Installs cargo-fuzz (--locked) when it is missing. Fails if any target crashes.
#
# Usage: fuzz/smoke.sh [SECONDS] [TARGET...]
set -euo pipefail

seconds="${1:-30}"
shift || true
cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

failed=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/regressions/$target"
    echo "smoke.sh: $target for ${seconds}s" >&2
    if ! cargo fuzz run -s none "$target" "fuzz/corpus/$target" "fuzz/regressions/$target" \
        -- -max_total_time="$seconds" -max_len=4096 -print_final_stats=1; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "smoke.sh: crashes in: ${failed[*]} (inputs under fuzz/artifacts/; commit them to" \
        "fuzz/regressions/<target>/ once fixed)" >&2
    exit 1
fi
echo "smoke.sh: all targets clean" >&2
