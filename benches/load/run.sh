#!/usr/bin/env bash
# Server load benchmark: poolserve against four peers (see benches/load/README.md).
#
#   bash benches/load/run.sh            # full run: builds, throughput runs, idle-connection run
#   DURATION=2s ROUNDS=1 SKIP_IDLE=1 SKIP_COSTS=1 SKIP_LARGE=1 bash benches/load/run.sh   # a quick look
#   SKIP_SMALL=1 SKIP_IDLE=1 SKIP_COSTS=1 bash benches/load/run.sh   # only the large-file rows
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
BASE_PORT="${BASE_PORT:-18080}"   # poolserve, hyper, tiny, book, nginx get BASE_PORT + 0..4
SERVERS="${SERVERS:-poolserve hyper tiny book nginx}"
POOLSERVE_THREADS="${POOLSERVE_THREADS:-4}"
LARGE_MIB="${LARGE_MIB:-50}"              # size of the large file, MiB (served as /large.bin)
LARGE_CONNS="${LARGE_CONNS:-8}"           # connections for the large-file row
LARGE_DURATION="${LARGE_DURATION:-10s}"   # length of each wrk run of the large-file row
NGINX_WORKERS="${NGINX_WORKERS:-$(nproc)}"
# The large-file row runs on these only: the crates.io peers serve just `/` and `/1m.bin`, and read
# a whole file into memory per request, so they are no reference for large files.
LARGE_SERVERS="${LARGE_SERVERS:-poolserve nginx}"
# SKIP_SMALL=1 leaves out the 176-byte rows, SKIP_LARGE=1 the 1 MiB and LARGE_MIB rows.

case "$ROUNDS" in '' | 0 | *[!0-9]*) echo "ROUNDS must be a positive whole number" >&2; exit 2 ;; esac
for d in "$DURATION" "$LARGE_DURATION"; do
    secs="${d%s}"
    case "$secs" in '' | *[!0-9]*) echo "DURATION and LARGE_DURATION must be whole seconds, like 5s" >&2; exit 2 ;; esac
done
for n in "$LARGE_MIB" "$LARGE_CONNS" "$NGINX_WORKERS"; do
    case "$n" in '' | 0 | *[!0-9]*) echo "LARGE_MIB, LARGE_CONNS and NGINX_WORKERS must be positive whole numbers" >&2; exit 2 ;; esac
done

in_large() { case " $LARGE_SERVERS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
log() { printf '[run.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

PIDS=()
SITE=""
BIN_DIR=""
NGINX_PREFIX=""
# Every process this script started, plus their children (nginx's worker processes), by PID.
all_pids() {
    local pid
    for pid in "${PIDS[@]}"; do
        echo "$pid"
        pgrep -P "$pid" 2>/dev/null || true
    done
}
cleanup() {
    local pid pids
    pids="$(all_pids)"
    for pid in $pids; do
        kill "$pid" 2>/dev/null || true
    done
    sleep 0.5
    for pid in $pids; do
        kill -9 "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    [ -n "$SITE" ] && rm -rf "$SITE"
    [ -n "$BIN_DIR" ] && rm -rf "$BIN_DIR"
    [ -n "$NGINX_PREFIX" ] && rm -rf "$NGINX_PREFIX"
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
case " $SERVERS " in
    *" nginx "*)
        if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
            log "installing nginx-light (apt-get)"
            timeout 300 apt-get update -qq
            DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq nginx-light >/dev/null
        fi
        NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"
        ;;
esac
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

# --- a calm machine -------------------------------------------------------------------------------
# CALM_WAIT=600 waits up to 600 s (checking every 10 s) for the 1-minute load average to fall to
# CALM_LOAD (default 1.5) before the servers start; the run goes ahead either way, and
# machine.txt records how long it waited and the load it started with.
CALM_WAIT="${CALM_WAIT:-0}"
CALM_LOAD="${CALM_LOAD:-1.5}"
case "$CALM_WAIT" in '' | *[!0-9]*) echo "CALM_WAIT must be whole seconds" >&2; exit 2 ;; esac
waited=0
loadavg_before_wait="$(cut -d' ' -f1-3 /proc/loadavg)"
while [ "$waited" -lt "$CALM_WAIT" ] &&
    ! awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$CALM_LOAD" 'BEGIN { exit !(l <= m) }'; do
    [ "$waited" -eq 0 ] && log "load average $(cut -d' ' -f1 /proc/loadavg) > $CALM_LOAD: waiting up to ${CALM_WAIT}s"
    sleep 10
    waited=$((waited + 10))
done

# --- the site ------------------------------------------------------------------------------------
SITE="$(mktemp -d)"
printf '%s\n' \
    '<!DOCTYPE html>' \
    '<html><head><meta charset="utf-8"><title>poolserve load test</title></head>' \
    '<body><p>A 176-byte test page of the poolserve server benchmark.</p></body>' \
    '</html>' >"$SITE/index.html"
head -c 1048576 /dev/urandom >"$SITE/1m.bin"
head -c $((LARGE_MIB * 1048576)) /dev/urandom >"$SITE/large.bin"
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
        nginx)
            # Foreground master (so that $! is the master), temporary prefix for pid, logs, temp.
            NGINX_PREFIX="$(mktemp -d)"
            mkdir -p "$NGINX_PREFIX/logs" "$NGINX_PREFIX/tmp"
            sed -e "s|@PREFIX@|$NGINX_PREFIX|g" -e "s|@ROOT@|$SITE|g" -e "s|@PORT@|$port|g" \
                -e "s|@WORKERS@|$NGINX_WORKERS|g" "$HERE/nginx-load.conf" >"$NGINX_PREFIX/nginx.conf"
            "$NGINX_BIN" -p "$NGINX_PREFIX" -c "$NGINX_PREFIX/nginx.conf" -e "$NGINX_PREFIX/logs/error.log" \
                -g 'daemon off;' >"$OUT/raw/$name.stdout" 2>"$OUT/raw/$name.stderr" &
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
    if [ -z "${SKIP_LARGE:-}" ] && in_large "$s"; then
        curl -fsS --max-time 30 -o "$SITE/.check" "http://127.0.0.1:${PORT[$s]}/large.bin"
        cmp -s "$SITE/.check" "$SITE/large.bin" || { echo "$s: wrong body for /large.bin" >&2; exit 1; }
    fi
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
    echo "large_mib=$LARGE_MIB"
    echo "large_conns=$LARGE_CONNS"
    echo "large_duration=$LARGE_DURATION"
    echo "large_servers=$LARGE_SERVERS"
    echo "skip_small=${SKIP_SMALL:-}"
    echo "skip_large=${SKIP_LARGE:-}"
    case " $SERVERS " in
        *" nginx "*)
            echo "nginx=$("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //') ($(dpkg-query -W -f '${Package} ${Version}' nginx-light 2>/dev/null || echo 'package unknown'))"
            echo "nginx_workers=$NGINX_WORKERS"
            ;;
    esac
    echo "calm_wait=waited ${waited}s of up to ${CALM_WAIT}s for a 1-minute load average <= $CALM_LOAD (it was $loadavg_before_wait)"
    echo "loadavg_start=$(cat /proc/loadavg)"
    echo "uptime_start=$(uptime)"
} >"$OUT/raw/machine.txt"
# Other work on the machine when the run starts (and, below, when it ends).
top -b -n 1 -w 200 2>/dev/null | head -15 >"$OUT/raw/top_start.txt" || true

# --- runs ----------------------------------------------------------------------------------------
# name|connections|path|extra wrk header|duration|wrk timeout
LOADS=()
if [ -z "${SKIP_SMALL:-}" ]; then
    LOADS+=(
        "ka1|1|/||$DURATION|2s"
        "ka16|16|/||$DURATION|2s"
        "ka64|64|/||$DURATION|2s"
        "ka256|256|/||$DURATION|2s"
        "close16|16|/|Connection: close|$DURATION|2s"
    )
fi
if [ -z "${SKIP_LARGE:-}" ]; then
    LOADS+=(
        "1mib16|16|/1m.bin||$DURATION|2s"
        "large|$LARGE_CONNS|/large.bin||$LARGE_DURATION|10s"
    )
fi
[ "${#LOADS[@]}" -gt 0 ] || { echo "SKIP_SMALL and SKIP_LARGE together leave nothing to run" >&2; exit 2; }

run_wrk() {
    local out="$1" conns="$2" url="$3" header="$4" dur="$5" tmo="${6:-2s}"
    local t=$WRK_THREADS
    [ "$conns" -lt "$t" ] && t=$conns
    local args=(-t "$t" -c "$conns" -d "$dur" --timeout "$tmo" --latency)
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
        IFS='|' read -r lname conns path header dur tmo <<<"$load"
        for s in $SERVERS; do
            [ "$lname" = large ] && ! in_large "$s" && continue
            f="$OUT/raw/$s.$lname.r$round.txt"
            {
                echo "# server=$s load=$lname round=$round connections=$conns path=$path header=$header duration=$dur"
                echo "# bytes=$(stat -c %s "$SITE$path" 2>/dev/null || stat -c %s "$SITE/index.html")"
                echo "# loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
            } >"$f"
            log "round $round/$ROUNDS: $s $lname"
            run_wrk "$f.wrk" "$conns" "http://127.0.0.1:${PORT[$s]}$path" "$header" "$dur" "$tmo"
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
{
    echo "loadavg_end=$(cat /proc/loadavg)"
    echo "uptime_end=$(uptime)"
} >>"$OUT/raw/machine.txt"
top -b -n 1 -w 200 2>/dev/null | head -15 >"$OUT/raw/top_end.txt" || true

# Stop the throughput servers before the idle-connection run.
cleanup_servers() {
    local pid pids
    pids="$(all_pids)"
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
cleanup_servers
if [ -n "$NGINX_PREFIX" ] && [ -s "$NGINX_PREFIX/logs/error.log" ]; then
    # nginx's own log, with the temporary directories' names replaced
    sed -e "s|$NGINX_PREFIX|PREFIX|g" -e "s|$SITE|SITE|g" "$NGINX_PREFIX/logs/error.log" >"$OUT/raw/nginx.error.log"
fi

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
