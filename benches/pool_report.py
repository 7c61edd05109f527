#!/usr/bin/env python3
"""Prints a markdown table of the `pool` benchmark's medians and poolserve's ratio to its peers.

Reads criterion's results (`<dir>/**/new/benchmark.json` + `estimates.json`; `<dir>` defaults to
`target/criterion`) after `cargo bench --bench pool`. Standard library only.

Usage: python3 benches/pool_report.py [CRITERION_DIR]
"""

import json
import os
import sys

GROUPS = ["headline-1M", "tiny", "latency", "mixed"]
POOL = "poolserve"
PEERS = ["threadpool", "rayon", "crossbeam", "book"]


def fmt(ns):
    """A duration in nanoseconds, in a readable unit."""
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def load(root):
    """{(group, case): {pool: median_ns}} for every pool benchmark found under `root`."""
    results = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        try:
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                bench = json.load(f)
            with open(os.path.join(dirpath, "estimates.json")) as f:
                est = json.load(f)
        except (OSError, ValueError):
            continue
        group = bench.get("group_id")
        if group not in GROUPS:
            continue
        case = bench.get("value_str") or ""
        pool = bench.get("function_id")
        results.setdefault((group, case), {})[pool] = est["median"]["point_estimate"]
    return results


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "–"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join("target", "criterion")
    results = load(root)
    if not results:
        sys.exit(f"no pool benchmark results under {root}; run `cargo bench --bench pool` first")
    cols = [POOL] + PEERS
    print("| case | " + " | ".join(cols) + " | best peer | poolserve / best | / crossbeam | / threadpool |")
    print("|---" * (len(cols) + 5) + "|")
    order = {g: i for i, g in enumerate(GROUPS)}
    for (group, case) in sorted(results, key=lambda k: (order[k[0]], k[1])):
        row = results[(group, case)]
        cells = [fmt(row[c]) if c in row else "–" for c in cols]
        peers = {p: row[p] for p in PEERS if p in row}
        best = min(peers, key=peers.get) if peers else None
        mine = row.get(POOL)
        print(
            f"| {group}/{case} | "
            + " | ".join(cells)
            + f" | {best or '–'} | {ratio(mine, peers.get(best))}"
            + f" | {ratio(mine, row.get('crossbeam'))} | {ratio(mine, row.get('threadpool'))} |"
        )
    print()
    print("Medians of criterion's per-iteration times (latency: time from submit to job start).")
    head = results.get(("headline-1M", "2w-1s"), {})
    if POOL in head and "crossbeam" in head and "threadpool" in head:
        cb = head[POOL] / head["crossbeam"]
        tp = head[POOL] / head["threadpool"]
        ok = cb <= 1.0 and tp <= 0.7
        print(
            f"Headline target (≤ 1.0× crossbeam, ≤ 0.7× threadpool): {cb:.2f}× / {tp:.2f}× "
            + ("met" if ok else "NOT met")
        )
    for case in ("2w", "4w"):
        lat = results.get(("latency", case), {})
        if POOL in lat and "crossbeam" in lat:
            ok = lat[POOL] <= lat["crossbeam"]
            print(
                f"Latency target {case} (≤ crossbeam): {fmt(lat[POOL])} vs {fmt(lat['crossbeam'])} "
                + ("met" if ok else "NOT met")
            )


if __name__ == "__main__":
    main()
