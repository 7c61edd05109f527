#!/usr/bin/env bash
# Per-request costs of each server (a diagnostic next to run.sh's throughput figures):
#   * server CPU time per request (utime + stime from /proc/PID/stat, all threads),
#   * context switches per request (voluntary + involuntary, summed over /proc/PID/task/*),
#   * for poolserve only: system calls per request, counted with `strace -f -c` (strace slows
#     the server down a lot, so that run's req/s means nothing; only the counts are used).
#
#   bash benches/load/costs.sh        # expects the release builds that run.sh makes
#
# 127.0.0.1 only; every wrk run is bounded; every server started here is killed on exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${OUT:-$HERE/results}"
DURATION="${DURATION:-3s}"
BASE_PORT="${BASE_PORT:-18200}"
POOLSERVE_BIN="${POOLSERVE_BIN:-$ROOT/target/release/poolserve}"
PEERS_DIR="${PEERS_DIR:-$HERE/peers/target/release}"
for b in "$POOLSERVE_BIN" "$PEERS_DIR/hyper" "$PEERS_DIR/tiny" "$PEERS_DIR/book"; do
    [ -x "$b" ] || { echo "missing $b: run benches/load/run.sh first" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "wrk is required (run.sh installs it)" >&2; exit 2; }

PIDS=()
SITE="$(mktemp -d)"
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$SITE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf '%0175d\n' 0 >"$SITE/index.html" # 176 bytes; the content does not matter here
mkdir -p "$OUT"

switches() {
    local total=0 f
    for f in /proc/"$1"/task/*/status; do
        total=$((total + $(awk '/ctxt_switches/ { s += $2 } END { print s + 0 }' "$f" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"

report="$OUT/costs.md"
{
    echo "Per-request costs, 176-byte page, keep-alive, $DURATION wrk runs; loadavg at start:" \
        "$(cut -d' ' -f1-3 /proc/loadavg); nproc $(nproc). wrk shares the cores with the server."
    echo
    echo "| server | connections | req/s | server CPU µs/request | context switches/request |"
    echo "|---|---:|---:|---:|---:|"
} >"$report"

i=0
# poolserve twice: with 4 workers (its default) and with 2 (one per core, like hyper's runtime).
for s in poolserve-4w poolserve-2w hyper tiny book; do
    port=$((BASE_PORT + i)); i=$((i + 1))
    if [ "${s%-*}" = poolserve ]; then
        workers="${s#poolserve-}"
        "$POOLSERVE_BIN" --bind "127.0.0.1:$port" --root "$SITE" --threads "${workers%w}" \
            --no-access-log >/dev/null 2>&1 &
    else
        "$PEERS_DIR/$s" "$port" "$SITE" >/dev/null 2>&1 &
    fi
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 50); do curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && break; sleep 0.1; done
    timeout 10 wrk -t 2 -c 16 -d 1s "http://127.0.0.1:$port/" >/dev/null # warm-up
    for c in 1 16; do
        t=2; [ "$c" -lt 2 ] && t=1
        sw0=$(switches "$pid"); cpu0=$(cpu_ticks "$pid")
        out=$(timeout $(( ${DURATION%s} + 20 )) wrk -t "$t" -c "$c" -d "$DURATION" "http://127.0.0.1:$port/")
        sw1=$(switches "$pid"); cpu1=$(cpu_ticks "$pid")
        n=$(awk '/requests in/ { print $1 }' <<<"$out")
        rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
        python3 -c "
n, hz = $n, $hz
print('| $s | $c | %.0f | %.1f | %.2f |' % ($rps, ($cpu1 - $cpu0) * 1e6 / hz / n, ($sw1 - $sw0) / n))
" >>"$report"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
done

if command -v strace >/dev/null; then
    port=$((BASE_PORT + 9))
    # The same worker count as the throughput runs (run.sh passes POOLSERVE_THREADS).
    trace="$(mktemp)"
    timeout 60 strace -f -c -o "$trace" "$POOLSERVE_BIN" --bind "127.0.0.1:$port" --root "$SITE" \
        --threads "${POOLSERVE_THREADS:-4}" --no-access-log >/dev/null 2>&1 &
    spid=$!
    PIDS+=("$spid")
    probes=0
    for _ in $(seq 1 100); do
        probes=$((probes + 1))
        curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && break
        sleep 0.1
    done
    n=$(timeout 30 wrk -t 1 -c 1 -d 2s "http://127.0.0.1:$port/" | awk '/requests in/ { print $1 }')
    n=$((n + probes))
    kill -INT "$spid" 2>/dev/null || true # `timeout` passes it to strace, which ends poolserve
    wait "$spid" 2>/dev/null || true
    {
        echo
        echo "poolserve system calls per request (strace -f -c, 1 keep-alive connection, $n requests):"
        echo
        echo "| syscall | calls/request | failed/request |"
        echo "|---|---:|---:|"
        awk -v n="$n" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {
            calls = $4; errs = (NF == 6) ? $5 : 0
            if (calls / n >= 0.05) printf "| %s | %.2f | %.2f |\n", $NF, calls / n, errs / n }' "$trace"
    } >>"$report"
    rm -f "$trace"
fi
cat "$report"
