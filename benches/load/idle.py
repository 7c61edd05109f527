#!/usr/bin/env python3
"""Idle-connection benchmark for poolserve (python3 standard library only).

Starts poolserve (after `ulimit -n 20000`), opens N keep-alive connections that each send one
request, read the response and then stay idle, and measures a fresh client's latency for M
sequential requests plus the server's RSS (VmRSS in /proc/PID/status) before and with the idle
connections. Everything stays on 127.0.0.1; every socket operation has a timeout and the whole run
has a deadline.

    python3 benches/load/idle.py --binary target/release/poolserve [--root DIR] [--out FILE]
"""
import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INDEX = (
    b'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>poolserve load test</title></head>\n'
    b"<body><p>A 176-byte test page of the poolserve server benchmark.</p></body>\n</html>\n"
)


def request(host, port):
    return f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()


class Conn:
    """A blocking keep-alive HTTP/1.1 client connection with a small response reader."""

    def __init__(self, addr, timeout):
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def get(self, req):
        """Sends `req`, returns (status, body, server_wants_close)."""
        self.sock.sendall(req)
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before a response head")
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value == b"close":
                close = True
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside a response body")
            rest += chunk
        body, self.buf = rest[:length], rest[length:]
        return status, body, close

    def close(self):
        self.sock.close()


def rss_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def latency_stats(samples_ns):
    s = sorted(samples_ns)
    ms = lambda v: None if v is None else round(v / 1e6, 3)
    return {
        "count": len(s),
        "p50_ms": ms(percentile(s, 50)),
        "p90_ms": ms(percentile(s, 90)),
        "p99_ms": ms(percentile(s, 99)),
        "max_ms": ms(s[-1] if s else None),
        "mean_ms": ms(sum(s) / len(s) if s else None),
    }


def fresh_client(addr, req, n, timeout, deadline):
    """A new client: one keep-alive connection (reopened only if the server closes it), n requests
    one after another. Returns (latencies_ns, answered, errors, reconnects)."""
    lat, answered, errors, reconnects = [], 0, [], 0
    conn = None
    for _ in range(n):
        if time.monotonic() > deadline:
            errors.append("deadline")
            break
        try:
            if conn is None:
                conn = Conn(addr, timeout)
            t0 = time.perf_counter_ns()
            status, body, close = conn.get(req)
            lat.append(time.perf_counter_ns() - t0)
            if status == 200 and body == INDEX:
                answered += 1
            else:
                errors.append(f"status {status}, {len(body)} bytes")
            if close:
                conn.close()
                conn, reconnects = None, reconnects + 1
        except (OSError, ValueError, IndexError) as e:
            errors.append(repr(e))
            if conn:
                conn.close()
            conn = None
    if conn:
        conn.close()
    return lat, answered, errors, reconnects


def new_connection_each(addr, req, n, timeout, deadline):
    """n requests, each on a new connection (connect + request + response timed)."""
    lat, answered, errors = [], 0, []
    for _ in range(n):
        if time.monotonic() > deadline:
            errors.append("deadline")
            break
        try:
            t0 = time.perf_counter_ns()
            conn = Conn(addr, timeout)
            status, body, _ = conn.get(req)
            lat.append(time.perf_counter_ns() - t0)
            conn.close()
            answered += status == 200 and body == INDEX
        except (OSError, ValueError, IndexError) as e:
            errors.append(repr(e))
    return lat, answered, errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True, help="the poolserve binary")
    ap.add_argument("--root", help="directory holding the 176-byte index.html (made if absent)")
    ap.add_argument("--port", type=int, default=18090)
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=1_000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=5.0, help="per socket operation, seconds")
    ap.add_argument("--deadline", type=float, default=240.0, help="whole run, seconds")
    ap.add_argument("--out", help="write the results here as JSON")
    args = ap.parse_args()
    deadline = time.monotonic() + args.deadline

    # This process holds one fd per idle connection: raise the soft limit to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + 1000
    new_soft = hard if hard == resource.RLIM_INFINITY else min(max(soft, want), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
    if new_soft < want:
        sys.exit(f"fd limit {new_soft} is below the {want} this run needs")

    tmp = None
    root = args.root
    if not root:
        tmp = tempfile.TemporaryDirectory()
        root = tmp.name
        Path(root, "index.html").write_bytes(INDEX)
    assert Path(root, "index.html").read_bytes() == INDEX, "index.html differs from the 176-byte page"

    addr = ("127.0.0.1", args.port)
    req = request(*addr)
    cmd = (
        f"ulimit -n 20000 && exec '{args.binary}' --bind 127.0.0.1:{args.port} --root '{root}' "
        f"--threads {args.threads} --keep-alive-timeout 120 --max-connections 20000 --no-access-log"
    )
    stderr = tempfile.TemporaryFile()
    server = subprocess.Popen(["bash", "-c", cmd], stdout=subprocess.DEVNULL, stderr=stderr)
    idle = []
    result = {"command": cmd.replace(f"'{root}'", "SITE").replace(f"'{args.binary}'", "poolserve"),
              "connections_wanted": args.connections, "requests": args.requests}
    try:
        for _ in range(100):
            try:
                socket.create_connection(addr, timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        with open(f"/proc/{server.pid}/limits") as f:
            result["server_fd_limit"] = next(l for l in f if l.startswith("Max open files")).split()[3]

        # Baseline: the same fresh client with no idle connections.
        lat, ok, errs, rc = fresh_client(addr, req, args.requests, args.timeout, deadline)
        result["baseline_keep_alive"] = {**latency_stats(lat), "answered": ok, "errors": errs[:5],
                                         "error_count": len(errs), "reconnects": rc}
        result["rss_before"] = rss_kib(server.pid)

        # Open the idle connections: one request each, then silence.
        t0 = time.monotonic()
        open_errors = []
        for _ in range(args.connections):
            if time.monotonic() > deadline:
                open_errors.append("deadline")
                break
            try:
                c = Conn(addr, args.timeout)
                status, body, close = c.get(req)
                if status != 200 or close:
                    open_errors.append(f"status {status} close={close}")
                    c.close()
                    continue
                idle.append(c)
            except (OSError, ValueError, IndexError) as e:
                open_errors.append(repr(e))
        result["idle_open_seconds"] = round(time.monotonic() - t0, 2)
        result["idle_connections"] = len(idle)
        result["idle_open_errors"] = {"count": len(open_errors), "first": open_errors[:5]}
        time.sleep(1.0)  # let the last ones park
        result["rss_with_idle"] = rss_kib(server.pid)

        # The fresh client, with the idle connections parked.
        lat, ok, errs, rc = fresh_client(addr, req, args.requests, args.timeout, deadline)
        result["with_idle_keep_alive"] = {**latency_stats(lat), "answered": ok, "errors": errs[:5],
                                          "error_count": len(errs), "reconnects": rc}
        lat, ok, errs = new_connection_each(addr, req, args.requests, args.timeout, deadline)
        result["with_idle_new_connection_each"] = {**latency_stats(lat), "answered": ok,
                                                   "errors": errs[:5], "error_count": len(errs)}
        result["rss_after_fresh_clients"] = rss_kib(server.pid)

        # Are the idle connections still served? One more request on each of them.
        t0 = time.monotonic()
        second, second_errors = 0, []
        for c in idle:
            if time.monotonic() > deadline:
                second_errors.append("deadline")
                break
            try:
                status, body, _ = c.get(req)
                second += status == 200 and body == INDEX
            except (OSError, ValueError, IndexError) as e:
                second_errors.append(repr(e))
        result["idle_second_request"] = {"answered": second, "seconds": round(time.monotonic() - t0, 2),
                                         "errors": len(second_errors), "first": second_errors[:5]}
        result["rss_end"] = rss_kib(server.pid)
        result["server_alive"] = server.poll() is None
    finally:
        # Graceful shutdown (SIGTERM) while the idle connections are still parked: the server
        # should close them at once and exit.
        t0 = time.monotonic()
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            result["shutdown_timed_out"] = True
            server.kill()
            server.wait()
        result["shutdown_seconds_with_idle"] = round(time.monotonic() - t0, 3)
        closed_by_server = 0
        for c in idle:
            try:
                c.sock.settimeout(0.5)
                closed_by_server += c.sock.recv(1) == b""
            except OSError:
                pass
            c.close()
        result["idle_closed_by_server_at_shutdown"] = closed_by_server
        stderr.seek(0)
        err = stderr.read().decode(errors="replace").splitlines()
        result["server_exit"] = server.returncode
        result["server_stderr_tail"] = err[-15:]
        if tmp:
            tmp.cleanup()

    ka = result.get("with_idle_keep_alive", {})
    mib = lambda k: round(result[k]["VmRSS"] / 1024, 1) if k in result else None
    targets = {
        "every_request_answered": ka.get("answered") == args.requests
        and result.get("with_idle_new_connection_each", {}).get("answered") == args.requests,
        "p99_below_10ms": ka.get("p99_ms") is not None and ka["p99_ms"] < 10,
        "rss_below_64mib": mib("rss_with_idle") is not None and mib("rss_with_idle") < 64,
        "all_idle_connections_opened": result.get("idle_connections") == args.connections,
    }
    result["targets"] = targets
    result["loadavg"] = open("/proc/loadavg").read().split()[:3]
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    print(
        f"\nidle: {result.get('idle_connections')} parked keep-alive connections; fresh client "
        f"{ka.get('answered')}/{args.requests} answered, p50 {ka.get('p50_ms')} ms, "
        f"p99 {ka.get('p99_ms')} ms, max {ka.get('max_ms')} ms; RSS {mib('rss_before')} MiB before, "
        f"{mib('rss_with_idle')} MiB with them; targets {targets}"
    )
    sys.exit(0 if all(targets.values()) else 1)


if __name__ == "__main__":
    main()
