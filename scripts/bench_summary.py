#!/usr/bin/env python3
"""The README's performance table from several full runs of scripts/bench.py.

    python3 scripts/bench.py --json /tmp/run1.json    # three times, on a quiet machine
    python3 scripts/bench_summary.py /tmp/run1.json /tmp/run2.json /tmp/run3.json

Each run's JSON holds that run's medians (over its rounds) per measurement and
server.  This prints, in Markdown: per measurement and server, the median of
the runs' medians with the spread (lowest-highest over the runs); ratchet_sel's
ratio against websockets (and against the floors) computed within each run,
then the median of those ratios with their range; and the verdict on every
target, with how many runs met it.  Ratios are taken inside each run because
the servers of one run shared the machine's state.  Runs whose load average
rose above the core count are flagged, and --strict refuses them.
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench import title  # noqa: E402  (the row names of bench.py's own tables)

REFERENCE = "websockets"


def load(paths):
    runs = []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for key in ("meta", "summary", "targets"):
            if key not in data:
                raise SystemExit("%s: not a scripts/bench.py --json result (no %r)" % (path, key))
        data["path"] = path
        runs.append(data)
    return runs


def fmt(v, unit):
    if v is None:
        return "n.a."
    if unit == "B/conn":
        return "%.1f KiB" % (v / 1024)
    if unit == "GiB/s":
        return "%.2f" % v
    return "{:,.0f}".format(v) if v >= 100 else "%.1f" % v


def spread(values, unit):
    """'median (low-high)' over runs, or the single value."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "n.a."
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt(med, unit)
    return "%s (%s-%s)" % (fmt(med, unit), fmt(min(vals), unit), fmt(max(vals), unit))


def ratio_cell(ratios):
    vals = [r for r in ratios if r is not None]
    if not vals:
        return ""
    med = statistics.median(vals)
    if len(vals) == 1:
        return " %.2fx" % med
    return " %.2fx (%.2f-%.2f)" % (med, min(vals), max(vals))


def unit_of(runs, mid):
    for run in runs:
        for results in run.get("raw", {}).get(mid, {}).values():
            for r in results:
                if r.get("unit"):
                    return r["unit"]
    return ""


def table(runs):
    servers = server_names(runs)
    mids = table_mids(runs)
    lines = ["| measurement | unit | " + " | ".join(servers) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in servers) + " |"]
    for mid in mids:
        unit = unit_of(runs, mid)
        cells = []
        for name in servers:
            values = [run["summary"].get(mid, {}).get(name, {}).get("value") for run in runs]
            if all(v is None for v in values):
                na = any(run["summary"].get(mid, {}).get(name, {}).get("na") for run in runs)
                cells.append("n.a." if na else "failed")
                continue
            cell = spread(values, unit)
            if name != REFERENCE:
                ratios = [run["summary"].get(mid, {}).get(name, {}).get("vs_websockets") for run in runs]
                cell += ratio_cell(ratios)
            cells.append(cell)
        params = next((run["meta"].get("params", {}).get(mid) for run in runs
                       if run["meta"].get("params", {}).get(mid)), None)
        label = title(mid, params) if params else mid
        lines.append("| %s | %s | %s |" % (label, "KiB" if unit == "B/conn" else unit, " | ".join(cells)))
    return lines


def cpu_table(runs):
    """Server CPU per message (or delivery, or handshake): median and spread over runs.

    Less sensitive than rates to how the load client and the server share the
    machine's cores.  The ratio is websockets' CPU per operation over the
    server's, inside each run (>1: less CPU than websockets)."""
    servers = server_names(runs)
    mids = [mid for mid in table_mids(runs)
            if any(run["summary"].get(mid, {}).get(name, {}).get("server_us_per_op") is not None
                   for run in runs for name in servers)]
    if not mids:
        return []
    lines = ["", "Server CPU time per message, delivery or handshake, in µs (lower is better); "
                 "(N.NNx) is websockets' CPU over this server's, inside each run:", "",
             "| measurement | " + " | ".join(servers) + " |",
             "| --- | " + " | ".join("---:" for _ in servers) + " |"]
    for mid in mids:
        cells = []
        for name in servers:
            values = [run["summary"].get(mid, {}).get(name, {}).get("server_us_per_op") for run in runs]
            if all(v is None for v in values):
                cells.append("-")
                continue
            cell = spread(values, "us")
            if name != REFERENCE:
                ratios = []
                for run in runs:
                    ours = run["summary"].get(mid, {}).get(name, {}).get("server_us_per_op")
                    ref = run["summary"].get(mid, {}).get(REFERENCE, {}).get("server_us_per_op")
                    ratios.append(ref / ours if ours and ref else None)
                cell += ratio_cell(ratios)
            cells.append(cell)
        params = next((run["meta"].get("params", {}).get(mid) for run in runs
                       if run["meta"].get("params", {}).get(mid)), None)
        lines.append("| %s | %s |" % (title(mid, params) if params else mid, " | ".join(cells)))
    return lines


def server_names(runs):
    names = []
    for run in runs:
        for name in run["meta"].get("servers", []):
            if name not in names:
                names.append(name)
    return names


def table_mids(runs):
    mids = []
    for run in runs:
        for mid in run["summary"]:
            if mid not in mids and mid != "unmask":
                mids.append(mid)
    return mids


def unmask_rows(runs):
    per_impl = {}
    for run in runs:
        u = run["summary"].get("unmask") or {}
        for name, v in (u.get("all") or {}).items():
            per_impl.setdefault(name, []).append(v)
    if not per_impl:
        return []
    lines = ["", "| unmasking 1 MiB | GiB/s |", "| --- | ---: |"]
    for name, values in per_impl.items():
        lines.append("| %s | %s |" % (name, spread(values, "GiB/s")))
    return lines


def verdicts(runs):
    per_target = {}
    order = []
    for run in runs:
        for t in run["targets"]:
            if t["target"] not in per_target:
                order.append(t["target"])
                per_target[t["target"]] = {"goal": t["goal"], "measured": [], "met": []}
            per_target[t["target"]]["measured"].append(t["measured"])
            per_target[t["target"]]["met"].append(t["met"])
    lines = ["", "| target | goal | per run | verdict |", "| --- | --- | --- | --- |"]
    for label in order:
        t = per_target[label]
        known = [m for m in t["met"] if m is not None]
        met = sum(1 for m in known if m)
        if not known:
            verdict = "not measured"
        elif met == len(known):
            verdict = "**met** (%d/%d runs)" % (met, len(known))
        elif met == 0:
            verdict = "**missed** (0/%d runs)" % len(known)
        else:
            verdict = "unsettled (met in %d/%d runs)" % (met, len(known))
        lines.append("| %s | %s | %s | %s |" % (label, t["goal"], ", ".join(t["measured"]), verdict))
    return lines


def header(runs):
    lines = []
    for i, run in enumerate(runs, 1):
        meta = run["meta"]
        start, end = meta.get("loadavg_start", [0])[0], meta.get("loadavg_end", [0])[0]
        lines.append("- run %d: %s, %s rounds, %s state, load average %.1f -> %.1f on %s cores%s" % (
            i, meta.get("date", "?"), meta.get("rounds", "?"), meta.get("state", "warm"), start, end,
            meta.get("machine", {}).get("cores", "?"),
            " **(load above the core count: not reproducible)**" if meta.get("load_warning") else ""))
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="JSON files written by scripts/bench.py --json")
    ap.add_argument("--strict", action="store_true",
                    help="fail when fewer than 3 runs are given or a run's load rose above the core count")
    args = ap.parse_args(argv)
    runs = load(args.results)
    if args.strict:
        if len(runs) < 3:
            raise SystemExit("--strict: at least three runs are needed, got %d" % len(runs))
        loaded = [r["path"] for r in runs if r["meta"].get("load_warning")]
        if loaded:
            raise SystemExit("--strict: the load rose above the core count in %s" % ", ".join(loaded))
    quick = [r["path"] for r in runs if r["meta"].get("quick")]
    out = ["Medians of %d run%s of `python3 scripts/bench.py`; in brackets the lowest and highest run. "
           "Ratios (N.NNx) are against websockets within each run, then the median and range over runs." % (
               len(runs), "s" if len(runs) != 1 else "")]
    if quick:
        out.append("")
        out.append("**These include --quick smoke runs (%s): their figures mean nothing.**" % ", ".join(quick))
    out.append("")
    out += header(runs)
    out.append("")
    out += table(runs)
    out += cpu_table(runs)
    out += unmask_rows(runs)
    out += verdicts(runs)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
