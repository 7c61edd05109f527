#!/usr/bin/env bash
# Slow-client attack benchmark: poolserve (default flags: 4 workers) and nginx side by side under
# slow bodies, slow readers, slowloris, malformed-and-hold clients, and all of them at once.
#
#   bash benches/load/attack.sh                                   # full run (~10 minutes)
#   ATTACK_SECONDS=10 ATTACK_CONNS=100 bash benches/load/attack.sh  # a quick smoke run
#
# Writes benches/load/results/$NAME.md and $NAME.json (NAME=attack unless set). Everything stays on
# 127.0.0.1; every attack, probe and wait is bounded in time; every process this script starts is
# killed on exit. Each attack runs against a freshly started server; while it runs, a fresh client
# times sequential `GET /` requests and a sampler reads the server's RSS, fds and sockets.
# The attack tools, the fresh client and the servers share the machine's cores.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${OUT:-$HERE/results}"
NAME="${NAME:-attack}"                      # results: $OUT/$NAME.md and $OUT/$NAME.json
ATTACK_SECONDS="${ATTACK_SECONDS:-40}"      # length of each attack
ATTACK_CONNS="${ATTACK_CONNS:-1000}"        # connections per slowhttptest
HOLD_CLIENTS="${HOLD_CLIENTS:-64}"          # malformed-and-hold clients
HOLD_SECONDS="${HOLD_SECONDS:-2}"           # how long each holds its socket before reconnecting
RATE="${RATE:-200}"                         # slowhttptest connections per second (-r)
PROBE_TIMEOUT="${PROBE_TIMEOUT:-2}"         # per fresh-client request; a failure counts as this
PROBE_INTERVAL="${PROBE_INTERVAL:-0.02}"    # pause between fresh-client requests
PROBE_MIN="${PROBE_MIN:-200}"               # the fresh client's target request count
BIG_MB="${BIG_MB:-50}"                      # size of the file the slow readers download
BASE_PORT="${BASE_PORT:-19080}"             # each (attack, server) run gets its own port from here
SERVERS="${SERVERS:-poolserve nginx}"
ATTACKS="${ATTACKS:-slow-body slow-read slowloris malformed-hold all}"
NGINX_WORKERS="${NGINX_WORKERS:-2}"
RECOVERY_LIMIT="${RECOVERY_LIMIT:-15}"      # after an attack: seconds to wait for GET / to answer
KEEP_RAW="${KEEP_RAW:-}"                    # set to keep the raw files (printed at the end)

for v in ATTACK_SECONDS ATTACK_CONNS HOLD_CLIENTS RATE BIG_MB BASE_PORT NGINX_WORKERS RECOVERY_LIMIT PROBE_MIN; do
    case "${!v}" in '' | 0 | *[!0-9]*) echo "$v must be a positive whole number" >&2; exit 2 ;; esac
done
[ "$ATTACK_SECONDS" -ge 8 ] || { echo "ATTACK_SECONDS must be at least 8" >&2; exit 2; }

# The fresh client starts once the attack has ramped up (connections at RATE per second, plus 3 s),
# but no later than a third of the attack, and stops 2 s before the attack ends.
RAMP=$(( ATTACK_CONNS / RATE + 3 ))
[ "$RAMP" -gt $(( ATTACK_SECONDS / 3 )) ] && RAMP=$(( ATTACK_SECONDS / 3 ))
PROBE_WINDOW=$(( ATTACK_SECONDS - RAMP - 2 ))

log() { printf '[attack.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

T_START=$(date +%s)
PIDS=()
TMP=""
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in "${PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$TMP" ]; then
        if [ -n "$KEEP_RAW" ]; then log "raw files kept in $TMP"; else rm -rf "$TMP"; fi
    fi
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stop the given pids (TERM, then KILL after $2 seconds) and forget them.
stop_pids() {
    local wait_s="$1"; shift
    local pid i
    for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for i in $(seq 1 $(( wait_s * 10 ))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    local keep=() p drop
    for p in "${PIDS[@]}"; do
        drop=""
        for pid in "$@"; do [ "$p" = "$pid" ] && drop=1; done
        [ -z "$drop" ] && keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

# Default server flags: no POOLSERVE_* variable from the caller's environment reaches the server.
for v in $(compgen -e | grep '^POOLSERVE_' || true); do unset "$v"; done

log "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown); loadavg at start: $(cat /proc/loadavg)"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
# Other work on the machine: the top CPU users over one second (command names only).
busy() {
    command -v top >/dev/null 2>&1 || { echo "top not installed"; return 0; }
    top -b -n 2 -d 1 -w 200 | awk '/^top -/ { f++ } f == 2' | sed -n '8,12p' |
        awk '$9 + 0 >= 1 { printf "%s%% %s, ", $9, $12 }' | sed 's/, $//'
}
BUSY_START="$(busy)"
log "busy at start: ${BUSY_START:-nothing above 1 % CPU}"
STARTED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# --- tools -------------------------------------------------------------------------------------
need=()
command -v slowhttptest >/dev/null 2>&1 || need+=(slowhttptest)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]} (apt-get)"
    timeout 300 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
# 2,000+ attack sockets plus the servers' own: raise the fd limit for everything started below.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- build -------------------------------------------------------------------------------------
log "building poolserve (release)"
(cd "$ROOT" && timeout 1200 cargo build --release --quiet --bin poolserve)
TMP="$(mktemp -d)"
chmod 755 "$TMP"
cp "$ROOT/target/release/poolserve" "$TMP/poolserve"   # a later build must not change it mid-run
RAW="$TMP/raw"
SITE="$TMP/site"
mkdir -p "$RAW" "$SITE"
printf '%s\n' \
    '<!DOCTYPE html>' \
    '<html><head><meta charset="utf-8"><title>poolserve load test</title></head>' \
    '<body><p>A 176-byte test page of the poolserve server benchmark.</p></body>' \
    '</html>' >"$SITE/index.html"
head -c $(( BIG_MB * 1024 * 1024 )) /dev/urandom >"$SITE/big.bin"
chmod 644 "$SITE"/*

# --- servers -----------------------------------------------------------------------------------
SERVER_PID=""
start_server() {
    local name="$1" port="$2" tag="$3"
    case "$name" in
        poolserve)
            "$TMP/poolserve" --bind "127.0.0.1:$port" --root "$SITE" --no-access-log \
                >"$RAW/$tag.stdout" 2>"$RAW/$tag.stderr" &
            SERVER_PID=$!
            ;;
        nginx)
            local prefix="$TMP/nginx-$port"
            mkdir -p "$prefix"
            sed -e "s|@PREFIX@|$prefix|g" -e "s|@ROOT@|$SITE|g" -e "s|@PORT@|$port|g" \
                -e "s|@WORKERS@|$NGINX_WORKERS|g" "$HERE/nginx.conf" >"$prefix/nginx.conf"
            "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;' \
                >"$RAW/$tag.stdout" 2>"$RAW/$tag.stderr" &
            SERVER_PID=$!
            ;;
        *) echo "unknown server $name" >&2; exit 2 ;;
    esac
    PIDS+=("$SERVER_PID")
    local ok="" i
    for i in $(seq 1 50); do
        if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/" 2>/dev/null; then ok=1; break; fi
        sleep 0.1
    done
    [ -n "$ok" ] || { echo "$name did not come up; stderr:" >&2; cat "$RAW/$tag.stderr" >&2; exit 1; }
    curl -fsS --max-time 10 -o "$TMP/check" "http://127.0.0.1:$port/big.bin"
    cmp -s "$TMP/check" "$SITE/big.bin" || { echo "$name: wrong body for /big.bin" >&2; exit 1; }
    rm -f "$TMP/check"
}

# --- attacks -----------------------------------------------------------------------------------
# slowhttptest MODE PORT TAG: one bounded slowhttptest in the background (its pid in PIDS).
ATTACK_PIDS=()
slowhttp() {
    local mode="$1" port="$2" tag="$3" args
    case "$mode" in
        B) args=(-B -s 8192 -i 10 -x 24 -u "http://127.0.0.1:$port/") ;;
        X) args=(-X -w 512 -y 1024 -n 5 -z 32 -k 1 -u "http://127.0.0.1:$port/big.bin") ;;
        H) args=(-H -i 10 -x 24 -u "http://127.0.0.1:$port/") ;;
    esac
    (cd "$RAW" && exec timeout -k 5 $(( ATTACK_SECONDS + 30 )) slowhttptest "${args[@]}" \
        -c "$ATTACK_CONNS" -r "$RATE" -l "$ATTACK_SECONDS" -p 5 -g -o "$RAW/$tag.sht-$mode" \
        >"$RAW/$tag.sht-$mode.log" 2>&1) &
    ATTACK_PIDS+=("$!")
    PIDS+=("$!")
}
hold() {
    local port="$1" tag="$2"
    timeout -k 5 $(( ATTACK_SECONDS + 20 )) python3 "$HERE/attack_probe.py" hold --port "$port" \
        --clients "$HOLD_CLIENTS" --hold "$HOLD_SECONDS" --duration "$ATTACK_SECONDS" \
        --out "$RAW/$tag.hold.json" >"$RAW/$tag.hold.log" 2>&1 &
    ATTACK_PIDS+=("$!")
    PIDS+=("$!")
}

run_one() {
    local attack="$1" server="$2" port="$3"
    local tag="$server.$attack"
    log "$attack against $server (port $port)"
    start_server "$server" "$port" "$tag"
    local spid="$SERVER_PID"
    timeout -k 5 $(( ATTACK_SECONDS + 10 )) python3 "$HERE/attack_probe.py" sample --pid "$spid" \
        --port "$port" --duration $(( ATTACK_SECONDS + 2 )) --out "$RAW/$tag.sample.json" &
    local sampler=$!
    PIDS+=("$sampler")
    ATTACK_PIDS=()
    local t0
    t0=$(date +%s.%N)
    case "$attack" in
        slow-body) slowhttp B "$port" "$tag" ;;
        slow-read) slowhttp X "$port" "$tag" ;;
        slowloris) slowhttp H "$port" "$tag" ;;
        malformed-hold) hold "$port" "$tag" ;;
        all) slowhttp B "$port" "$tag"; slowhttp X "$port" "$tag"; hold "$port" "$tag" ;;
    esac
    sleep "$RAMP"
    timeout -k 5 $(( PROBE_WINDOW + 10 )) python3 "$HERE/attack_probe.py" probe --port "$port" \
        --deadline "$PROBE_WINDOW" --timeout "$PROBE_TIMEOUT" --interval "$PROBE_INTERVAL" \
        --min-requests "$PROBE_MIN" --out "$RAW/$tag.probe.json" >&2 || log "probe exited $?"
    local p
    for p in "${ATTACK_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    stop_pids 1 "${ATTACK_PIDS[@]}"
    wait "$sampler" 2>/dev/null || true
    stop_pids 1 "$sampler"
    local t_end
    t_end=$(date +%s.%N)
    # After the attack: how long until a plain GET / answers again (bounded).
    local recovered="null" i
    for i in $(seq 1 $(( RECOVERY_LIMIT * 2 ))); do
        if curl -fsS -o /dev/null --max-time 0.5 "http://127.0.0.1:$port/" 2>/dev/null; then
            recovered=$(python3 -c "import sys,time; print(round(time.time()-float(sys.argv[1]),2))" "$t_end")
            break
        fi
        sleep 0.5
    done
    local alive=true
    kill -0 "$spid" 2>/dev/null || alive=false
    printf '{"attack":"%s","server":"%s","port":%s,"elapsed_s":%s,"recovered_after_s":%s,"recovery_limit_s":%s,"alive_after":%s}\n' \
        "$attack" "$server" "$port" \
        "$(python3 -c "import sys; print(round(float(sys.argv[2])-float(sys.argv[1]),2))" "$t0" "$t_end")" \
        "$recovered" "$RECOVERY_LIMIT" "$alive" >"$RAW/$tag.run.json"
    stop_pids 5 "$spid"
}

# --- machine and run description ---------------------------------------------------------------
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || COMMIT="$COMMIT (+ uncommitted changes in src/ or Cargo.toml)"
# The last commit that changed the server's source (a merge of main shows main's commit here).
SRC_COMMIT="$(git -C "$ROOT" log -1 --format=%h -- src Cargo.toml Cargo.lock 2>/dev/null || echo unknown)"

i=0
for attack in $ATTACKS; do
    for server in $SERVERS; do
        run_one "$attack" "$server" $(( BASE_PORT + i ))
        i=$(( i + 1 ))
    done
done

ENDED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
BUSY_END="$(busy)"
RUNTIME=$(( $(date +%s) - T_START ))
python3 - "$RAW/meta.json" <<EOF
import json, sys
json.dump({
    "commit": "$COMMIT", "src_commit": "$SRC_COMMIT",
    "started": "$STARTED", "ended": "$ENDED", "runtime_s": $RUNTIME,
    "loadavg_start": "$LOAD_START", "loadavg_end": "$LOAD_END",
    "busy_start": "$BUSY_START", "busy_end": "$BUSY_END",
    "nproc": "$(nproc)",
    "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')",
    "kernel": "Linux $(uname -r)",
    "rustc": "$(rustc --version 2>/dev/null || echo unknown)",
    "poolserve_args": "--no-access-log",
    "poolserve_sha256": "sha256 $(sha256sum "$TMP/poolserve" | cut -c1-16)…",
    "nginx_version": "$("$NGINX" -v 2>&1 | sed 's|.*nginx/||')",
    "nginx_workers": "$NGINX_WORKERS",
    "slowhttptest_version": "slowhttptest $(slowhttptest -h 2>&1 | grep -o 'version [0-9.]*' | head -1 | cut -d' ' -f2), python3 $(python3 -c 'import platform; print(platform.python_version())')",
    "attack_seconds": $ATTACK_SECONDS, "attack_conns": $ATTACK_CONNS, "rate": $RATE,
    "hold_clients": $HOLD_CLIENTS, "hold_seconds": $HOLD_SECONDS,
    "ramp_seconds": $RAMP, "probe_end": $(( RAMP + PROBE_WINDOW )), "probe_min": $PROBE_MIN,
    "probe_timeout": $PROBE_TIMEOUT, "probe_interval": $PROBE_INTERVAL, "big_mb": $BIG_MB,
    "servers": "$SERVERS".split(), "attacks": "$ATTACKS".split(),
}, open(sys.argv[1], "w"), indent=1)
EOF
mkdir -p "$OUT"
python3 "$HERE/attack_probe.py" report --raw "$RAW" --md "$OUT/$NAME.md" --json "$OUT/$NAME.json" >/dev/null
cat "$OUT/$NAME.md"
log "commit $COMMIT; loadavg at end: $(cat /proc/loadavg); ${RUNTIME} s; wrote $OUT/$NAME.md and $OUT/$NAME.json"
