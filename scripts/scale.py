#!/usr/bin/env python3
"""Scale run: how many WebSocket connections one process and one host hold, and what they cost.

Scenarios (each on a fresh server, the chat demo ``python -m ratchet_sel chat``):

``one``   one process up to the descriptor limit: it reads RLIMIT_NOFILE,
          raises the soft limit to the hard one, and opens (hard - 1,000)
          connections (the rest is the server's own margin), unless
          ``--one-conns`` says otherwise;
``host``  one host: ``--host-conns`` (100,000) over ``chat --workers N``
          (``--workers``, 6);
``peers`` websockets and aiohttp (scripts/bench/server_*.py, installed into
          this script's own venv, never the project's) at the ``one`` count,
          side by side in the same run.

For each: the time to upgrade every connection, memory per connection (RSS
of every server process after, minus before, over the count), one
broadcast to all (``--broadcasts`` of them: the time to the last delivery,
p50/p99 of the delivery times at the clients, server CPU per delivery from
/proc utime+stime of every server process), and ping latency while all are
open (sequential WebSocket pings over 200 connections).

The load is scripts/scale/wscrowd.c (C, epoll, real RFC 6455 handshakes,
masked frames, server pings answered, a receive timestamp per connection),
built with gcc.  A process holds at most ~19,000 connections (its own
descriptor limit), so several run side by side (16,000 each at most), each
from its own source address 127.0.0.2, .3, ... (a source address and the
server's port leave 65,535 source ports; the kernel's ephemeral range,
ip_local_port_range, would leave ~28,000).  Each client binds its source
ports itself from 10000-65000: the kernel's search for a free ephemeral port
took milliseconds per connect() at 60,000 connections, which made the first
version of the client the bottleneck (its connects starved its own reads and
the servers answered 408).  To show the client is not the bottleneck the
table gives the clients' CPU time against the server's during the broadcasts.

    python3 scripts/scale.py                 # one + peers + host at 100,000 (~5 min)
    python3 scripts/scale.py --runs 3        # the same three times: medians and spread
    python3 scripts/scale.py --quick         # CI: 10,000 over --workers 2; exit 1 on any loss,
                                             # crash, or memory per connection over --max-kib
    python3 scripts/scale.py --only one,peers --json /tmp/scale.json

Exit status: 0 when every connection opened, every delivery arrived, no server
crashed and memory per connection is within ``--max-kib``; 1 otherwise; 2 for
bad usage.
"""

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from scale_client import Crowd, build_wscrowd  # noqa: E402

WORKDIR = "/tmp/ratchet_sel-scale"
PEERS = {"websockets": "server_websockets.py", "aiohttp": "server_aiohttp.py"}
PEER_PACKAGES = ["websockets", "aiohttp"]
PER_CROWD = 16000          # connections per client process (its hard RLIMIT_NOFILE is 20,000)
SOURCE_PORTS = "10000-65000"  # source ports a client process binds itself, on its own source address
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(msg: str) -> None:
    print("[scale %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def read_int(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def machine_limits() -> Dict[str, Any]:
    """The limits that bound the counts; raises this process's soft RLIMIT_NOFILE to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except OSError:
        low, high = 32768, 60999
    nr_open = read_int("/proc/sys/fs/nr_open")
    return {"nofile_soft_was": soft, "nofile_hard": hard, "fs_nr_open": nr_open,
            "fs_file_max": read_int("/proc/sys/fs/file-max"), "port_range": [low, high],
            "ports_per_source": high - low + 1, "somaxconn": read_int("/proc/sys/net/core/somaxconn"),
            "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
            "bound": ("one process: the hard RLIMIT_NOFILE (%d; raising it needs root, and fs.nr_open is %s); "
                      "one host: memory and CPU, not ports (each client process has its own 127.x source "
                      "address and picks its source ports; the kernel's ephemeral range would give %d per "
                      "source address)" % (hard, nr_open, high - low + 1))}


class Server:
    """A server process (and its children: workers) with its log; RSS and CPU of the whole tree."""

    LISTENING = re.compile(r"listening on http://[^:]+:(\d+)/|^LISTENING (\d+)")

    def __init__(self, name: str, argv: List[str], workers: int = 1) -> None:
        self.name = name
        self.log_path = os.path.join(WORKDIR, "%s.log" % name)
        self.log_file = open(self.log_path, "w")
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.proc = subprocess.Popen(argv, stdout=self.log_file, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=_raise_nofile, start_new_session=True)
        self.port = self._wait_ready(workers)
        self.first_pids = self.pids()

    def _wait_ready(self, workers: int) -> int:
        deadline = time.monotonic() + 60
        port = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("%s exited at start:\n%s" % (self.name, self.log_text()[-3000:]))
            text = self.log_text()
            m = self.LISTENING.search(text) or re.search(r"^LISTENING (\d+)", text, re.M)
            if m:
                port = int(m.group(1) or m.group(2))
            if port and (workers <= 1 or text.count(") serving") >= workers):
                return port
            time.sleep(0.1)
        raise SystemExit("%s did not start in 60 s:\n%s" % (self.name, self.log_text()[-3000:]))

    def log_text(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def pids(self) -> List[int]:
        """The server's pid and its children's (workers)."""
        pids = [self.proc.pid]
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        return pids

    def rss_kib(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                with open("/proc/%d/statm" % pid) as f:
                    total += int(f.read().split()[1]) * PAGE // 1024
            except (OSError, IndexError, ValueError):
                pass
        return total

    def cpu_s(self) -> float:
        """utime + stime of every process of the server, in seconds."""
        total = 0
        for pid in self.pids():
            try:
                with open("/proc/%d/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
        return total / CLK_TCK

    def crashed(self) -> Optional[str]:
        """Why the server is not the one started (exited, or a worker replaced), or None."""
        if self.proc.poll() is not None:
            return "exited with %s" % self.proc.returncode
        if sorted(self.pids()) != sorted(self.first_pids):
            return "processes changed: %s -> %s (a worker died)" % (self.first_pids, self.pids())
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log_file.close()


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def limits_per_client() -> int:
    """The most connections one client process can hold: its hard RLIMIT_NOFILE, less a margin."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return (1 << 20) if hard == resource.RLIM_INFINITY else hard - 100


def spread(total: int, parts: int) -> List[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def open_crowds(exe: str, server: Server, total: int, pending: int, per_client: int) -> Dict[str, Any]:
    """Open ``total`` connections from as many client processes and source addresses as they need."""
    ncrowds = max(1, -(-total // per_client))
    # Each client process has its own source address and picks its source ports itself
    # (SOURCE_PORTS): the kernel's own search costs milliseconds per connect() once tens of
    # thousands of ephemeral ports are taken, and that made the client the bottleneck.
    sources = ["127.0.0.%d" % (2 + i) for i in range(ncrowds)]
    t0 = time.monotonic()
    cpu0 = server.cpu_s()
    seed = int(time.time()) % 1000  # each run starts elsewhere in the port range
    crowds = [Crowd(exe, server.port, n, sources=[sources[i]], ports=SOURCE_PORTS, pending=pending, timeout=180,
                    seed=seed + i) for i, n in enumerate(spread(total, ncrowds))]
    results = [c.wait_open() for c in crowds]
    seconds = time.monotonic() - t0
    return {"crowds": crowds, "opened": sum(r[0] for r in results), "failed": sum(r[1] for r in results),
            "open_s": seconds, "open_server_cpu_s": server.cpu_s() - cpu0,
            "open_client_cpu_s": sum(c.stats()["cpu_s"] for c in crowds),
            "errors": sorted({r[3] for r in results if r[3] != "-"}), "sources": sources}


def broadcast_once(crowds: Sequence[Crowd], server: Server, tag: str, prefix: str,
                   sender_included: bool) -> Dict[str, Any]:
    """One message from connection 0 of the first crowd to every other; times and CPU."""
    opened = [c.wait_open()[0] for c in crowds]
    expected = [n - (0 if sender_included or i else 1) for i, n in enumerate(opened)]
    for crowd in crowds:
        crowd.arm(tag)
    crowd_cpu0 = [c.stats()["cpu_s"] for c in crowds]
    cpu0 = server.cpu_s()
    t_send = crowds[0].send(0, prefix + tag + "-" + "x" * 32)
    files = [os.path.join(WORKDIR, "rx-%d.txt" % i) for i in range(len(crowds))]
    for crowd, want, path in zip(crowds, expected, files):
        crowd.start("WAIT %d 120 %s" % (want, path))
    got = [int(crowd.answer()[1]) for crowd in crowds]
    server_cpu = server.cpu_s() - cpu0
    crowd_cpu = [c.stats()["cpu_s"] - before for c, before in zip(crowds, crowd_cpu0)]
    client_cpu = sum(crowd_cpu)
    delays: List[float] = []
    for path in files:
        with open(path) as f:
            delays += [float(line) - t_send for line in f if line.strip()]
    delays.sort()
    delivered = sum(got)
    return {"expected": sum(expected), "delivered": delivered,
            "last_s": delays[-1] if delays else None,
            "p50_ms": 1000 * delays[len(delays) // 2] if delays else None,
            "p99_ms": 1000 * delays[int(0.99 * (len(delays) - 1))] if delays else None,
            "server_cpu_s": server_cpu, "client_cpu_s": client_cpu,
            # the busiest client process's CPU over the time to the last delivery: near 1, it limits the figures
            "client_busiest": max(crowd_cpu) / delays[-1] if delays and delays[-1] > 0 else None,
            "server_us_per_delivery": 1e6 * server_cpu / delivered if delivered else None}


def measure(name: str, exe: str, server: Server, conns: int, args: argparse.Namespace, *,
            prefix: str = "", sender_included: bool = False) -> Dict[str, Any]:
    """Open ``conns`` connections to ``server``, then memory, broadcasts and pings."""
    time.sleep(1.0)  # let the started server settle before its baseline
    rss0 = server.rss_kib()
    log("%s: opening %d connections (server pids %s)" % (name, conns, server.pids()))
    opened = open_crowds(exe, server, conns, args.pending, args.per_client)
    crowds = opened.pop("crowds")
    try:
        time.sleep(1.0)
        rss1 = server.rss_kib()
        n = opened["opened"]
        result: Dict[str, Any] = dict(opened, name=name, wanted=conns, rss_before_kib=rss0, rss_after_kib=rss1,
                                      kib_per_conn=(rss1 - rss0) / n if n else None,
                                      server_processes=len(server.pids()))
        log("%s: %d open, %d failed in %.1f s; %.2f KiB per connection"
            % (name, n, opened["failed"], opened["open_s"], result["kib_per_conn"] or 0))
        result["broadcasts"] = [broadcast_once(crowds, server, "b%d" % k, prefix, sender_included)
                                for k in range(args.broadcasts)] if n else []
        for b in result["broadcasts"]:
            log("%s: broadcast %d/%d delivered, last %.3f s, p50 %.1f ms, p99 %.1f ms, %.2f us CPU per delivery"
                % (name, b["delivered"], b["expected"], b["last_s"] or -1, b["p50_ms"] or -1, b["p99_ms"] or -1,
                   b["server_us_per_delivery"] or -1))
        if args.hold:
            log("%s: holding the connections %g s (keepalive pings meanwhile: %s)" % (name, args.hold, args.keepalive))
            time.sleep(args.hold)
        pong = crowds[0].command("PING 200 5") if n else ["PONG", "0", "0", "0", "0"]
        result["ping"] = {"answered": int(pong[1]), "p50_ms": float(pong[2]), "p99_ms": float(pong[3]),
                          "max_ms": float(pong[4])}
        stats = [c.stats() for c in crowds]
        result["closed_by_server"] = sum(s["closed_by_server"] for s in stats)
        result["pings_answered"] = sum(s["pings_answered"] for s in stats)
        result["want_pings"] = bool(args.keepalive and args.hold >= 2 * args.keepalive)
        result["crash"] = server.crashed()
        result["log_lines"] = server.log_text().count("\n")
        return result
    finally:
        for crowd in crowds:
            crowd.close()


def chat_argv(workers: int, max_conns: int, keepalive: Optional[float]) -> List[str]:
    argv = [sys.executable, "-m", "ratchet_sel", "chat", "--host", "127.0.0.1", "--port", "0",
            "--max-connections", str(max_conns), "--log-level", "INFO"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    if keepalive:
        argv += ["--keepalive", str(keepalive)]
    return argv


def peer_python() -> str:
    """This script's own venv with websockets and aiohttp (created at the first use)."""
    venv = os.path.join(WORKDIR, "venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        log("creating %s with %s" % (venv, ", ".join(PEER_PACKAGES)))
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    check = subprocess.run([py, "-c", "import websockets, aiohttp"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q"] + PEER_PACKAGES, check=True)
    return py


def run_scenario(kind: str, exe: str, args: argparse.Namespace, limits: Dict[str, Any]) -> List[Dict[str, Any]]:
    one_conns = args.one_conns or limits["nofile_hard"] - 1000
    if kind == "one":
        server = Server("one", chat_argv(1, one_conns + 100, args.keepalive))
        try:
            return [measure("ratchet_sel, one process", exe, server, one_conns, args)]
        finally:
            server.stop()
    if kind == "host":
        per_worker = min(limits["nofile_hard"] - 200, 2 * args.host_conns // args.workers + 100)
        server = Server("host", chat_argv(args.workers, per_worker, args.keepalive), workers=args.workers)
        try:
            return [measure("ratchet_sel, --workers %d" % args.workers, exe, server, args.host_conns, args)]
        finally:
            server.stop()
    results = []
    py = peer_python()
    for peer, script in PEERS.items():
        server = Server(peer, [py, os.path.join(ROOT, "scripts", "bench", script)])
        try:
            results.append(measure(peer, exe, server, one_conns, args, prefix="broadcast:", sender_included=True))
        finally:
            server.stop()
    return results


def summarise(r: Dict[str, Any]) -> Dict[str, Any]:
    """One scenario's figures: the broadcasts' medians, CPU over all of them, the client's share."""
    bcs = r["broadcasts"]
    delivered = sum(b["delivered"] for b in bcs)

    def med(key: str) -> Optional[float]:
        values = [b[key] for b in bcs if b[key] is not None]
        return statistics.median(values) if values else None

    server_cpu = sum(b["server_cpu_s"] for b in bcs)
    return {"open": r["opened"], "failed": r["wanted"] - r["opened"], "wanted": r["wanted"], "open_s": r["open_s"], "kib_per_conn": r["kib_per_conn"],
            "bc_last_s": med("last_s"), "bc_p50_ms": med("p50_ms"), "bc_p99_ms": med("p99_ms"),
            "us_per_delivery": 1e6 * server_cpu / delivered if delivered else None,
            "ping_p50_ms": r["ping"]["p50_ms"], "ping_p99_ms": r["ping"]["p99_ms"],
            "client_vs_server_cpu": (sum(b["client_cpu_s"] for b in bcs) / server_cpu) if server_cpu else None,
            "client_busiest": med("client_busiest")}


def problems(r: Dict[str, Any], max_kib: float) -> List[str]:
    """What makes a ratchet_sel scenario a failure: lost connections or deliveries, a crash, too much memory.

    The peers' figures are reported, never judged."""
    found: List[str] = []
    if not r["name"].startswith("ratchet_sel"):
        return found
    if r["failed"] or r["opened"] != r["wanted"]:
        found.append("%s: %d of %d connections opened (%s)" % (r["name"], r["opened"], r["wanted"],
                                                                ", ".join(r["errors"]) or "no error"))
    for k, b in enumerate(r["broadcasts"]):
        if b["delivered"] != b["expected"]:
            found.append("%s: broadcast %d reached %d of %d" % (r["name"], k + 1, b["delivered"], b["expected"]))
    if r["closed_by_server"]:
        found.append("%s: the server closed %d connections" % (r["name"], r["closed_by_server"]))
    if r.get("want_pings") and r["pings_answered"] < r["opened"]:
        found.append("%s: only %d keepalive pings answered for %d connections" % (r["name"], r["pings_answered"],
                                                                                 r["opened"]))
    if r["crash"]:
        found.append("%s: server %s" % (r["name"], r["crash"]))
    if r["kib_per_conn"] is not None and r["kib_per_conn"] > max_kib:
        found.append("%s: %.2f KiB per connection, over --max-kib %g" % (r["name"], r["kib_per_conn"], max_kib))
    return found


COLUMNS = [("open", "open", "%d"), ("failed", "failed", "%d"), ("open_s", "upgrade all (s)", "%.1f"), ("kib_per_conn", "KiB/conn", "%.2f"),
           ("bc_last_s", "bcast last (s)", "%.3f"), ("bc_p50_ms", "bcast p50 (ms)", "%.0f"),
           ("bc_p99_ms", "bcast p99 (ms)", "%.0f"), ("us_per_delivery", "CPU us/delivery", "%.1f"),
           ("ping_p50_ms", "ping p50 (ms)", "%.2f"), ("ping_p99_ms", "ping p99 (ms)", "%.2f"),
           ("client_vs_server_cpu", "client/server CPU", "%.2f"), ("client_busiest", "busiest client", "%.2f")]


def table(runs: List[List[Dict[str, Any]]]) -> str:
    """Markdown: one row per scenario, the median over the runs and (with several) the spread."""
    names: List[str] = []
    for run in runs:
        for r in run:
            if r["name"] not in names:
                names.append(r["name"])
    lines = ["| server | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for name in names:
        sums = [summarise(r) for run in runs for r in run if r["name"] == name]
        cells = []
        for key, _, fmt in COLUMNS:
            values = [s[key] for s in sums if s[key] is not None]
            if not values:
                cells.append("n.a.")
            elif len(values) == 1:
                cells.append(fmt % values[0])
            else:
                cells.append((fmt + " (" + fmt + "-" + fmt + ")") % (statistics.median(values), min(values),
                                                                   max(values)))
        lines.append("| %s | %s |" % (name, " | ".join(cells)))
    return "\n".join(lines)


def main() -> int:
    global WORKDIR
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI: 10,000 connections over --workers 2 only")
    ap.add_argument("--only", default="one,peers,host", help="scenarios: one, peers, host (default: all)")
    ap.add_argument("--runs", type=int, default=1, help="repeat everything; the table gives medians and spread")
    ap.add_argument("--one-conns", type=int, help="connections of the one-process run (default: hard limit - 1000)")
    ap.add_argument("--host-conns", type=int, default=100000)
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--broadcasts", type=int, default=3, help="broadcasts per scenario (default 3)")
    ap.add_argument("--keepalive", type=float, help="the server's keepalive interval (default: off; --quick: 2 s)")
    ap.add_argument("--hold", type=float, default=0.0,
                    help="seconds to hold every connection open before the pings (--quick: 5, with keepalive 2 s: "
                         "every connection must answer the server's pings and none be closed)")
    ap.add_argument("--per-client", type=int, default=PER_CROWD,
                    help="connections per client process (default %(default)s; fewer: more client processes, "
                         "to check that the client does not limit the figures)")
    ap.add_argument("--pending", type=int, default=512, help="connections being opened at once per client process")
    ap.add_argument("--max-kib", type=float, default=16.0, help="fail above this memory per connection (KiB)")
    ap.add_argument("--workdir", default=WORKDIR)
    ap.add_argument("--json", help="write every figure to this file")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    if args.quick:
        kinds, args.host_conns, args.workers = ["host"], 10000, 2
        args.broadcasts = min(args.broadcasts, 2)
        args.keepalive = args.keepalive or 2.0
        args.hold = args.hold or 5.0
    if not kinds or set(kinds) - {"one", "peers", "host"} or args.runs < 1 or args.workers < 1:
        ap.error("--only takes one, peers, host; --runs and --workers at least 1")
    if not 1 <= args.per_client <= limits_per_client():
        ap.error("--per-client must be from 1 to %d (the client's own descriptor limit)" % limits_per_client())
    WORKDIR = args.workdir
    os.makedirs(WORKDIR, exist_ok=True)
    limits = machine_limits()
    log("limits: %s" % limits["bound"])
    exe = build_wscrowd(WORKDIR)
    runs: List[List[Dict[str, Any]]] = []
    started = time.monotonic()
    for run in range(args.runs):
        log("run %d of %d (load %s)" % (run + 1, args.runs, " ".join("%.2f" % x for x in os.getloadavg())))
        runs.append([r for kind in kinds for r in run_scenario(kind, exe, args, limits)])
    found = [p for run in runs for r in run for p in problems(r, args.max_kib)]
    limits["loadavg_end"] = os.getloadavg()
    print(table(runs))
    print("\n%s\nload average at the start %s, at the end %s, %d CPUs; %.0f s in all"
          % (limits["bound"], " ".join("%.2f" % x for x in limits["loadavg_start"]),
             " ".join("%.2f" % x for x in limits["loadavg_end"]), limits["cpus"], time.monotonic() - started))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"limits": limits, "args": vars(args), "runs": runs, "problems": found,
                       "table": table(runs)}, f, indent=1)
    for p in found:
        print("FAIL: " + p)
    print("OK: no connection or delivery lost, no crash" if not found else "FAILED (%d problems)" % len(found))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
