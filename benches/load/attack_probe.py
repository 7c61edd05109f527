#!/usr/bin/env python3
"""Helpers of the slow-client attack benchmark (benches/load/attack.sh).

    attack_probe.py probe  --port P --deadline S --out F   a fresh client's GET / latency
    attack_probe.py hold   --port P --clients N --duration S --out F
                                                          malformed request, then hold the socket
    attack_probe.py sample --pid PID --port P --duration S --out F
                                                          the server's RSS, fds and sockets
    attack_probe.py report --raw DIR --md F --json F       the table and the JSON of a run

Everything talks to 127.0.0.1 only, and every loop is bounded in count and in time.
"""

import argparse
import csv
import glob
import json
import os
import select
import socket
import statistics
import sys
import threading
import time

HOST = "127.0.0.1"


def now():
    return time.monotonic()


# --- probe: a fresh client ----------------------------------------------------------------------


def one_get(port, timeout):
    """One `GET /` on a new connection; returns (ok, seconds, what)."""
    start = now()
    deadline = start + timeout
    try:
        s = socket.create_connection((HOST, port), timeout=timeout)
    except socket.timeout:
        return False, timeout, "connect timeout"
    except OSError as e:
        return False, now() - start, "connect " + (e.strerror or type(e).__name__)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            left = deadline - now()
            if left <= 0:
                return False, timeout, "timeout"
            s.settimeout(left)
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > 1 << 20:
                break
        status = data[9:12].decode("latin-1", "replace") if data.startswith(b"HTTP/1.") else ""
        took = now() - start
        if status != "200":
            return False, took, ("status " + status) if status else "no response"
        # the body must be complete (Content-Length) for the request to count as answered
        head, _, body = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length" and len(body) < int(v.strip()):
                return False, took, "short body"
        return True, took, "200"
    except socket.timeout:
        return False, timeout, "timeout"
    except OSError as e:
        return False, now() - start, "error " + (e.strerror or type(e).__name__)
    finally:
        s.close()


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def per_second(samples):
    out = {}
    for t, ok, lat, _ in samples:
        sec = int(t)
        n, f, mx = out.get(sec, (0, 0, 0.0))
        out[sec] = (n + 1, f + (0 if ok else 1), max(mx, lat))
    return [[sec, n, f, round(mx * 1000, 3)] for sec, (n, f, mx) in sorted(out.items())]


def cmd_probe(a):
    t0 = now()
    end = t0 + a.deadline
    samples = []  # (t since probe start, ok, latency s, what)
    # Sequential requests until the window ends (at most max_requests): a healthy server answers
    # hundreds; a server that is down gets one request per timeout until the window ends.
    while len(samples) < a.max_requests and now() < end:
        ok, took, what = one_get(a.port, a.timeout)
        # a failure counts with latency = the timeout, whatever ended it
        samples.append((round(now() - t0, 3), ok, took if ok else a.timeout, what))
        if a.interval > 0:
            time.sleep(a.interval)
    lat = sorted(s[2] for s in samples)
    fails = {}
    for s in samples:
        if not s[1]:
            fails[s[3]] = fails.get(s[3], 0) + 1
    out = {
        "requests": len(samples),
        "ok": sum(1 for s in samples if s[1]),
        "failed": sum(1 for s in samples if not s[1]),
        "failures": fails,
        "timeout_s": a.timeout,
        "p50_ms": None if not lat else round(pct(lat, 50) * 1000, 3),
        "p99_ms": None if not lat else round(pct(lat, 99) * 1000, 3),
        "max_ms": None if not lat else round(lat[-1] * 1000, 3),
        "mean_ms": None if not lat else round(statistics.mean(lat) * 1000, 3),
        "reached_min_requests": len(samples) >= a.min_requests,
        "window_s": round(now() - t0, 2),
        # per second of the probe: [second, requests, failed, max latency ms]
        "timeline": per_second(samples),
    }
    with open(a.out, "w") as f:
        json.dump(out, f)
    print(
        "probe: %d requests, %d failed, p50 %s ms, p99 %s ms, max %s ms"
        % (out["requests"], out["failed"], out["p50_ms"], out["p99_ms"], out["max_ms"])
    )


# --- hold: malformed request, then keep the socket open without reading ----------------------


MALFORMED = b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n"
POLL_CLOSED = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0x2000)


def hold_client(port, hold, end, rec, lock):
    while now() < end:
        r = {"t": None, "connect": None, "closed_after_s": None, "status": None, "reset": False}
        start = now()
        try:
            s = socket.create_connection((HOST, port), timeout=2.0)
        except OSError as e:
            r["connect"] = "fail " + (getattr(e, "strerror", None) or type(e).__name__)
            with lock:
                rec.append(r)
            time.sleep(0.2)
            continue
        try:
            r["connect"] = "ok"
            r["t"] = start
            s.sendall(MALFORMED)
            sent = now()
            p = select.poll()
            p.register(s.fileno(), POLL_CLOSED)
            stop = min(sent + hold, end + 1.0)
            while True:
                left = stop - now()
                if left <= 0:
                    break
                ev = p.poll(left * 1000)
                if ev:
                    # the server shut down its side (FIN or reset); keep holding ours all the same
                    r["closed_after_s"] = round(now() - sent, 3)
                    left = stop - now()
                    if left > 0:
                        time.sleep(left)
                    break
            # the hold is over: now look at what the server said (and whether it reset)
            s.settimeout(0.2)
            try:
                data = s.recv(64)
                if data.startswith(b"HTTP/1."):
                    r["status"] = data[9:12].decode("latin-1", "replace")
                elif not data:
                    r["status"] = "eof"
            except ConnectionResetError:
                r["reset"] = True
            except socket.timeout:
                r["status"] = "none"
            except OSError as e:
                r["status"] = "error " + (e.strerror or type(e).__name__)
        except OSError as e:
            r["status"] = "send " + (e.strerror or type(e).__name__)
        finally:
            s.close()
        with lock:
            rec.append(r)


def cmd_hold(a):
    t0 = now()
    end = t0 + a.duration
    rec, lock = [], threading.Lock()
    ths = [
        threading.Thread(target=hold_client, args=(a.port, a.hold, end, rec, lock), daemon=True)
        for _ in range(a.clients)
    ]
    for t in ths:
        t.start()
    for t in ths:
        t.join(timeout=max(0.1, end + a.hold + 5 - now()))
    with lock:
        rec = list(rec)
    ok = [r for r in rec if r["connect"] == "ok"]
    closed = sorted(r["closed_after_s"] for r in ok if r["closed_after_s"] is not None)
    statuses = {}
    for r in ok:
        k = r["status"] or ("reset" if r["reset"] else "none")
        if r["reset"]:
            k = "reset"
        statuses[k] = statuses.get(k, 0) + 1
    out = {
        "clients": a.clients,
        "hold_s": a.hold,
        "connections": len(ok),
        "connect_failures": len(rec) - len(ok),
        "closed_by_server_within_hold": len(closed),
        "close_after_p50_s": pct(closed, 50),
        "close_after_max_s": closed[-1] if closed else None,
        "statuses": statuses,
        "resets": sum(1 for r in ok if r["reset"]),
    }
    with open(a.out, "w") as f:
        json.dump(out, f)
    print("hold: " + json.dumps(out))


# --- sample: the server's memory, file descriptors and sockets --------------------------------


def proc_tree(pid):
    """pid and its children (nginx: master and workers)."""
    pids = [pid]
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return pids


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_s(pid):
    """User + system CPU seconds of one process so far."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def nfds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def sockets_on(port):
    """Server-side TCP sockets on `port` by state (from /proc/net/tcp)."""
    states = {"01": "established", "08": "close_wait", "0A": "listen"}
    count = {"established": 0, "close_wait": 0, "other": 0}
    hexport = ":%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1].endswith(hexport):
                    st = states.get(parts[3], "other")
                    if st != "listen":
                        count[st] += 1
    except OSError:
        pass
    return count


def cmd_sample(a):
    t0 = now()
    end = t0 + a.duration
    rows = []
    while now() < end and len(rows) < 100000:
        pids = proc_tree(a.pid)
        rss = [rss_kib(p) for p in pids]
        fds = [nfds(p) for p in pids]
        if rss[0] is None:
            rows.append({"t": round(now() - t0, 2), "dead": True})
            break
        socks = sockets_on(a.port)
        rows.append(
            {
                "t": round(now() - t0, 2),
                "rss_kib": sum(x for x in rss if x),
                "fds": sum(x for x in fds if x),
                "processes": len(pids),
                "cpu_s": round(sum(cpu_s(p) for p in pids), 2),
                "established": socks["established"],
                "close_wait": socks["close_wait"],
            }
        )
        time.sleep(a.interval)
    with open(a.out, "w") as f:
        json.dump(rows, f)


# --- report ---------------------------------------------------------------------------------


ATTACK_TITLES = {
    "slow-body": "slow body (`slowhttptest -B`)",
    "slow-read": "slow read (`slowhttptest -X`, 50 MB file)",
    "slowloris": "slowloris (`slowhttptest -H`)",
    "malformed-hold": "malformed and hold",
    "all": "all at once",
}


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def slowhttp_exit(log_path):
    """slowhttptest's own last words: the second it ended on and why."""
    import re

    try:
        with open(log_path, errors="replace") as f:
            text = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
    except OSError:
        return None, None
    m = re.search(r"Test ended on (\d+)", text)
    e = re.search(r"Exit status:\s*(.+)", text)
    return (int(m.group(1)) if m else None), (e.group(1).strip() if e else None)


def slowhttp_summary(csv_path, attack_start_offset=0.0):
    """Connection states over time from slowhttptest's CSV."""
    rows = []
    try:
        with open(csv_path) as f:
            for r in csv.DictReader(f):
                rows.append(
                    {
                        "s": int(r["Seconds"]),
                        "closed": int(r["Closed"]),
                        "pending": int(r["Pending"]),
                        "connected": int(r["Connected"]),
                        "available": int(r["Service Available"]) > 0,
                    }
                )
    except (OSError, ValueError, KeyError):
        return None
    if not rows:
        return None
    peak = max(rows, key=lambda r: r["connected"])
    last = rows[-1]
    total = max(r["closed"] + r["pending"] + r["connected"] for r in rows)
    first_close = next((r["s"] for r in rows if r["closed"] > 0), None)
    half_closed = next((r["s"] for r in rows if total and r["closed"] * 2 >= total), None)
    ended_s, exit_status = slowhttp_exit(csv_path[:-4] + ".log")
    return {
        "ended_at_s": ended_s,
        "exit_status": exit_status,
        "seconds": last["s"],
        "peak_connected": peak["connected"],
        "peak_connected_at_s": peak["s"],
        "connected_at_end": last["connected"],
        "closed_at_end": last["closed"],
        "pending_at_end": last["pending"],
        "first_close_at_s": first_close,
        "half_closed_at_s": half_closed,
        "probe_available_seconds": sum(1 for r in rows if r["available"]),
        # [second, connected, closed, pending, slowhttptest's probe saw the service up (1/0)]
        "timeline": [[r["s"], r["connected"], r["closed"], r["pending"], int(r["available"])] for r in rows],
    }


def fmt_ms(v):
    if v is None:
        return "–"
    if v >= 1000:
        return "%.2f s" % (v / 1000.0)
    if v >= 10:
        return "%.0f ms" % v
    return "%.2f ms" % v


def fmt_mib(kib):
    return "–" if kib is None else "%.1f MiB" % (kib / 1024.0)


def conn_text(name, s):
    if not s:
        return "%s: no CSV" % name
    t = "%s: peak %d connected (t=%ds), at end %d connected / %d closed" % (
        name,
        s["peak_connected"],
        s["peak_connected_at_s"],
        s["connected_at_end"],
        s["closed_at_end"],
    )
    if s["pending_at_end"]:
        t += " / %d pending" % s["pending_at_end"]
    if s["first_close_at_s"] is not None:
        t += "; first close t=%ds" % s["first_close_at_s"]
    if s["half_closed_at_s"] is not None:
        t += ", half closed t=%ds" % s["half_closed_at_s"]
    t += "; slowhttptest's own probe saw the service up %d of %d s" % (
        s["probe_available_seconds"],
        s["seconds"] + 1,
    )
    if s.get("exit_status"):
        t += "; it ended at t=%ss: %s" % (s.get("ended_at_s"), s["exit_status"])
    return t


def cmd_report(a):
    meta = load(os.path.join(a.raw, "meta.json"), {})
    runs = []
    for attack in meta.get("attacks", []):
        for server in meta.get("servers", []):
            base = os.path.join(a.raw, "%s.%s" % (server, attack))
            run = {"attack": attack, "server": server}
            run["run"] = load(base + ".run.json", {})
            probe = load(base + ".probe.json")
            run["probe"] = probe
            samples = load(base + ".sample.json", [])
            live = [s for s in samples if not s.get("dead")]
            run["server_died"] = any(s.get("dead") for s in samples)
            lo, hi = meta.get("ramp_seconds", 0), meta.get("probe_end", 0)
            during = [s["established"] for s in live if lo <= s["t"] <= hi]
            est = [(s["t"], s["established"]) for s in live]
            peak_t, peak_n = max(est, key=lambda x: x[1]) if est else (None, None)
            half_t = next((t for t, n in est if peak_t is not None and t > peak_t and n * 2 < peak_n), None)
            cpus = [s["cpu_s"] for s in live if "cpu_s" in s]
            run["resources"] = {
                "cpu_s": round(cpus[-1] - cpus[0], 2) if len(cpus) >= 2 else None,
                "established_peak": peak_n,
                "established_peak_at_s": peak_t,
                "established_below_half_at_s": half_t,
                "established_at_end": est[-1][1] if est else None,
                "sampled_s": live[-1]["t"] if live else None,
                "established_during_probe_min": min(during, default=None),
                "established_during_probe_max": max(during, default=None),
                "rss_start_kib": live[0]["rss_kib"] if live else None,
                "rss_max_kib": max((s["rss_kib"] for s in live), default=None),
                "fds_max": max((s["fds"] for s in live), default=None),
                "established_max": max((s["established"] for s in live), default=None),
                "close_wait_max": max((s["close_wait"] for s in live), default=None),
                # [t s, RSS KiB, fds, established, close_wait, CPU s so far]
                "timeline": [
                    [s["t"], s["rss_kib"], s["fds"], s["established"], s["close_wait"], s.get("cpu_s")]
                    for s in live[:: max(1, len(live) // 60)]
                ],
            }
            shts = {}
            for p in sorted(glob.glob(base + ".sht-*.csv")):
                mode = p.rsplit(".sht-", 1)[1][:-4]
                shts[mode] = slowhttp_summary(p)
            run["slowhttptest"] = shts
            run["hold"] = load(base + ".hold.json")
            runs.append(run)

    doc = {"meta": meta, "runs": runs}
    with open(a.json, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")

    L = []
    L.append("# Slow-client attacks: poolserve and nginx side by side")
    L.append("")
    L.append(
        "Written by `benches/load/attack.sh` (do not edit by hand). Commit `%s`%s, run %s → %s, "
        "%s s of script; machine: %s cores (%s), %s; `/proc/loadavg` at start `%s`, at end `%s`."
        % (
            meta.get("commit", "?"),
            " (last change to `src/`: `%s`)" % meta["src_commit"] if meta.get("src_commit") else "",
            meta.get("started", "?"),
            meta.get("ended", "?"),
            meta.get("runtime_s", "?"),
            meta.get("nproc", "?"),
            meta.get("cpu", "?"),
            meta.get("kernel", "?"),
            meta.get("loadavg_start", "?"),
            meta.get("loadavg_end", "?"),
        )
    )
    L.append("")
    L.append(
        "Other processes above 1 %% CPU over one second (`top`) at the start: %s; at the end (after the last attack): %s."
        % (meta.get("busy_start") or "none", meta.get("busy_end") or "none")
    )
    L.append("")
    L.append(
        "Servers: poolserve `%s` (%s); nginx %s (`worker_processes %s`, sendfile on). Each attack lasts "
        "%s s against a freshly started server; %s attack connections per slowhttptest (`-r %s`), "
        "%s malformed-and-hold clients (hold %s s, then reconnect); the fresh client starts at t=%s s "
        "and sends sequential `GET /` on a new connection each (every %s s, timeout %s s, a failure "
        "counts as latency = timeout) until t=%s s, at least %s requests unless the window ends first. "
        "Client tools: %s."
        % (
            meta.get("poolserve_args", ""),
            meta.get("poolserve_sha256", ""),
            meta.get("nginx_version", "?"),
            meta.get("nginx_workers", "?"),
            meta.get("attack_seconds"),
            meta.get("attack_conns"),
            meta.get("rate"),
            meta.get("hold_clients"),
            meta.get("hold_seconds"),
            meta.get("ramp_seconds"),
            meta.get("probe_interval"),
            meta.get("probe_timeout"),
            meta.get("probe_end"),
            meta.get("probe_min"),
            meta.get("slowhttptest_version", "?"),
        )
    )
    L.append("")
    L.append(
        "| attack | server | fresh `GET /`: requests | failed | p50 | p99 | max | RSS max | fds max "
        "| server-side sockets established: max / during the probe | server CPU during the attack | server up after attack |"
    )
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in runs:
        p = r["probe"] or {}
        res = r["resources"]
        rec = r["run"].get("recovered_after_s")
        rec_t = "died" if r["server_died"] else ("%.1f s" % rec if rec is not None else "no (%s s)" % r["run"].get("recovery_limit_s", "?"))
        cpu = res.get("cpu_s")
        L.append(
            "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
            % (
                ATTACK_TITLES.get(r["attack"], r["attack"]),
                "**%s**" % r["server"] if r["server"] == "poolserve" else r["server"],
                p.get("requests", "–"),
                p.get("failed", "–"),
                fmt_ms(p.get("p50_ms")),
                fmt_ms(p.get("p99_ms")),
                fmt_ms(p.get("max_ms")),
                fmt_mib(res["rss_max_kib"]),
                res["fds_max"] if res["fds_max"] is not None else "–",
                "%s / %s–%s"
                % (
                    res["established_max"],
                    res["established_during_probe_min"],
                    res["established_during_probe_max"],
                ),
                "–" if cpu is None else "%.1f s" % cpu,
                rec_t,
            )
        )
    L.append("")
    L.append("Targets (for the event-loop server): fresh-client p99 < 10 ms under every attack; RSS < 64 MiB with the 2,000 slow clients of \"all at once\" connected.")
    L.append("")
    L.append("| attack | server | p99 < 10 ms | failures | RSS < 64 MiB |")
    L.append("|---|---|---|---|---|")
    for r in runs:
        p = r["probe"] or {}
        p99 = p.get("p99_ms")
        res = r["resources"]
        rss_ok = res["rss_max_kib"] is not None and res["rss_max_kib"] < 64 * 1024
        L.append(
            "| %s | %s | %s | %s | %s |"
            % (
                ATTACK_TITLES.get(r["attack"], r["attack"]),
                r["server"],
                "–" if p99 is None else ("yes (%s)" % fmt_ms(p99) if p99 < 10 else "**no** (%s)" % fmt_ms(p99)),
                "%s of %s" % (p.get("failed", "–"), p.get("requests", "–")),
                ("yes" if rss_ok else "**no**") + " (%s)" % fmt_mib(res["rss_max_kib"]),
            )
        )
    L.append("")
    L.append("### Attack connections over time (slowhttptest's CSV; t from the start of each slowhttptest)")
    L.append("")
    for r in runs:
        parts = []
        for mode, s in sorted(r["slowhttptest"].items()):
            parts.append(conn_text("`-%s`" % mode, s))
        res = r["resources"]
        if res.get("established_peak") is not None:
            t = "server side (sampled every 0.5 s from the attack's start): peak %d established sockets at t=%.0fs" % (
                res["established_peak"],
                res["established_peak_at_s"],
            )
            if res["established_below_half_at_s"] is not None:
                t += ", below half of that from t=%.0fs" % res["established_below_half_at_s"]
            t += ", %d at t=%.0fs" % (res["established_at_end"], res["sampled_s"])
            parts.append(t)
        h = r["hold"]
        if h:
            st = ", ".join("%s: %d" % kv for kv in sorted(h["statuses"].items()))
            t = "malformed-and-hold: %d connections (%d failed to connect), the server shut its side (FIN/reset seen) on %d within the %s s hold" % (
                h["connections"],
                h["connect_failures"],
                h["closed_by_server_within_hold"],
                h["hold_s"],
            )
            if h["close_after_p50_s"] is not None:
                t += " (after p50 %.2f s, max %.2f s)" % (h["close_after_p50_s"], h["close_after_max_s"])
            t += "; responses seen: %s" % (st or "none")
            parts.append(t)
        p = r["probe"] or {}
        if p.get("failures"):
            parts.append("fresh-client failures: " + ", ".join("%s: %d" % kv for kv in sorted(p["failures"].items())))
        if r["server_died"]:
            parts.append("**the server process exited during the attack**")
        L.append("- **%s, %s**: %s." % (ATTACK_TITLES.get(r["attack"], r["attack"]), r["server"], "; ".join(parts)))
    L.append("")
    with open(a.md, "w") as f:
        f.write("\n".join(L))
    print("\n".join(L))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--deadline", type=float, required=True, help="seconds the probe may run")
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("--min-requests", type=int, default=200)
    p.add_argument("--max-requests", type=int, default=5000)
    p.add_argument("--out", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--clients", type=int, default=64)
    h.add_argument("--hold", type=float, default=2.0)
    h.add_argument("--duration", type=float, required=True)
    h.add_argument("--out", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--duration", type=float, required=True)
    s.add_argument("--interval", type=float, default=0.5)
    s.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--raw", required=True)
    r.add_argument("--md", required=True)
    r.add_argument("--json", required=True)
    a = ap.parse_args()
    {"probe": cmd_probe, "hold": cmd_hold, "sample": cmd_sample, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
