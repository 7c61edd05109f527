#!/usr/bin/env bash
# Runs the mutant catalog: applies each deliberate break of the real pool (a patch listed in
# catalog.txt) to a scratch copy of the repository, runs only the check paired with it, and fails
# unless every break is caught. See README.md beside this script.
#
# Usage: loom-tests/catalog/run.sh [PATCH_NAME...]   (no names: every line of catalog.txt)
#   CATALOG_TIME_LIMIT  seconds one check may run before it counts as NOT caught (default 120)
#   CATALOG_LOOM_TARGET_DIR  target dir of the loom builds (default: target/catalog-loom). When it
#                       does not exist yet, it starts as a copy of target/loom (the loom suite's), so
#                       that the dependencies are not built again and each patch rebuilds only the
#                       pool and one test binary. It must not be target/loom itself: cargo gives the
#                       scratch copy's crates the same artifact names as the checkout's, and a
#                       patched build there could later pass for a fresh build of the checkout.
#   CATALOG_STD_TARGET_DIR   the same for real-thread checks (default: target/catalog-std)
#
# A break counts as caught only if the patched code builds, the check's binary selects exactly one
# test, and that test fails (or the binary aborts, as loom 0.7 does after some deadlocks) within
# the time limit. A patch that no longer applies, a build that fails, a check that passes and a
# check that runs out of time all fail the catalog. The checkout itself is never modified: the
# patches are applied to a copy of its tracked (and untracked, not ignored) files in a temp dir.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
limit="${CATALOG_TIME_LIMIT:-120}"
loom_target="${CATALOG_LOOM_TARGET_DIR:-$root/target/catalog-loom}"
std_target="${CATALOG_STD_TARGET_DIR:-$root/target/catalog-std}"
if [[ ! -e "$loom_target" && -d "$root/target/loom" ]]; then
    cp -a "$root/target/loom" "$loom_target"
fi
mkdir -p "$loom_target" "$std_target"
loom_target="$(cd "$loom_target" && pwd)"
std_target="$(cd "$std_target" && pwd)"

scratch="$(mktemp -d)"
logs="$(mktemp -d)"
trap 'rm -rf "$scratch" "$logs"' EXIT

# The manifest: claim, patch, kind (loom | test), test binary, test name.
entries=()
while read -r claim patch kind binary check rest; do
    [[ -z "${claim:-}" || "$claim" == \#* ]] && continue
    if [[ -z "${check:-}" || -n "${rest:-}" || ! "$kind" =~ ^(loom|test)$ ]]; then
        echo "catalog.txt: malformed line: $claim $patch $kind $binary $check $rest" >&2
        exit 2
    fi
    [[ -f "$here/$patch.patch" ]] || { echo "catalog.txt: no file $patch.patch" >&2; exit 2; }
    entries+=("$claim $patch $kind $binary $check")
done <"$here/catalog.txt"
for file in "$here"/*.patch; do
    name="$(basename "$file" .patch)"
    printf '%s\n' "${entries[@]}" | awk '{print $2}' | grep -qx "$name" ||
        { echo "catalog: $name.patch is not listed in catalog.txt" >&2; exit 2; }
done
if (($# > 0)); then
    selected=()
    for want in "$@"; do
        found=0
        for e in "${entries[@]}"; do
            read -r _ p _ _ _ <<<"$e"
            if [[ "$p" == "$want" ]]; then selected+=("$e"); found=1; fi
        done
        ((found)) || { echo "catalog: no entry for $want" >&2; exit 2; }
    done
    entries=("${selected[@]}")
fi

# The scratch copy: every file git tracks or would track, as it is in the working tree.
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
    tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$scratch"

export CARGO_TERM_COLOR=never RUST_BACKTRACE=0
unset LOOM_MAX_PREEMPTIONS # each check runs at its own bound, as in the suite

# The loom builds are the suite's (release: loom and the other dependencies optimised, with
# debug assertions), except that the two crates rebuilt for every patch, the pool and the models,
# are compiled unoptimised and without debug info: a rebuild then takes a few seconds instead of
# over ten, and the interleavings loom explores are the same (its scheduling points are explicit
# calls into loom, not something the optimiser moves). A broken model fails within its first
# interleavings, so running it unoptimised costs little.
fast_models=(--config 'profile.release.package.poolserve.opt-level=0'
    --config 'profile.release.package.loom-tests.opt-level=0'
    --config 'profile.release.package.poolserve.debug=false'
    --config 'profile.release.package.loom-tests.debug=false')

# build KIND BINARY: builds the check's test binary in the scratch copy.
build() {
    if [[ "$1" == loom ]]; then
        RUSTFLAGS="--cfg loom -C debug-assertions" CARGO_TARGET_DIR="$loom_target" \
            cargo test --release "${fast_models[@]}" -p loom-tests --test "$2" --no-run
    else
        CARGO_TARGET_DIR="$std_target" cargo test -p poolserve --test "$2" --no-run
    fi
}

# check KIND BINARY NAME: runs exactly that one test, within the time limit.
check() {
    if [[ "$1" == loom ]]; then
        RUSTFLAGS="--cfg loom -C debug-assertions" CARGO_TARGET_DIR="$loom_target" \
            timeout "$limit" cargo test --release "${fast_models[@]}" -p loom-tests --test "$2" \
            -- --exact "$3"
    else
        CARGO_TARGET_DIR="$std_target" \
            timeout "$limit" cargo test -p poolserve --test "$2" -- --exact "$3"
    fi
}

start=$SECONDS
failures=0
caught=0
cd "$scratch"
for e in "${entries[@]}"; do
    read -r claim patch kind binary name <<<"$e"
    log="$logs/$patch.$name.log"
    t0=$SECONDS
    verdict=""
    if ! git apply --check "$here/$patch.patch" >"$log" 2>&1; then
        verdict="PATCH DOES NOT APPLY"
    else
        git apply "$here/$patch.patch"
        if ! build "$kind" "$binary" >>"$log" 2>&1; then
            verdict="DOES NOT BUILD"
        else
            status=0
            check "$kind" "$binary" "$name" >>"$log" 2>&1 || status=$?
            if ((status == 124)); then
                verdict="NOT CAUGHT (still running after ${limit}s)"
            elif ! grep -q '^running 1 test$' "$log"; then
                verdict="CHECK NOT FOUND (the filter did not select exactly one test)"
            elif ((status == 0)); then
                verdict="NOT CAUGHT (the check passed)"
            else
                verdict="caught"
            fi
        fi
        git apply -R "$here/$patch.patch"
    fi
    printf '%-4s %-50s %-4s %-20s %-62s %4ss  %s\n' \
        "$claim" "$patch" "$kind" "$binary" "$name" "$((SECONDS - t0))" "$verdict"
    if [[ "$verdict" == caught ]]; then
        caught=$((caught + 1))
    else
        failures=$((failures + 1))
        echo "---- last lines of the log for $patch ($name):"
        tail -n 25 "$log"
        echo "----"
    fi
done

echo "loom-tests/catalog/run.sh: ${caught} of ${#entries[@]} breaks caught, $((SECONDS - start))s"
if ((failures > 0)); then
    echo "loom-tests/catalog/run.sh: ${failures} break(s) not caught or not checkable" >&2
    exit 1
fi
