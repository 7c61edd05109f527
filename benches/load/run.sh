#!/usr/bin/env bash
# Server load benchmark: poolserve against three peers (see benches/load/README.md).
#
#   bash benches/load/run.sh            # full run: builds, throughput runs, idle-connection run
#   DURATION=2s ROUNDS=1 SKIP_IDLE=1 SKIP_COSTS=1 bash benches/load/run.sh   # a quick look
#
# Everything stays on 127.0.0.1, every wrk run is bounded (-d plus a `timeout` around it), and
# every server this script starts is killed on exit. Results land in benches/load/results/.
# The load generator (wrk) runs on the same machine as the servers and shares its cores.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${OUT:-$HERE/results}"
DURATION="${DURATION:-5s}"        # length of each wrk run
ROUNDS="${ROUNDS:-3}"             # every load is run ROUNDS times per server; the report takes medians
WRK_THREADS="${WRK_THREADS:-2}"   # wrk threads (capped at the connection count)
BASE_PORT="${BASE_PORT:-18080}"   # poolserve, hyper, tiny, book get BASE_PORT + 0..3
SERVERS="${SERVERS:-poolserve hyper tiny book}"
POOLSERVE_THREADS="${POOLSERVE_THREADS:-4}"

case "$ROUNDS" in '' | 0 | *[!0-9]*) echo "ROUNDS must be a positive whole number" >&2; exit 2 ;; esac
secs="${DURATION%s}"
case "$secs" in '' | *[!0-9]*) echo "DURATION must be whole seconds, like 5s" >&2; exit 2 ;; esac

log() { printf '[run.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

PIDS=()
SITE=""
BIN_DIR=""
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    sleep 0.5
    for pid in "${PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [ -n "$SITE" ] && rm -rf "$SITE"
    [ -n "$BIN_DIR" ] && rm -rf "$BIN_DIR"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk (apt-get)"
    timeout 300 apt-get update -qq
    timeout 300 apt-get install -y -qq wrk >/dev/null
fi
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 2; }

# --- builds ------------------------------------------------------------------------------------
log "building poolserve (release)"
(cd "$ROOT" && timeout 1200 cargo build --release --quiet --bin poolserve)
log "building the peers (release)"
timeout 1200 cargo build --release --quiet --manifest-path "$HERE/peers/Cargo.toml"
# Snapshot the binaries: a later `cargo build` by someone else must not change them mid-run.
BIN_DIR="$(mktemp -d)"
cp "$ROOT/target/release/poolserve" "$BIN_DIR/poolserve"
for p in book tiny hyper; do cp "$HERE/peers/target/release/$p" "$BIN_DIR/$p"; done
POOLSERVE_BIN="$BIN_DIR/poolserve"
PEERS_DIR="$BIN_DIR"

# --- the site ------------------------------------------------------------------------------------
SITE="$(mktemp -d)"
printf '%s\n' \
    '<!DOCTYPE html>' \
    '<html><head><meta charset="utf-8"><title>poolserve load test</title></head>' \
    '<body><p>A 176-byte test page of the poolserve server benchmark.</p></body>' \
    '</html>' >"$SITE/index.html"
head -c 1048576 /dev/urandom >"$SITE/1m.bin"
[ "$(wc -c <"$SITE/index.html")" -eq 176 ] || { echo "index.html is not 176 bytes" >&2; exit 1; }

rm -rf "$OUT/raw"
mkdir -p "$OUT/raw"

# --- servers -------------------------------------------------------------------------------------
declare -A PORT PID
start_server() {
    local name="$1" port="$2"
    case "$name" in
        poolserve)
            "$POOLSERVE_BIN" --bind "127.0.0.1:$port" --root "$SITE" --threads "$POOLSERVE_THREADS" \
                --no-access-log >"$OUT/raw/$name.stdout" 2>"$OUT/raw/$name.stderr" &
            ;;
        book | tiny | hyper)
            "$PEERS_DIR/$name" "$port" "$SITE" >"$OUT/raw/$name.stdout" 2>"$OUT/raw/$name.stderr" &
            ;;
        *) echo "unknown server $name" >&2; exit 2 ;;
    esac
    PID[$name]=$!
    PIDS+=("$!")
    PORT[$name]=$port
}

i=0
for s in $SERVERS; do
    start_server "$s" $((BASE_PORT + i))
    i=$((i + 1))
done

# Wait until every server answers, and check that each serves the same two files.
for s in $SERVERS; do
    ok=""
    for _ in $(seq 1 50); do
        if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:${PORT[$s]}/"; then ok=1; break; fi
        sleep 0.1
    done
    [ -n "$ok" ] || { echo "$s did not come up; stderr:" >&2; cat "$OUT/raw/$s.stderr" >&2; exit 1; }
    curl -fsS --max-time 5 -o "$SITE/.check" "http://127.0.0.1:${PORT[$s]}/"
    cmp -s "$SITE/.check" "$SITE/index.html" || { echo "$s: wrong body for /" >&2; exit 1; }
    curl -fsS --max-time 5 -o "$SITE/.check" "http://127.0.0.1:${PORT[$s]}/1m.bin"
    cmp -s "$SITE/.check" "$SITE/1m.bin" || { echo "$s: wrong body for /1m.bin" >&2; exit 1; }
    curl -sS -o /dev/null -D "$OUT/raw/$s.headers" --max-time 5 "http://127.0.0.1:${PORT[$s]}/"
    rm -f "$SITE/.check"
done
log "all servers up: $(for s in $SERVERS; do printf '%s:%s ' "$s" "${PORT[$s]}"; done)"

# --- machine -------------------------------------------------------------------------------------
{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc=$(nproc)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel=$(uname -r)"
    echo "wrk=$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
    echo "rustc=$(rustc --version)"
    echo "poolserve_commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ' (+ uncommitted changes in src/ or Cargo.toml)')"
    echo "poolserve_sha256=$(sha256sum "$POOLSERVE_BIN" | cut -c1-16)"
    echo "duration=$DURATION"
    echo "rounds=$ROUNDS"
    echo "wrk_threads=$WRK_THREADS"
    echo "poolserve_threads=$POOLSERVE_THREADS"
    echo "uptime_start=$(uptime)"
    # Other work on the machine when the run starts: the top CPU users over one second.
    if command -v top >/dev/null; then
        top -b -n 2 -d 1 -w 200 | awk '/^top -/ { f++ } f == 2' | sed -n '8,12p' |
            awk '{ printf "busy_at_start=%s%% %s\n", $9, $12 }'
    fi
} >"$OUT/raw/machine.txt"

# --- runs ----------------------------------------------------------------------------------------
# name|connections|path|extra wrk header
LOADS=(
    "ka1|1|/|"
    "ka16|16|/|"
    "ka64|64|/|"
    "ka256|256|/|"
    "close16|16|/|Connection: close"
    "1mib16|16|/1m.bin|"
)

run_wrk() {
    local out="$1" conns="$2" url="$3" header="$4" dur="$5"
    local t=$WRK_THREADS
    [ "$conns" -lt "$t" ] && t=$conns
    local args=(-t "$t" -c "$conns" -d "$dur" --timeout 2s --latency)
    [ -n "$header" ] && args+=(-H "$header")
    timeout $(( ${dur%s} + 20 )) wrk "${args[@]}" "$url" >"$out" 2>&1 || echo "wrk exit $?" >>"$out"
}

log "warm-up (1 s per server, not recorded)"
for s in $SERVERS; do
    run_wrk /dev/null 16 "http://127.0.0.1:${PORT[$s]}/" "" 1s
done

# ROUNDS rounds; in each, loads outside and servers inside: the servers of one load run back to
# back, so a change in the machine's background load hits all of them alike, and the report takes
# each figure's median over the rounds.
for round in $(seq 1 "$ROUNDS"); do
    for load in "${LOADS[@]}"; do
        IFS='|' read -r lname conns path header <<<"$load"
        for s in $SERVERS; do
            f="$OUT/raw/$s.$lname.r$round.txt"
            {
                echo "# server=$s load=$lname round=$round connections=$conns path=$path header=$header duration=$DURATION"
                echo "# loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
            } >"$f"
            log "round $round/$ROUNDS: $s $lname"
            run_wrk "$f.wrk" "$conns" "http://127.0.0.1:${PORT[$s]}$path" "$header" "$DURATION"
            cat "$f.wrk" >>"$f"
            rm -f "$f.wrk"
            echo "# loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$f"
            if ! kill -0 "${PID[$s]}" 2>/dev/null; then
                echo "# SERVER DIED during this run" >>"$f"
                log "$s died during $lname; stderr:"
                tail -20 "$OUT/raw/$s.stderr" >&2
            fi
        done
    done
done
echo "uptime_end=$(uptime)" >>"$OUT/raw/machine.txt"

# Stop the throughput servers before the idle-connection run.
cleanup_servers() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
cleanup_servers

log "report"
python3 "$HERE/report.py" "$OUT"

# --- per-request costs (CPU, context switches, poolserve's system calls) ---------------------------
if [ -z "${SKIP_COSTS:-}" ]; then
    log "per-request costs"
    OUT="$OUT" POOLSERVE_BIN="$POOLSERVE_BIN" PEERS_DIR="$PEERS_DIR" POOLSERVE_THREADS="$POOLSERVE_THREADS" bash "$HERE/costs.sh" >/dev/null ||
        log "costs.sh failed"
fi

# --- idle connections ----------------------------------------------------------------------------
if [ -z "${SKIP_IDLE:-}" ]; then
    log "idle-connection run (10,000 parked keep-alive connections)"
    python3 "$HERE/idle.py" --binary "$POOLSERVE_BIN" --root "$SITE" --port $((BASE_PORT + 10)) \
        --out "$OUT/idle.json" | tee "$OUT/idle.txt" || log "idle run: a target was missed or the run failed (see $OUT/idle.json)"
fi
log "done: $OUT"
