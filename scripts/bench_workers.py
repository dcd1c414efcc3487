#!/usr/bin/env python3
"""Prefork workers: ``--workers 2`` against ``--workers 1``, as ratios from one run.

Measurements (the load is scripts/bench/wsload.c, the C client of bench.py):

- ``echo_16k``: echo of 16 KiB text messages at 20 connections.  Bound by the
  server (unmasking and UTF-8 checking), so a second worker should help.
- ``echo_32``: echo of 32-byte text messages at 50 connections.  Here the load
  client and the kernel's loopback take much of the CPU; the report gives the
  CPU of the server (master and workers together), of the client and of the
  whole machine so that the ratio can be read.
- ``broadcast_10000``: 10,000 connections split across the workers; one
  client publishes and the time until the last of the 10,000 has the message
  is measured (median over the broadcasts).

Each measurement starts a fresh server (scripts/bench/server_ratchet_sel_workers.py);
rounds alternate 1 and 2 workers so that machine noise hits both alike.  Figures
mean something only on an otherwise idle machine.

    python3 scripts/bench_workers.py                  # 3 rounds, a few minutes
    python3 scripts/bench_workers.py --quick          # smoke run: tiny counts
    python3 scripts/bench_workers.py --workers 4 --only echo_16k

bench.py can call :func:`run_group` and append its rows to its own report.
"""

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_SRC = os.path.join(ROOT, "scripts", "bench")
SERVER = os.path.join(BENCH_SRC, "server_ratchet_sel_workers.py")
DEFAULT_WORKDIR = "/tmp/ratchet_sel-bench-workers"
CLK_TCK = os.sysconf("SC_CLK_TCK")
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

MEASUREMENTS = ("echo_16k", "echo_32", "broadcast_10000")


def parameters(quick: bool) -> Dict[str, Dict[str, Any]]:
    """What each measurement does, full or --quick."""
    if quick:
        return {"echo_16k": dict(conns=4, size=16384, warmup=0.2, duration=0.5),
                "echo_32": dict(conns=10, size=32, warmup=0.2, duration=0.5),
                "broadcast_10000": dict(conns=200, size=32, count=3)}
    return {"echo_16k": dict(conns=20, size=16384, warmup=1.0, duration=4.0),
            "echo_32": dict(conns=50, size=32, warmup=1.0, duration=4.0),
            "broadcast_10000": dict(conns=10000, size=32, count=10)}


def title(mid: str, p: Dict[str, Any]) -> str:
    if mid == "broadcast_10000":
        return "Broadcast %d B to %s conns: time until the last has it" % (p["size"], "{:,}".format(p["conns"]))
    size = "%d KiB" % (p["size"] // 1024) if p["size"] >= 1024 else "%d B" % p["size"]
    return "Echo %s text, %d conns" % (size, p["conns"])


def log(message: str) -> None:
    sys.stderr.write("[bench_workers] %s\n" % message)
    sys.stderr.flush()


# -- processes and CPU ------------------------------------------------------------------------
def build_client(workdir: str) -> str:
    """Build wsload (without zlib: no deflate here) unless this source was built already."""
    src = os.path.join(BENCH_SRC, "wsload.c")
    exe = os.path.join(workdir, "wsload")
    stamp = exe + ".source"
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if os.path.exists(exe) and os.path.exists(stamp) and open(stamp).read().strip() == digest:
        return exe
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise SystemExit("bench_workers.py needs gcc to build scripts/bench/wsload.c")
    log("building %s" % exe)
    subprocess.run([cc, "-O2", "-o", exe, src], check=True)
    with open(stamp, "w") as f:
        f.write(digest)
    return exe


def process_tree(pid: int) -> List[int]:
    """``pid`` and its children (the master and its workers)."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                pids.append(int(entry))
    return pids


def tree_cpu(pids: List[int]) -> float:
    """utime + stime of these processes, in seconds (a process gone counts 0)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machine_cpu() -> tuple:
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


class Server:
    """A fresh bench server with ``workers`` workers; ``port`` once every worker serves."""

    def __init__(self, workers: int, workdir: str) -> None:
        self.err = open(os.path.join(workdir, "server-w%d.err" % workers), "wb")
        self.proc = subprocess.Popen([sys.executable, SERVER, "--workers", str(workers)], cwd=ROOT,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.err)
        self.port = 0
        line = _readline(self.proc.stdout, time.monotonic() + 60)
        if line and line.startswith("LISTENING "):
            self.port = int(line.split()[1])
        self.pids = process_tree(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                for pid in process_tree(self.proc.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.err.close()


def _readline(stream: Any, deadline: float) -> Optional[str]:
    """One line from a pipe, or None at EOF or the deadline (a thread does the blocking read)."""
    box: List[bytes] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(max(0.0, deadline - time.monotonic()))
    if not box or not box[0]:
        return None
    return box[0].decode("utf-8", "replace").strip()


def run_client(client: str, args: List[str], server: Server, timeout: float) -> Dict[str, Any]:
    """Run wsload against ``server``; the result gets server and machine CPU over the window."""
    key = base64.b64encode(os.urandom(16)).decode()
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    proc = subprocess.Popen([client] + args + ["--port", str(server.port), "--key", key, "--accept", accept,
                                               "--timeout", str(timeout)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout + 15
    result: Optional[Dict[str, Any]] = None
    start = end = None
    try:
        while True:
            line = _readline(proc.stdout, deadline)
            if line is None:
                break
            if line.startswith("READY"):
                # Broadcast mode has no START/END: its window runs from READY to RESULT.
                start = (time.monotonic(), tree_cpu(server.pids), machine_cpu())
                proc.stdin.write(b"GO\n")
                proc.stdin.flush()
            elif line == "START":
                start = (time.monotonic(), tree_cpu(server.pids), machine_cpu())
            elif line == "END":
                end = (time.monotonic(), tree_cpu(server.pids), machine_cpu())
            elif line.startswith("RESULT "):
                if end is None:
                    end = (time.monotonic(), tree_cpu(server.pids), machine_cpu())
                result = json.loads(line[7:])
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
    if result is None:
        return {"ok": False, "error": "the load client gave no result"}
    if start and end and end[0] - start[0] >= 0.2:
        seconds = end[0] - start[0]
        result["server_cpu_pct"] = 100.0 * (end[1] - start[1]) / seconds
        busy, total = end[2][0] - start[2][0], end[2][1] - start[2][1]
        result["machine_cpu_pct"] = 100.0 * os.cpu_count() * busy / total if total else None  # type: ignore
    return result


# -- measurements -----------------------------------------------------------------------------
def measure(client: str, mid: str, p: Dict[str, Any], workers: int, workdir: str) -> Dict[str, Any]:
    """One measurement on a fresh server."""
    server = Server(workers, workdir)
    try:
        if not server.port:
            return {"ok": False, "error": "the server did not start (see %s)" % server.err.name}
        if mid.startswith("echo"):
            res = run_client(client, ["echo", "--conns", str(p["conns"]), "--size", str(p["size"]),
                                      "--warmup", str(p["warmup"]), "--duration", str(p["duration"])],
                             server, timeout=60 + p["duration"])
            if not res.get("ok") or not res.get("messages"):
                return {"ok": False, "error": res.get("error") or "no echo in the window"}
            return {"ok": True, "value": res["rate"], "unit": "msg/s",
                    "server_cpu_pct": res.get("server_cpu_pct"), "client_cpu_pct": res.get("client_cpu_pct"),
                    "machine_cpu_pct": res.get("machine_cpu_pct")}
        res = run_client(client, ["broadcast", "--conns", str(p["conns"]), "--size", str(p["size"]),
                                  "--count", str(p["count"]), "--broadcast-timeout", "30"],
                         server, timeout=180)
        if not res.get("ok"):
            return {"ok": False, "error": res.get("error", "?")}
        return {"ok": True, "value": 1000 * statistics.median(res["latencies_s"]), "unit": "ms",
                "server_cpu_pct": res.get("server_cpu_pct"), "client_cpu_pct": res.get("client_cpu_pct"),
                "machine_cpu_pct": res.get("machine_cpu_pct")}
    finally:
        server.stop()


def run_group(quick: bool = False, rounds: int = 3, workers: int = 2,
              only: Optional[List[str]] = None, workdir: str = DEFAULT_WORKDIR) -> List[Dict[str, Any]]:
    """Measure ``workers`` workers against 1; one row per measurement with the medians and the ratio.

    The ratio is "how many times better with more workers": throughput over
    throughput for echo, latency of 1 worker over latency of N for broadcast.
    """
    os.makedirs(workdir, exist_ok=True)
    client = build_client(workdir)
    params = parameters(quick)
    wanted = [mid for mid in MEASUREMENTS if not only or mid in only]
    raw: Dict[str, Dict[int, List[Dict[str, Any]]]] = {mid: {1: [], workers: []} for mid in wanted}
    for index in range(rounds):
        for mid in wanted:
            order = (1, workers) if index % 2 == 0 else (workers, 1)
            for count in order:
                log("round %d/%d: %s with %d worker(s)" % (index + 1, rounds, mid, count))
                raw[mid][count].append(measure(client, mid, params[mid], count, workdir))
    rows = []
    for mid in wanted:
        row: Dict[str, Any] = {"id": mid, "title": title(mid, params[mid]), "workers": workers}
        for count in (1, workers):
            good = [r for r in raw[mid][count] if r.get("ok")]
            errors = [r.get("error") for r in raw[mid][count] if not r.get("ok")]
            side: Dict[str, Any] = {"runs": len(good), "errors": errors}
            for field in ("value", "server_cpu_pct", "client_cpu_pct", "machine_cpu_pct"):
                values = [r[field] for r in good if r.get(field) is not None]
                side[field] = statistics.median(values) if values else None
            side["unit"] = good[0]["unit"] if good else None
            row["w%d" % count] = side
        one, many = row["w1"]["value"], row["w%d" % workers]["value"]
        if one and many:
            row["ratio"] = one / many if mid.startswith("broadcast") else many / one
        else:
            row["ratio"] = None
        rows.append(row)
    return rows


def _fmt(value: Optional[float], digits: int = 0) -> str:
    return "-" if value is None else "{:,.{}f}".format(value, digits)


def markdown(rows: List[Dict[str, Any]], quick: bool) -> str:
    """The rows as a Markdown table, with the CPU figures needed to read the ratios."""
    if not rows:
        return ""
    n = rows[0]["workers"]
    lines = ["| Measurement | 1 worker | %d workers | ratio | server CPU 1 / %d | client CPU 1 / %d | "
             "machine CPU 1 / %d (of %d00%%) |" % (n, n, n, n, os.cpu_count() or 1),
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        one, many = row["w1"], row["w%d" % n]
        unit = one["unit"] or many["unit"] or ""
        lines.append("| %s | %s %s | %s %s | %s | %s%% / %s%% | %s%% / %s%% | %s%% / %s%% |" % (
            row["title"], _fmt(one["value"], 1 if unit == "ms" else 0), unit,
            _fmt(many["value"], 1 if unit == "ms" else 0), unit,
            "-" if row["ratio"] is None else "%.2fx" % row["ratio"],
            _fmt(one["server_cpu_pct"]), _fmt(many["server_cpu_pct"]),
            _fmt(one["client_cpu_pct"]), _fmt(many["client_cpu_pct"]),
            _fmt(one["machine_cpu_pct"]), _fmt(many["machine_cpu_pct"])))
        for count in (1, n):
            for error in row["w%d" % count]["errors"]:
                lines.append("|   ↳ %d worker(s) failed: %s | | | | | | |" % (count, str(error)[:120]))
    if quick:
        lines.append("")
        lines.append("(--quick: tiny counts, a smoke run; these figures mean nothing.)")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (a smoke run for CI)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, medians reported (default: 3)")
    parser.add_argument("--workers", type=int, default=2, help="workers compared with 1 (default: 2)")
    parser.add_argument("--only", help="comma-separated: %s" % ",".join(MEASUREMENTS))
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR, help="build and output folder")
    args = parser.parse_args(argv)
    only = args.only.split(",") if args.only else None
    if only and set(only) - set(MEASUREMENTS):
        parser.error("unknown measurement(s): %s" % ",".join(sorted(set(only) - set(MEASUREMENTS))))
    rows = run_group(args.quick, max(1, args.rounds if not args.quick else 1), args.workers, only, args.workdir)
    table = markdown(rows, args.quick)
    print(table)
    with open(os.path.join(args.workdir, "results.json"), "w") as f:
        json.dump({"rows": rows, "quick": args.quick, "cpus": os.cpu_count()}, f, indent=2)
    with open(os.path.join(args.workdir, "results.md"), "w") as f:
        f.write(table + "\n")
    failed = [row["id"] for row in rows if row["ratio"] is None]
    if failed:
        log("failed: %s" % ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
