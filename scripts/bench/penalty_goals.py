#!/usr/bin/env python3
"""The Penalty benchmark's grid and its goals, from the results.json files bench-penalty.sh
leaves under its work directories (one per RTT).

Usage: scripts/bench/penalty_goals.py [--record FILE] 0=target/bench-penalty-zero \
           "100 ms"=target/bench-penalty-rtt100

--record FILE writes btvod's policies' penalties in the btvod worlds of the first directory
(scenario,policy,runs,mean_pct,sd_pct) for tests/sim_calibration.rs: update it only from a
rerun of the benchmark.

Prints two Markdown tables: every cell (scenario x world x RTT x policy: mean ± sd [min-max]
of the penalty, its share of the movie, both bounds and the completion time), then the
goals of the deadline policy in each scenario x world x RTT:
  - its penalty above the capacity bound at most 0.6x the better libtorrent mode's penalty
    above that mode's bound (where that is 0, the deadline policy's must be 0 too);
  - its penalty at most 1.2x its ordering bound plus 1% of the movie;
  - no worse than btvod's sequential picker by more than one spread (the larger sd).
"""
import json
import sys
from pathlib import Path

LT = ("libtorrent-deadline", "libtorrent-sequential")


def spread(stat, scale=1.0, digits=0):
    if not stat or stat["n"] == 0:
        return "-"
    f = f"{{:.{digits}f}}"
    m, sd, lo, hi = (stat[k] * scale for k in ("mean", "sd", "min", "max"))
    return f"{f.format(m)} ± {f.format(sd)} [{f.format(lo)}-{f.format(hi)}]"


def load(label, root):
    cells = []
    for results in sorted(Path(root).glob("*/results.json")):
        data = json.loads(results.read_text())
        for s in data["summary"]:
            cells.append((data["scenario"], s["world"], label, s))
    return cells


def record(path, cells):
    label = cells[0][2] if cells else None
    lines = ["scenario,policy,runs,mean_pct,sd_pct"]
    for scenario, world, rtt, s in cells:
        if world == "btvod" and rtt == label and not s["policy"].startswith("libtorrent"):
            f = s["penalty_fraction"]
            if f["n"]:
                lines.append(f"{scenario},{s['policy']},{f['n']},{100 * f['mean']:.2f},"
                             f"{100 * f['sd']:.2f}")
    Path(path).write_text("\n".join(lines) + "\n")


def main(args):
    record_to = None
    if args[:1] == ["--record"]:
        record_to, args = args[1], args[2:]
    cells = []
    for arg in args:
        label, _, root = arg.partition("=")
        cells += load(label, root)
    kib = 1 / 1024
    print("| scenario | world | RTT | policy | penalty KiB | penalty % | capacity bound KiB "
          "| ordering bound KiB | complete s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for scenario, world, rtt, s in cells:
        failed = f" ({s['failed_runs']} of {s['runs']} failed)" if s["failed_runs"] else ""
        print(f"| {scenario} | {world} | {rtt} | {s['policy']}{failed} | "
              f"{spread(s['penalty_bytes'], kib)} | {spread(s['penalty_fraction'], 100, 1)} | "
              f"{spread(s['capacity_bound_bytes'], kib)} | "
              f"{spread(s['ordering_bound_bytes'], kib)} | {spread(s['complete_s'], 1, 1)} |")
    print()
    print("| scenario | world | RTT | deadline KiB above bound | better lt mode KiB above bound "
          "| ratio (goal ≤ 0.6) | ≤ 1.2 × ordering + 1% | vs btvod sequential |")
    print("|---|---|---|---|---|---|---|---|")
    groups = {}
    for scenario, world, rtt, s in cells:
        groups.setdefault((scenario, world, rtt), {})[s["policy"]] = s
    met = total = 0
    for (scenario, world, rtt), by in groups.items():
        d = by.get("deadline")
        if d is None or d["penalty_bytes"]["n"] == 0:
            continue
        mean = lambda s, k: s[k]["mean"] if s[k]["n"] else 0.0
        above = lambda s: max(0.0, mean(s, "penalty_bytes") - mean(s, "capacity_bound_bytes"))
        lts = [(above(by[p]), p) for p in LT if p in by and by[p]["penalty_bytes"]["n"]]
        d_above = above(d)
        if lts:
            best, name = min(lts)
            if best == 0:
                ok = d_above == 0
                ratio = f"{'met' if ok else '**not met**'} (0 against {d_above * kib:.0f})"
            else:
                r = d_above / best
                ok = r <= 0.6
                ratio = f"{r:.2f} {'met' if ok else '**not met**'}"
            met, total = met + ok, total + 1
            lt_text = f"{best * kib:.0f} ({name.removeprefix('libtorrent-')})"
        else:
            ratio, lt_text = "-", "-"
        fraction = mean(d, "penalty_fraction")
        movie = mean(d, "penalty_bytes") / fraction if fraction > 0 else 0.0
        if d["ordering_bound_bytes"]["n"] and movie > 0:
            limit = 1.2 * mean(d, "ordering_bound_bytes") + 0.01 * movie
            ordering = "met" if mean(d, "penalty_bytes") <= limit else (
                f"**not met** (ordering {mean(d, 'ordering_bound_bytes') * kib:.0f})")
        elif mean(d, "penalty_bytes") == 0:
            ordering = "met"
        else:
            ordering = "-"
        seq = by.get("sequential")
        if seq and seq["penalty_bytes"]["n"]:
            gap = mean(d, "penalty_bytes") - mean(seq, "penalty_bytes")
            sd = max(d["penalty_bytes"]["sd"], seq["penalty_bytes"]["sd"])
            versus = "met" if gap <= sd else f"**not met** (+{gap * kib:.0f} KiB)"
        else:
            versus = "-"
        print(f"| {scenario} | {world} | {rtt} | {d_above * kib:.0f} | {lt_text} | {ratio} | "
              f"{ordering} | {versus} |")
    print()
    print(f"The 0.6x goal is met in {met} of {total} cells.")
    if record_to:
        record(record_to, cells)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
