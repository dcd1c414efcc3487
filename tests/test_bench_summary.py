"""scripts/bench_summary.py: medians, spreads and verdicts from several bench.py results."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "bench_summary.py")


def run_result(echo_ours, echo_ws, met, load_end=0.5):
    summary = {"echo_50": {
        "ratchet_sel": {"value": echo_ours, "vs_websockets": echo_ours / echo_ws, "rounds_ok": 3, "rounds": 3,
                        "server_us_per_op": 1e6 / echo_ours},
        "websockets": {"value": echo_ws, "rounds_ok": 3, "rounds": 3, "server_us_per_op": 1e6 / echo_ws},
        "floor": {"value": None, "na": True, "rounds_ok": 0, "rounds": 3}}}
    return {"meta": {"date": "2026-11-29 20:00", "rounds": 3, "servers": ["ratchet_sel", "websockets", "floor"],
                     "loadavg_start": [0.3, 0.2, 0.1], "loadavg_end": [load_end, 0.2, 0.1],
                     "load_warning": load_end > 2, "machine": {"cores": 2},
                     "params": {"echo_50": {"conns": 50, "size": 32}}},
            "summary": summary,
            "targets": [{"target": "echo_50: ratchet_sel vs websockets", "goal": ">= 2.00x",
                         "measured": "%.2fx" % (echo_ours / echo_ws), "met": met}],
            "raw": {"echo_50": {"ratchet_sel": [{"ok": True, "unit": "msg/s", "value": echo_ours}]}}}


def summarize(tmp_path, runs, *extra):
    paths = []
    for i, run in enumerate(runs):
        path = tmp_path / ("run%d.json" % i)
        path.write_text(json.dumps(run))
        paths.append(str(path))
    return subprocess.run([sys.executable, SCRIPT] + paths + list(extra), capture_output=True, text=True,
                          timeout=30)


@pytest.mark.timeout(60)
def test_medians_spreads_ratios_and_verdicts(tmp_path):
    out = summarize(tmp_path, [run_result(60000, 20000, True), run_result(40000, 25000, False),
                               run_result(50000, 22000, True)])
    assert out.returncode == 0, out.stderr
    text = out.stdout
    row = next(line for line in text.splitlines() if line.startswith("| Echo 32 B text, 50 conns"))
    # median 50,000 (40,000-60,000); ratios 3.00, 1.60, 2.27 -> median 2.27 (1.60-3.00)
    assert "50,000 (40,000-60,000) 2.27x (1.60-3.00)" in row
    assert "22,000 (20,000-25,000)" in row and "n.a." in row
    assert "| echo_50: ratchet_sel vs websockets | >= 2.00x | 3.00x, 1.60x, 2.27x | unsettled (met in 2/3 runs) |" \
        in text
    # the CPU table: 1e6/rate µs per message, and websockets' CPU over ours inside each run
    cpu_row = [line for line in text.splitlines() if line.startswith("| Echo 32 B text, 50 conns")][1]
    assert "20.0 (16.7-25.0) 2.27x (1.60-3.00)" in cpu_row
    assert "45.5 (40.0-50.0)" in cpu_row


@pytest.mark.timeout(60)
def test_strict_refuses_loaded_or_too_few_runs(tmp_path):
    assert summarize(tmp_path, [run_result(1, 1, True)] * 2, "--strict").returncode != 0
    loaded = [run_result(1, 1, True), run_result(1, 1, True), run_result(1, 1, True, load_end=7.0)]
    out = summarize(tmp_path, loaded, "--strict")
    assert out.returncode != 0 and "load rose above the core count" in out.stderr
    out = summarize(tmp_path, loaded)
    assert out.returncode == 0 and "not reproducible" in out.stdout
