#!/usr/bin/env python3
"""WAMP v2 router throughput: ratchet_sel's router against Crossbar.io, side by side.

Two measurements, each driven by the SAME client, scripts/bench/wamp2_load.py (a
lean stdlib WAMP client on wamp.2.json: one process, one selectors loop, prebuilt
frames, TCP_NODELAY):

- ``rpc``: RPC round trips per second: a callee session answers every INVOCATION
  with YIELD; a caller keeps --window CALLs in flight.
- ``events``: events delivered per second: one publisher keeps at most --window
  publications ahead of the first of --subscribers subscribers (EVENTs counted at
  every subscriber).

Each measurement starts a fresh router (``python -m ratchet_sel wamp --realm realm1``,
one process; Crossbar.io with a generated config: realm1, anonymous may do anything,
one WebSocket transport with json and msgpack, ``scripts/wamp2/crossbar_config.py``);
rounds rotate the order so machine noise hits both alike.  The client's CPU and the
router's CPU (its whole process tree: Crossbar runs a controller and a router worker)
are reported next to each rate, and so is the rate per CPU-second of the router (rate
divided by the router's CPU share): on a machine loaded by other work every process gets
only part of a core, and that figure is what "at least Crossbar's rate on one core"
compares.  A client using far less CPU than the router, and a second client adding no
throughput (``--clients 2``), show the client is not the bottleneck.

Crossbar.io lives in its own venv (default /tmp/ratchet_sel-wamp2/crossbar, made by
``bash scripts/ci_wamp2_interop.sh`` or ``--install``).  When it is not installed the Crossbar
column is skipped with the reason printed and the ratchet_sel figures still shown.

    python3 scripts/bench_wamp2.py                 # 3 rounds x 5 s per measurement
    python3 scripts/bench_wamp2.py --quick         # smoke: 1 round x 1 s
    python3 scripts/bench_wamp2.py --install       # installs Crossbar.io first (~2 minutes)
    python3 scripts/bench.py --wamp2-group ...     # the same, through bench.py
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOAD = os.path.join(ROOT, "scripts", "bench", "wamp2_load.py")
CROSSBAR_CONFIG = os.path.join(ROOT, "scripts", "wamp2", "crossbar_config.py")
DEFAULT_CROSSBAR_VENV = os.path.join(os.environ.get("RATCHET_SEL_WAMP2_DIR", "/tmp/ratchet_sel-wamp2"), "crossbar")
CLK_TCK = os.sysconf("SC_CLK_TCK")
URL_RE = re.compile(r"ws://127\.0\.0\.1:(\d+)/")
START_TIMEOUT = 120.0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def tree_cpu(pid):
    """User+system CPU seconds of pid and all its descendants (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append((int(entry), fields))
    total = 0.0
    todo = [pid]
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return 0.0
    while todo:
        for child, fields in children.get(todo.pop(), []):
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
            todo.append(child)
    return total


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline):
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


class Router:
    """One fresh router process (its own process group), stopped by stop()."""

    def __init__(self, name, crossbar_venv):
        self.name = name
        self.tmp = tempfile.TemporaryDirectory(prefix="ratchet_sel-bench-wamp2-")
        self.log_path = os.path.join(self.tmp.name, "router.log")
        logf = open(self.log_path, "w")
        if name == "crossbar":
            self.port = free_port()
            cbdir = os.path.join(self.tmp.name, ".crossbar")
            os.makedirs(cbdir)
            with open(os.path.join(cbdir, "config.json"), "w") as f:
                f.write(subprocess.check_output([sys.executable, CROSSBAR_CONFIG, str(self.port)], text=True))
            self.proc = subprocess.Popen([os.path.join(crossbar_venv, "bin", "crossbar"), "start", "--cbdir", cbdir,
                                          "--loglevel", "warn"], cwd=self.tmp.name, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
            ok = wait_port(self.port, time.monotonic() + START_TIMEOUT)
        else:
            env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
            self.proc = subprocess.Popen([sys.executable, "-m", "ratchet_sel", "wamp", "--realm", "realm1",
                                          "--host", "127.0.0.1", "--port", "0"],
                                         cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
            self.port = None
            found = threading.Event()

            def drain():
                for line in self.proc.stdout:
                    logf.write(line)
                    logf.flush()
                    m = URL_RE.search(line)
                    if m and not found.is_set():
                        self.port = int(m.group(1))
                        found.set()
                found.set()
            threading.Thread(target=drain, daemon=True).start()
            ok = found.wait(START_TIMEOUT) and self.port is not None
        if not ok:
            tail = self.log_tail()
            self.stop()
            raise SystemExit("%s did not start; its log:\n%s" % (name, tail))

    def log_tail(self):
        with open(self.log_path) as f:
            return "".join(f.readlines()[-30:])

    def cpu(self):
        return tree_cpu(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.tmp.cleanup()


def run_load(router, mode, args):
    """Runs --clients load clients at once; returns summed rate and CPU figures."""
    cmd = [sys.executable, LOAD, mode, "127.0.0.1", str(router.port), "realm1", "--seconds", str(args.seconds),
           "--window", str(args.window), "--subscribers", str(args.subscribers)]
    cpu_before = router.cpu()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(args.clients)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=args.seconds + 60)
        if p.returncode != 0:
            raise SystemExit("load client against %s failed (%s): %s\nrouter log:\n%s"
                             % (router.name, p.returncode, (err or out).strip()[-500:], router.log_tail()))
        results.append(json.loads(out.strip().splitlines()[-1]))
    seconds = max(r["seconds"] for r in results)
    return {"rate": sum(r["rate"] for r in results),
            "client_cpu_share": sum(r["client_cpu"] for r in results) / seconds,
            "router_cpu_share": (router.cpu() - cpu_before) / seconds}


def crossbar_missing(venv):
    """Why Crossbar.io cannot run (None when it can)."""
    exe = os.path.join(venv, "bin", "crossbar")
    if not os.access(exe, os.X_OK):
        return "crossbar is not installed in %s (bash scripts/ci_wamp2_interop.sh or scripts/bench_wamp2.py --install)" % venv
    return None


def summarize(samples):
    rates = [s["rate"] for s in samples]
    per_cpu = [s["rate"] / s["router_cpu_share"] for s in samples if s["router_cpu_share"] > 0]
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "runs": rates,
            "per_router_cpu_second": statistics.median(per_cpu) if per_cpu else 0.0,
            "router_cpu_share": statistics.median(s["router_cpu_share"] for s in samples),
            "client_cpu_share": statistics.median(s["client_cpu_share"] for s in samples)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, 1 s per measurement")
    ap.add_argument("--rounds", type=int, help="rounds (default 3; 1 with --quick)")
    ap.add_argument("--seconds", type=float, help="measuring window per measurement (default 5; 1 with --quick)")
    ap.add_argument("--window", type=int, default=50, help="calls in flight / publications ahead (default 50)")
    ap.add_argument("--subscribers", type=int, default=2, help="subscribers in the events measurement (default 2)")
    ap.add_argument("--clients", type=int, default=1, help="load client processes at once (default 1)")
    ap.add_argument("--only", default="rpc,events", help="rpc,events")
    ap.add_argument("--routers", default="ratchet_sel,crossbar", help="ratchet_sel,crossbar")
    ap.add_argument("--crossbar-venv", default=DEFAULT_CROSSBAR_VENV)
    ap.add_argument("--install", action="store_true", help="install Crossbar.io into --crossbar-venv first")
    ap.add_argument("--json", help="also write the results as JSON")
    ap.add_argument("--workdir", help="accepted for bench.py compatibility (unused)")
    args = ap.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.seconds = args.seconds or (1.0 if args.quick else 5.0)
    if args.install:
        subprocess.check_call(["bash", "-c", 'set -euo pipefail; source "$1"; RATCHET_SEL_WAMP2_DIR="$2"; ensure_wamp2_crossbar',
                               "install", os.path.join(ROOT, "scripts", "wamp2", "lib.sh"),
                               os.path.dirname(args.crossbar_venv)], stdin=subprocess.DEVNULL)
    routers = args.routers.split(",")
    modes = args.only.split(",")
    skipped = {}
    if "crossbar" in routers:
        why = crossbar_missing(args.crossbar_venv)
        if why:
            skipped["crossbar"] = why
            routers.remove("crossbar")
            print("wamp2: Crossbar.io column skipped: " + why, flush=True)
    samples = {(r, m): [] for r in routers for m in modes}
    for rnd in range(args.rounds):
        order = routers[rnd % len(routers):] + routers[:rnd % len(routers)]
        for name in order:
            for mode in modes:
                router = Router(name, args.crossbar_venv)
                try:
                    res = run_load(router, mode, args)
                finally:
                    router.stop()
                samples[(name, mode)].append(res)
                log("round %d %-11s %-6s %9.0f/s  router cpu %3.0f%%  client cpu %3.0f%%"
                    % (rnd + 1, name, mode, res["rate"], 100 * res["router_cpu_share"], 100 * res["client_cpu_share"]))
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    summary = {"%s/%s" % k: summarize(v) for k, v in samples.items()}
    print("WAMP v2 router, same client (scripts/bench/wamp2_load.py, wamp.2.json, window %d, %d client(s)), "
          "%d round(s) x %.0f s, medians [min-max]; load average %s"
          % (args.window, args.clients, args.rounds, args.seconds, " ".join(load)))
    titles = {"rpc": "RPC round trips/s", "events": "events delivered/s (%d subscribers)" % args.subscribers}
    for mode in modes:
        row = []
        for name in routers:
            s = summary["%s/%s" % (name, mode)]
            row.append("%s %8.0f [%.0f-%.0f] (%.0f per router CPU-second; router cpu %3.0f%%, client cpu %3.0f%%)"
                       % (name, s["median"], s["min"], s["max"], s["per_router_cpu_second"],
                          100 * s["router_cpu_share"], 100 * s["client_cpu_share"]))
        line = "  %-36s %s" % (titles[mode], "   ".join(row))
        if "ratchet_sel" in routers and "crossbar" in routers:
            ours, theirs = summary["ratchet_sel/" + mode], summary["crossbar/" + mode]
            line += "   ratio ratchet_sel/crossbar %.2f (per router CPU-second %.2f)" % (
                ours["median"] / theirs["median"], ours["per_router_cpu_second"] / theirs["per_router_cpu_second"])
        elif "crossbar" in skipped:
            line += "   crossbar: skipped"
        print(line, flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"summary": summary, "skipped": skipped, "load": load, "args": vars(args)}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
