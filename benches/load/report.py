#!/usr/bin/env python3
"""Turns the raw wrk outputs of benches/load/run.sh into results.csv, results.json, table.md and
plot.svg (python3 standard library only).

    python3 benches/load/report.py benches/load/results
"""
import csv
import html
import json
import re
import sys
from pathlib import Path

SERVERS = ["poolserve", "hyper", "tiny", "book", "nginx"]
LOADS = [
    ("ka1", "keep-alive, 1 conn, `/`"),
    ("ka16", "keep-alive, 16 conns, `/`"),
    ("ka64", "keep-alive, 64 conns, `/`"),
    ("ka256", "keep-alive, 256 conns, `/`"),
    ("close16", "`Connection: close`, 16 conns, `/`"),
    ("1mib16", "keep-alive, 16 conns, `/1m.bin` (1 MiB)"),
    ("large", "keep-alive, large file"),  # relabelled from machine.txt in main()
]
# The rows whose figure of merit is MiB/s rather than requests/s.
LARGE_LOADS = ("1mib16", "large")
# The targets: (load, peer, minimum ratio poolserve / peer, measure).
TARGETS = [
    ("1mib16", "nginx", 1.0, "mib_per_s"),
    ("large", "nginx", 1.0, "mib_per_s"),
    ("ka1", "hyper", 0.95, "req_per_s"),
    ("ka16", "hyper", 0.95, "req_per_s"),
    ("ka64", "hyper", 0.95, "req_per_s"),
    ("ka256", "hyper", 0.95, "req_per_s"),
]
COLORS = {"poolserve": "#1f77b4", "hyper": "#ff7f0e", "tiny": "#2ca02c", "book": "#9467bd",
          "nginx": "#d62728"}
SHARED_NOTE = "wrk (2 threads) runs on the same 2 cores as the server"

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def to_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * UNIT_MS[m.group(2)] if m else None


def parse(path):
    text = path.read_text(errors="replace")
    row = {}
    for key in ("server", "load", "round", "connections", "path", "duration"):
        m = re.search(rf"\b{key}=(\S*)", text)
        row[key] = m.group(1) if m else ""
    m = re.search(r"header=(.*?) duration=", text)
    row["header"] = m.group(1) if m else ""
    m = re.search(r"^# bytes=(\d+)", text, re.M)
    row["bytes"] = int(m.group(1)) if m else None
    m = re.search(r"loadavg_before=(\S+)", text)
    row["loadavg_before"] = float(m.group(1)) if m else None
    m = re.search(r"loadavg_after=(\S+)", text)
    row["loadavg_after"] = float(m.group(1)) if m else None
    m = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    row["req_per_s"] = float(m.group(1)) if m else None
    m = re.search(r"Transfer/sec:\s+([0-9.]+)([KMG]?B)", text)
    if m:
        scale = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[m.group(2)]
        row["mib_per_s"] = round(float(m.group(1)) * scale / 1024**2, 2)
    else:
        row["mib_per_s"] = None
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        row[f"p{pct}_ms"] = to_ms(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([0-9.]+\w+)", text)
    row["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    row["socket_errors"] = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    )
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    row["non_2xx"] = int(m.group(1)) if m else 0
    row["server_died"] = "SERVER DIED" in text
    row["wrk_failed"] = row["req_per_s"] is None or "wrk exit" in text
    return row


def fmt_rps(v):
    return "—" if v is None else f"{v:,.0f}"


def fmt_ms(v):
    if v is None:
        return "—"
    return f"{v * 1000:.0f} µs" if v < 1 else f"{v:.2f} ms"


def problems(r):
    errs = sum(r["socket_errors"].values())
    out = []
    if errs:
        out.append("socket errors " + ", ".join(f"{k} {v}" for k, v in r["socket_errors"].items() if v))
    if r["non_2xx"]:
        out.append(f"non-2xx {r['non_2xx']}")
    if r["server_died"]:
        out.append("SERVER DIED")
    if r["wrk_failed"]:
        out.append("wrk failed")
    return "; ".join(out) or "none"


def median(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def aggregate(rows):
    """One entry per (server, load): medians over the rounds, plus the req/s range and totals."""
    groups = {}
    for r in rows:
        groups.setdefault((r["server"], r["load"]), []).append(r)
    agg = {}
    for key, rs in groups.items():
        rps = [r["req_per_s"] for r in rs if r["req_per_s"] is not None]
        mibs = [r["mib_per_s"] for r in rs if r["mib_per_s"] is not None]
        errors = {}
        for r in rs:
            for k, v in r["socket_errors"].items():
                errors[k] = errors.get(k, 0) + v
        agg[key] = {
            "server": key[0],
            "load": key[1],
            "rounds": len(rs),
            "req_per_s": median(rps),
            "req_per_s_min": min(rps) if rps else None,
            "req_per_s_max": max(rps) if rps else None,
            "mib_per_s": median(mibs),
            "mib_per_s_min": min(mibs) if mibs else None,
            "mib_per_s_max": max(mibs) if mibs else None,
            "p50_ms": median(r["p50_ms"] for r in rs),
            "p99_ms": median(r["p99_ms"] for r in rs),
            "p99_ms_max": max((r["p99_ms"] for r in rs if r["p99_ms"] is not None), default=None),
            "loadavg_min": min((r["loadavg_before"] for r in rs if r["loadavg_before"] is not None), default=None),
            "loadavg_max": max((r["loadavg_after"] for r in rs if r["loadavg_after"] is not None), default=None),
            "socket_errors": errors,
            "non_2xx": sum(r["non_2xx"] for r in rs),
            "server_died": any(r["server_died"] for r in rs),
            "wrk_failed": any(r["wrk_failed"] for r in rs),
        }
    return agg


def ratios(rows, measure="req_per_s"):
    """poolserve / peer in `measure` (req_per_s or mib_per_s): the ratio of the medians, and the
    range of the per-round ratios."""
    agg = aggregate(rows)
    per_round = {}
    for r in rows:
        per_round[(r["server"], r["load"], r["round"])] = r[measure]
    out = {}
    for load, _ in LOADS:
        ps = agg.get(("poolserve", load))
        for p in SERVERS[1:]:
            r = agg.get((p, load))
            if not (ps and r and ps[measure] and r[measure]):
                continue
            rounds = sorted({k[2] for k in per_round if k[1] == load})
            each = [per_round.get(("poolserve", load, n)) and per_round.get((p, load, n))
                    and per_round[("poolserve", load, n)] / per_round[(p, load, n)] for n in rounds]
            each = [x for x in each if x]
            out.setdefault(load, {})[p] = {
                "median_ratio": round(ps[measure] / r[measure], 3),
                "per_round_min": round(min(each), 3) if each else None,
                "per_round_max": round(max(each), 3) if each else None,
            }
    return out


def table(rows, machine):
    agg = aggregate(rows)
    rounds = machine.get("rounds", "?")
    lines = []
    lines.append(
        f"Each cell: the median of {rounds} wrk runs of {machine.get('duration', '?')} "
        f"(`-t 2 --latency`, 1 thread for 1 connection), taken in {rounds} interleaved rounds; "
        f"req/s range = lowest–highest round. **{SHARED_NOTE}**, so every figure includes the load "
        f"generator's CPU share. Load avg = lowest 1-minute load average before a run → highest "
        f"after one, over the rounds."
    )
    lines.append("")
    lines.append("| load | server | req/s (median) | req/s range | p50 | p99 | load avg | errors |")
    lines.append("|---|---|---:|---:|---:|---:|---|---|")
    for load, label in LOADS:
        for s in SERVERS:
            a = agg.get((s, load))
            if not a:
                continue
            la = f"{a['loadavg_min']:.1f} → {a['loadavg_max']:.1f}"
            name = f"**{s}**" if s == "poolserve" else s
            rng = f"{fmt_rps(a['req_per_s_min'])}–{fmt_rps(a['req_per_s_max'])}"
            lines.append(
                f"| {label} | {name} | {fmt_rps(a['req_per_s'])} | {rng} | {fmt_ms(a['p50_ms'])} | "
                f"{fmt_ms(a['p99_ms'])} | {la} | {problems(a)} |"
            )
    lines.append("")
    lines.append(
        f"Ratio poolserve / peer in requests per second: ratio of the medians, and in brackets the "
        f"lowest–highest ratio within one round ({SHARED_NOTE}):"
    )
    lines.append("")
    rat = ratios(rows)
    peers = [s for s in SERVERS[1:] if any(r["server"] == s for r in rows)]
    lines.append("| load | " + " | ".join(f"poolserve ÷ {p}" for p in peers) + " |")
    lines.append("|---|" + "---:|" * len(peers))
    for load, label in LOADS:
        cells = []
        for p in peers:
            x = rat.get(load, {}).get(p)
            if x:
                cells.append(f"{x['median_ratio']:.2f}× ({x['per_round_min']:.2f}–{x['per_round_max']:.2f})")
            else:
                cells.append("—")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    large = [(l, lab) for l, lab in LOADS if l in LARGE_LOADS and any(r["load"] == l for r in rows)]
    mrat = ratios(rows, "mib_per_s")
    if large:
        lines.append("")
        lines.append(
            "Large files in MiB/s (wrk's `Transfer/sec`, response heads included): median over the "
            "rounds, lowest–highest round, and poolserve ÷ server as the ratio of the medians "
            f"(lowest–highest ratio within one round); {SHARED_NOTE}:"
        )
        lines.append("")
        lines.append("| load | server | MiB/s (median) | MiB/s range | req/s (median) | p50 | p99 | "
                     "poolserve ÷ server | errors |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---|")
        for load, label in large:
            for s in SERVERS:
                a = agg.get((s, load))
                if not a:
                    continue
                x = mrat.get(load, {}).get(s)
                ratio = (f"{x['median_ratio']:.2f}× ({x['per_round_min']:.2f}–{x['per_round_max']:.2f})"
                         if x else "—")
                name = f"**{s}**" if s == "poolserve" else s
                lines.append(
                    f"| {label} | {name} | {fmt_mib(a['mib_per_s'])} | "
                    f"{fmt_mib(a['mib_per_s_min'])}–{fmt_mib(a['mib_per_s_max'])} | "
                    f"{a['req_per_s']:,.1f} | {fmt_ms(a['p50_ms'])} | {fmt_ms(a['p99_ms'])} | "
                    f"{ratio} | {problems(a)} |"
                )
    trows = target_rows(rows)
    if trows:
        lines.append("")
        lines.append("Against the targets (ratio of the medians; in brackets the lowest–highest "
                     "ratio within one round):")
        lines.append("")
        lines.append("| target | poolserve | peer | ratio | verdict |")
        lines.append("|---|---:|---:|---:|---|")
        for t in trows:
            unit = "MiB/s" if t["measure"] == "mib_per_s" else "req/s"
            lines.append(
                f"| {t['label']}: poolserve ≥ {t['minimum']:.2f}× {t['peer']} in {unit} | "
                f"{t['poolserve']:,.0f} | {t['peer_value']:,.0f} | {t['ratio']:.2f}× "
                f"({t['per_round_min']:.2f}–{t['per_round_max']:.2f}) | {t['verdict']} |"
            )
    return "\n".join(lines) + "\n"


def fmt_mib(v):
    return "—" if v is None else f"{v:,.0f}"


def target_rows(rows):
    agg = aggregate(rows)
    labels = dict(LOADS)
    out = []
    for load, peer, minimum, measure in TARGETS:
        x = ratios(rows, measure).get(load, {}).get(peer)
        if not x:
            continue
        ratio = x["median_ratio"]
        if ratio >= minimum and x["per_round_min"] >= minimum:
            verdict = "met in every round"
        elif ratio >= minimum:
            verdict = "met (median), missed in some round"
        else:
            verdict = f"**missed** by {100 * (1 - ratio / minimum):.0f} %"
        out.append({
            "load": load, "label": labels.get(load, load), "peer": peer, "minimum": minimum,
            "measure": measure, "poolserve": agg[("poolserve", load)][measure],
            "peer_value": agg[(peer, load)][measure], "ratio": ratio,
            "per_round_min": x["per_round_min"], "per_round_max": x["per_round_max"],
            "verdict": verdict,
        })
    return out


# --- SVG -----------------------------------------------------------------------------------------

def nice_max(v):
    if v <= 0:
        return 1
    mag = 10 ** (len(str(int(v))) - 1)
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * mag >= v:
            return step * mag
    return 10 * mag


def bar_panel(out, x0, y0, w, h, title, groups, values, ylabel, fmt, ranges=None):
    """Grouped bars: groups = [(key, label)], values[(server, key)] -> float or None; ranges (same
    keys) -> (low, high), drawn as a whisker on the bar."""
    ranges = ranges or {}
    ranges = {key: lh for key, lh in ranges.items() if key in values}
    tops = [v for v in values.values() if v] + [hi for _, hi in ranges.values() if hi]
    vmax = nice_max(max(tops or [1]) * 1.05)
    out.append(f'<text x="{x0 + w / 2}" y="{y0 - 12}" text-anchor="middle" font-size="14" '
               f'font-weight="bold">{html.escape(title)}</text>')
    for i in range(6):
        v = vmax * i / 5
        y = y0 + h - h * i / 5
        out.append(f'<line x1="{x0}" x2="{x0 + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
                   f'{fmt(v)}</text>')
    out.append(f'<text x="{x0 - 52}" y="{y0 + h / 2}" font-size="12" text-anchor="middle" '
               f'transform="rotate(-90 {x0 - 52} {y0 + h / 2})">{html.escape(ylabel)}</text>')
    servers = [s for s in SERVERS if any(k[0] == s for k in values)]
    gw = w / len(groups)
    bw = gw * 0.8 / max(len(servers), 1)
    for gi, (key, label) in enumerate(groups):
        gx = x0 + gi * gw + gw * 0.1
        for si, s in enumerate(servers):
            v = values.get((s, key))
            if not v:
                continue
            bh = h * v / vmax
            bx = gx + si * bw
            out.append(f'<rect x="{bx:.1f}" y="{y0 + h - bh:.1f}" width="{bw - 1:.1f}" '
                       f'height="{bh:.1f}" fill="{COLORS[s]}"><title>{s} {html.escape(label)}: '
                       f'{fmt(v)}</title></rect>')
            lo, hi = ranges.get((s, key), (None, None))
            if lo is not None and hi is not None and hi > lo:
                cx = bx + (bw - 1) / 2
                ylo, yhi = y0 + h - h * lo / vmax, y0 + h - h * hi / vmax
                out.append(f'<path d="M{cx:.1f} {ylo:.1f}V{yhi:.1f}M{cx - 3:.1f} {ylo:.1f}'
                           f'h6M{cx - 3:.1f} {yhi:.1f}h6" stroke="#222" stroke-width="1"/>')
        out.append(f'<text x="{x0 + gi * gw + gw / 2:.1f}" y="{y0 + h + 16}" text-anchor="middle" '
                   f'font-size="11">{html.escape(label)}</text>')
    out.append(f'<line x1="{x0}" x2="{x0}" y1="{y0}" y2="{y0 + h}" stroke="#333"/>')
    out.append(f'<line x1="{x0}" x2="{x0 + w}" y1="{y0 + h}" y2="{y0 + h}" stroke="#333"/>')


def svg(rows, machine):
    agg = aggregate(rows)
    small = [("ka1", "keep-alive 1"), ("ka16", "keep-alive 16"), ("ka64", "keep-alive 64"),
             ("ka256", "keep-alive 256"), ("close16", "close 16")]
    W, H = 1000, 720
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif">',
           f'<rect width="{W}" height="{H}" fill="white"/>']
    out.append(f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">'
               f'poolserve vs peers on 127.0.0.1 — one run of run.sh, '
               f'{html.escape(machine.get("date", ""))}</text>')
    out.append(f'<text x="{W / 2}" y="44" text-anchor="middle" font-size="12">'
               f'{machine.get("nproc", "?")} cores; {SHARED_NOTE}; bars: median of '
               f'{machine.get("rounds", "?")} rounds of {html.escape(machine.get("duration", "?"))}'
               f', whiskers: lowest–highest round</text>')
    rps = {k: a["req_per_s"] for k, a in agg.items()}
    rng = {k: (a["req_per_s_min"], a["req_per_s_max"]) for k, a in agg.items()}
    k = lambda v: f"{v / 1000:g}k" if v >= 1000 else f"{v:.0f}"
    small_rps = {key: v for key, v in rps.items() if key[1] not in LARGE_LOADS}
    bar_panel(out, 90, 90, 520, 240, "requests/s, 176-byte page", small, small_rps, "requests/s",
              k, rng)
    large_keys = [("1mib16", "1 MiB, 16"),
                  ("large", f"{machine.get('large_mib', '?')} MiB, {machine.get('large_conns', '?')}")]
    mib = {key: a["mib_per_s"] for key, a in agg.items() if key[1] in LARGE_LOADS}
    mrng = {key: (a["mib_per_s_min"], a["mib_per_s_max"]) for key, a in agg.items()
            if key[1] in LARGE_LOADS}
    bar_panel(out, 700, 90, 260, 240, "MiB/s, large files", large_keys, mib, "MiB/s",
              lambda v: f"{v:,.0f}", mrng)
    p99 = {key: a["p99_ms"] for key, a in agg.items()}
    ms = lambda v: f"{v:.1f}" if v < 10 else f"{v:.0f}"
    bar_panel(out, 90, 420, 870, 220, "p99 latency, ms (median of the rounds)",
              small + large_keys, p99, "ms", ms)
    lx = 90
    for s in SERVERS:
        if any(r["server"] == s for r in rows):
            out.append(f'<rect x="{lx}" y="{H - 40}" width="14" height="14" fill="{COLORS[s]}"/>')
            out.append(f'<text x="{lx + 20}" y="{H - 28}" font-size="13">{s}</text>')
            lx += 120
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results")
    raw = out / "raw"
    machine = {}
    mf = raw / "machine.txt"
    if mf.exists():
        for line in mf.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                machine[k] = v
    global LOADS
    if "large_mib" in machine:
        LOADS = [(l, f"keep-alive, {machine.get('large_conns', '?')} conns, `/large.bin` "
                     f"({machine['large_mib']} MiB)") if l == "large" else (l, lab)
                 for l, lab in LOADS]
    # Only the wrk outputs (SERVER.LOAD.rN.txt); never anyone else's files (attack*).
    rows = [parse(p) for p in sorted(raw.glob("*.*.r*.txt")) if not p.name.startswith("attack")]
    order = {s: i for i, s in enumerate(SERVERS)}
    lorder = {l: i for i, (l, _) in enumerate(LOADS)}
    rows.sort(key=lambda r: (r["round"], lorder.get(r["load"], 99), order.get(r["server"], 99)))
    fields = ["round", "server", "load", "connections", "path", "bytes", "header", "duration", "req_per_s",
              "mib_per_s", "p50_ms", "p75_ms", "p90_ms", "p99_ms", "requests", "non_2xx",
              "socket_errors", "server_died", "loadavg_before", "loadavg_after"]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            r2 = dict(r)
            r2["socket_errors"] = sum(r["socket_errors"].values())
            w.writerow(r2)
    (out / "results.json").write_text(json.dumps(
        {"machine": machine, "note": SHARED_NOTE,
         "medians": sorted(aggregate(rows).values(),
                           key=lambda a: (lorder.get(a["load"], 99), order.get(a["server"], 99))),
         "ratio_poolserve_over_peer": ratios(rows),
         "ratio_poolserve_over_peer_mib_per_s": {k: v for k, v in ratios(rows, "mib_per_s").items()
                                                 if k in LARGE_LOADS},
         "targets": target_rows(rows), "runs": rows},
        indent=2) + "\n")
    (out / "table.md").write_text(table(rows, machine))
    (out / "plot.svg").write_text(svg(rows, machine))
    print(table(rows, machine))


if __name__ == "__main__":
    main()
