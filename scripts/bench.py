#!/usr/bin/env python3
"""Performance benchmark: ratchet_sel against other Python WebSocket servers.

Peers (installed into their own venv, never project dependencies): websockets,
aiohttp, simple-websocket-server, websocket-server.  Each server runs in its own
process on 127.0.0.1 (scripts/bench/server_*.py: echo, plus a text message
"broadcast:<payload>" that fans <payload> out to every client with the
implementation's own broadcast method).  The load comes from a small C client
(scripts/bench/wsload.c, epoll, masked frames) built with gcc (with zlib, for the
`deflate` group: permessage-deflate memory per idle connection, before and after
one message, and 16 KiB JSON echo, with each server's default compression).  Every
measurement starts a fresh server process; rounds interleave the servers (the
order rotates each round) so that machine noise hits all of them alike.

    python3 scripts/bench.py                      # full run (~15 min), 3 rounds
    python3 scripts/bench.py --quick              # smoke run (CI): tiny counts, no speed assertion
    python3 scripts/bench.py --servers ratchet_sel,websockets --only echo,broadcast --rounds 5
    python3 scripts/bench.py --only deflate --rounds 3   # permessage-deflate only
    python3 scripts/bench.py --workers-group             # prefork: --workers 2 against --workers 1
    python3 scripts/bench.py --redis-group               # fan-out through Redis against one process
    python3 scripts/bench.py --wamp2-group               # WAMP v2 RPC/events: our router against Crossbar.io
                                                   # (scripts/bench_wamp2.py; the Crossbar column is skipped,
                                                   # with the reason printed, when it is not installed)
    python3 scripts/bench.py --baseline /tmp/base --servers ratchet_sel,ratchet_sel-before,websockets
                                                   # before/after a change: another checkout's ratchet_sel
                                                   # (C accelerator built in place there) side by side

Prints medians over the rounds and each server's ratio against websockets
measured in the same run; writes a JSON file and a Markdown table
(default: /tmp/ratchet_sel-bench/results.json and results.md).
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import platform
import resource
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_SRC = os.path.join(ROOT, "scripts", "bench")
DEFAULT_WORKDIR = "/tmp/ratchet_sel-bench"
PEER_PACKAGES = ["websockets", "aiohttp", "simple-websocket-server", "websocket-server"]
PEER_MODULES = ["websockets", "aiohttp", "simple_websocket_server", "websocket_server"]
REFERENCE = "websockets"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

# The floors are not peers: they say what the same work costs with nothing but
# the socket calls (see scripts/bench/server_floor.py and --bare-broadcast).
ECHO_IDS = ("echo_1", "echo_50", "echo_1000", "echo_64k", "echo_1m")
BROADCAST_IDS = ("broadcast_1000", "broadcast_10000")
ALL_IDS = ECHO_IDS + BROADCAST_IDS + ("memory", "handshake", "deflate_memory", "deflate_memory_msg", "deflate_echo")


def only(ids, why):
    """The n.a. map of a floor or variant measured on ``ids`` alone."""
    return {m: why for m in ALL_IDS if m not in ids}


# name -> (server script, package for the version, measurements it cannot do and why)
SERVERS = {
    "ratchet_sel": ("server_ratchet_sel.py", None, {}),
    "ratchet_sel-pure": ("server_ratchet_sel.py", None,
                         only(("echo_64k", "echo_1m"), "pure-Python masking only matters for large messages")),
    "floor": ("server_floor.py", None, only(ECHO_IDS, "the floor server only echoes")),
    "send-loop": ("server_ratchet_sel.py", None, only(BROADCAST_IDS, "the send-loop floor only broadcasts")),
    "websockets": ("server_websockets.py", "websockets", {}),
    "aiohttp": ("server_aiohttp.py", "aiohttp", {}),
    "simple-websocket-server": ("server_simple_websocket_server.py", "simple-websocket-server",
                                dict(dict.fromkeys(("deflate_memory", "deflate_memory_msg", "deflate_echo"),
                                                   "no permessage-deflate in simple-websocket-server"),
                                     echo_1m="not run at 1 MiB: about 60 msg/s at 64 KiB already")),
    "websocket-server": ("server_websocket_server.py", "websocket-server",
                         dict({"echo_64k": "no binary frames in websocket-server",
                               "echo_1m": "no binary frames in websocket-server"},
                              **dict.fromkeys(("deflate_memory", "deflate_memory_msg", "deflate_echo"),
                                              "no permessage-deflate in websocket-server"))),
}

# Not peers: measured only where they mean something (n.a. elsewhere, by design).
VARIANTS = ("ratchet_sel-pure", "floor", "send-loop")
# Extra arguments and environment of the variants that share a script.
SERVER_ARGS = {"send-loop": ["--bare-broadcast"]}
SERVER_ENV = {"ratchet_sel-pure": {"RATCHET_SEL_NO_SPEEDUPS": "1"}}

GROUPS = {
    "echo": ["echo_1", "echo_50", "echo_1000"],
    "echo64k": ["echo_64k"],
    "echo1m": ["echo_1m"],
    "fresh": ["echo_50_fresh", "echo_64k_fresh", "echo_1m_fresh"],
    "broadcast": ["broadcast_1000", "broadcast_10000"],
    "handshake": ["handshake"],
    "memory": ["memory"],
    "unmask": ["unmask"],
    "deflate": ["deflate_memory", "deflate_memory_msg", "deflate_echo"],
}
ORDER = ["echo_1", "echo_50", "echo_50_fresh", "echo_1000", "echo_64k", "echo_64k_fresh", "echo_1m", "echo_1m_fresh",
         "broadcast_1000", "broadcast_10000",
         "memory", "handshake", "deflate_memory", "deflate_memory_msg", "deflate_echo", "unmask"]
DEFLATE = ("deflate_memory", "deflate_memory_msg", "deflate_echo")
MEMORY = ("memory", "deflate_memory", "deflate_memory_msg")
FRESH_SUFFIX = "_fresh"


def base_id(mid):
    """The measurement an id names, without its state: echo_50_fresh -> echo_50."""
    return mid[:-len(FRESH_SUFFIX)] if mid.endswith(FRESH_SUFFIX) else mid


def is_fresh(ctx, mid):
    """Does this measurement run on a server that never saw a connection close?"""
    return mid.endswith(FRESH_SUFFIX) or ctx.fresh


def scale(quick):
    """The parameters of every measurement, full or --quick."""
    if quick:
        w, d = 0.15, 0.35
        return {
            "echo_1": dict(conns=1, size=32, warmup=w, duration=d),
            "echo_50": dict(conns=10, size=32, warmup=w, duration=d),
            "echo_1000": dict(conns=50, size=32, warmup=w, duration=d),
            "echo_64k": dict(conns=2, size=65536, warmup=w, duration=d),
            "echo_1m": dict(conns=1, size=1024 * 1024, warmup=w, duration=d),
            "broadcast_1000": dict(conns=20, size=32, count=3),
            "broadcast_10000": dict(conns=200, size=32, count=3),
            "memory": dict(conns=200, settle=0.3),
            "handshake": dict(concurrency=10, warmup=w, duration=d),
            "deflate_memory": dict(conns=100, settle=0.3),
            "deflate_memory_msg": dict(conns=100, settle=0.3, size=2048),
            "deflate_echo": dict(conns=5, size=16384, warmup=w, duration=d),
            "unmask": dict(size=1024 * 1024, min_time=0.05),
        }
    w, d = 1.0, 3.0
    return {
        "echo_1": dict(conns=1, size=32, warmup=w, duration=d),
        "echo_50": dict(conns=50, size=32, warmup=w, duration=d),
        "echo_1000": dict(conns=1000, size=32, warmup=w, duration=d),
        "echo_64k": dict(conns=10, size=65536, warmup=w, duration=d),
        "echo_1m": dict(conns=4, size=1024 * 1024, warmup=w, duration=d),
        "broadcast_1000": dict(conns=1000, size=32, count=50),
        "broadcast_10000": dict(conns=10000, size=32, count=30),
        "memory": dict(conns=10000, settle=1.5),
        "handshake": dict(concurrency=50, warmup=w, duration=d),
        "deflate_memory": dict(conns=2000, settle=1.5),
        "deflate_memory_msg": dict(conns=2000, settle=1.5, size=2048),
        "deflate_echo": dict(conns=20, size=16384, warmup=w, duration=d),
        "unmask": dict(size=1024 * 1024, min_time=0.3),
    }


def title(mid, p):
    if mid.endswith(FRESH_SUFFIX):
        return title(base_id(mid), p) + ", fresh server"
    if mid == "deflate_memory":
        return "Deflate: memory per idle conn (no message yet), %s conns" % "{:,}".format(p["conns"])
    if mid == "deflate_memory_msg":
        return "Deflate: memory per idle conn after one %d KiB message, %s conns" % (
            p["size"] // 1024, "{:,}".format(p["conns"]))
    if mid == "deflate_echo":
        return "Deflate: echo %d KiB JSON text, %s conns" % (p["size"] // 1024, "{:,}".format(p["conns"]))
    if mid.startswith("echo_"):
        if p["size"] >= 1024 * 1024:
            return "Echo %d MiB binary, %s conns" % (p["size"] // 2 ** 20, "{:,}".format(p["conns"]))
        if p["size"] >= 1024:
            return "Echo %d KiB binary, %s conns" % (p["size"] // 1024, "{:,}".format(p["conns"]))
        return "Echo %d B text, %s conn%s" % (p["size"], "{:,}".format(p["conns"]), "s" if p["conns"] > 1 else "")
    if mid.startswith("broadcast_"):
        return "Broadcast %d B to %s conns" % (p["size"], "{:,}".format(p["conns"]))
    if mid == "memory":
        return "Memory per idle conn, %s conns" % "{:,}".format(p["conns"])
    if mid == "handshake":
        return "Handshakes (connect, upgrade, close), %d at a time" % p["concurrency"]
    return "Unmask %d KiB" % (p["size"] // 1024)


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


# -- setup ---------------------------------------------------------------------------
def ensure_venv(venv, upgrade):
    """A venv with the peers (latest from PyPI at creation; --upgrade-peers re-checks)."""
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        log("creating the peers' venv in %s" % venv)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        upgrade = True
    probe = subprocess.run([py, "-c", "import " + ", ".join(PEER_MODULES)], capture_output=True)
    if upgrade or probe.returncode != 0:
        log("installing %s into %s" % (", ".join(PEER_PACKAGES), venv))
        subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-U"] + PEER_PACKAGES,
                       check=True)
    return py


def versions(py):
    code = ("import importlib.metadata as m, json, platform\n"
            "v = {'python': platform.python_version()}\n"
            "for p in %r:\n"
            "    try: v[p] = m.version(p)\n"
            "    except Exception: v[p] = None\n"
            "print(json.dumps(v))" % (PEER_PACKAGES,))
    out = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


ZLIB_MISSING = ("the load client was built without zlib (no zlib.h? install zlib1g-dev or zlib-devel), "
                "so it cannot negotiate permessage-deflate")


def build_client(workdir):
    """Build wsload (with zlib for the deflate group when zlib.h is there); returns (path, has_zlib)."""
    src = os.path.join(BENCH_SRC, "wsload.c")
    exe = os.path.join(workdir, "wsload")
    flag = exe + ".zlib"    # marks a build with zlib
    stamp = exe + ".source"  # the hash of the source it was built from
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    built_from = open(stamp).read().strip() if os.path.exists(stamp) else None
    # (a build without zlib is tried again each run: zlib may have been installed since)
    if not os.path.exists(exe) or not os.path.exists(flag) or built_from != digest:
        cc = shutil.which("gcc") or shutil.which("cc")
        if not cc:
            raise SystemExit("bench.py needs gcc to build the load client (scripts/bench/wsload.c)")
        log("building %s" % exe)
        for old in (flag, stamp):
            if os.path.exists(old):
                os.unlink(old)
        out = subprocess.run([cc, "-O2", "-DWSLOAD_ZLIB", "-o", exe, src, "-lz"], capture_output=True, text=True)
        if out.returncode == 0:
            open(flag, "w").close()
        else:
            log("building wsload with zlib failed (%s); building it without: the deflate measurements will "
                "fail" % (out.stderr.strip().splitlines() or ["?"])[-1][:200])
            subprocess.run([cc, "-O2", "-o", exe, src], check=True)
        with open(stamp, "w") as f:
            f.write(digest)
    return exe, os.path.exists(flag)


def json_doc(seed, size):
    """A deterministic, realistic JSON document (a list of user records) of at most ``size`` bytes."""
    import random
    rng = random.Random(seed)
    first = ["Ada", "Grace", "Linus", "Ken", "Barbara", "Edsger", "Donald", "Margaret", "Dennis", "Frances",
             "Alan", "Radia"]
    last = ["Lovelace", "Hopper", "Torvalds", "Thompson", "Liskov", "Dijkstra", "Knuth", "Hamilton", "Ritchie",
            "Allen", "Turing", "Perlman"]
    statuses = ["active", "idle", "suspended", "pending", "deleted"]
    tags = ["admin", "beta", "eu", "us", "mobile", "desktop", "trial", "paid"]
    items, out = [], "[]"
    while True:
        fn, ln = rng.choice(first), rng.choice(last)
        items.append({"id": seed * 100000 + len(items) + 1, "name": "%s %s" % (fn, ln),
                      "email": "%s.%s%d@example.com" % (fn.lower(), ln.lower(), rng.randrange(100)),
                      "status": rng.choice(statuses), "score": round(rng.uniform(0, 100), 2),
                      "visits": rng.randrange(10000), "tags": rng.sample(tags, rng.randrange(1, 4)),
                      "last_seen": "2026-%02d-%02dT%02d:%02d:%02dZ" % (
                          rng.randrange(1, 13), rng.randrange(1, 29), rng.randrange(24), rng.randrange(60),
                          rng.randrange(60))})
        s = json.dumps(items, separators=(",", ":"))
        if len(s) > size:
            return out
        out = s


def payload_file(ctx, size, docs=4):
    """WORKDIR/deflate_<size>.txt: ``docs`` different JSON documents of about ``size`` bytes, one per line.

    Several documents, so that a server compressing with context takeover and a
    32 KiB window cannot just point back at the identical previous message."""
    path = os.path.join(ctx.workdir, "deflate_%d.txt" % size)
    with open(path, "w") as f:
        for k in range(docs):
            f.write(json_doc(k + 1, size) + "\n")
    return path


def machine_info():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024 // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": mem, "kernel": platform.release(),
            "nofile_hard": resource.getrlimit(resource.RLIMIT_NOFILE)[1]}


# -- processes -------------------------------------------------------------------------
LIVE = set()


def _die_with_parent():
    """In a child before exec: get SIGKILL when the harness dies, however it dies (Linux)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _on_sigterm(*_):
    for proc in list(LIVE):
        try:
            proc.kill()
        except OSError:
            pass
    os._exit(143)


def kill_all():
    for proc in list(LIVE):
        stop_process(proc, grace=2.0)


def stop_process(proc, grace=5.0):
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except ProcessLookupError:
            pass
    LIVE.discard(proc)


def proc_cpu(pid):
    """utime + stime of a process (all its threads), in seconds; None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def proc_rss_kib(pid):
    try:
        with open("/proc/%d/statm" % pid) as f:
            return int(f.read().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return None


class LineReader:
    """Lines from a child's stdout, with a deadline."""

    def __init__(self, stream):
        self.stream = stream
        self.sel = selectors.DefaultSelector()
        self.sel.register(stream, selectors.EVENT_READ)
        self.buf = b""

    def readline(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sel.select(left):
                return None
            chunk = os.read(self.stream.fileno(), 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def close(self):
        self.sel.close()


class Server:
    def __init__(self, ctx, name, profile_path=None, extra_args=()):
        script = os.path.join(BENCH_SRC, SERVERS[name][0])
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("RATCHET_SEL_NO_SPEEDUPS", None)  # only the -pure variant sets it
        env.update(SERVER_ENV.get(name, {}))
        extra_args = list(SERVER_ARGS.get(name, [])) + list(extra_args)
        if profile_path:
            env["BENCH_PROFILE"] = profile_path
        self.err_path = os.path.join(ctx.workdir, "server-%s.err" % name)
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([ctx.py, script] + list(extra_args), stdout=subprocess.PIPE, stderr=self.err,
                                     stdin=subprocess.DEVNULL, cwd=ROOT, env=env, preexec_fn=_die_with_parent)
        LIVE.add(self.proc)
        self.reader = LineReader(self.proc.stdout)
        self.port = None
        line = self.reader.readline(time.monotonic() + 30)
        if line and line.startswith("LISTENING "):
            self.port = int(line.split()[1])

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stderr_tail(self):
        """The last line of the server's stderr (the exception, when it died of one)."""
        try:
            with open(self.err_path, "rb") as f:
                lines = [x.strip() for x in f.read().decode("utf-8", "replace").splitlines() if x.strip()]
            return lines[-1][:200] if lines else ""
        except OSError:
            return ""

    def stop(self):
        died = self.proc.poll()
        stop_process(self.proc)
        self.reader.close()
        self.proc.stdout.close()
        self.err.close()
        return died


def run_client(ctx, args, server, on_ready=None, timeout=120.0):
    """Run wsload; returns (result dict, server cpu % over the window, window seconds)."""
    key = base64.b64encode(os.urandom(16)).decode()
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    cmd = [ctx.client] + args + ["--port", str(server.port), "--key", key, "--accept", accept,
                                 "--timeout", str(timeout)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_die_with_parent)
    LIVE.add(proc)
    reader = LineReader(proc.stdout)
    deadline = time.monotonic() + timeout + 15
    result = None
    cpu0 = cpu1 = t0 = t1 = None
    try:
        while True:
            line = reader.readline(deadline)
            if line is None:
                break
            if line.startswith("READY"):
                if on_ready:
                    on_ready()
                try:
                    proc.stdin.write(b"GO\n")
                    proc.stdin.flush()
                except OSError:
                    pass
            elif line == "START":
                cpu0, t0 = proc_cpu(server.pid), time.monotonic()
            elif line == "END":
                cpu1, t1 = proc_cpu(server.pid), time.monotonic()
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
                break
    finally:
        reader.close()
        try:
            proc.stdin.close()
        except OSError:
            pass
        stop_process(proc, grace=5.0)
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        proc.stderr.close()
    if result is None:
        result = {"ok": False, "error": "load client gave no result (%s)" % (err or "timeout")}
    server_cpu = None
    # /proc counts CPU in clock ticks (10 ms): windows shorter than 0.5 s say too little
    if None not in (cpu0, cpu1, t0, t1) and t1 - t0 >= 0.5:
        server_cpu = 100.0 * (cpu1 - cpu0) / (t1 - t0)
        result["server_cpu_s"] = cpu1 - cpu0
    return result, server_cpu


def per_op_us(res, ops):
    """Server CPU time per operation in microseconds (less sensitive to a busy machine than rates)."""
    cpu = res.get("server_cpu_s")
    return None if cpu is None or not ops else cpu * 1e6 / ops


# -- measurements ----------------------------------------------------------------------
def fail(msg, **extra):
    d = {"ok": False, "error": msg}
    d.update(extra)
    return d


def measure_echo(ctx, server, p, deflate_file=None):
    args = ["echo", "--conns", str(p["conns"]), "--size", str(p["size"]), "--warmup", str(p["warmup"]),
            "--duration", str(p["duration"])]
    if deflate_file:
        args += ["--deflate", "--payload-file", deflate_file]
    elif p["size"] >= 1024:
        args.append("--binary")
    res, scpu = run_client(ctx, args, server, timeout=60 + p["duration"])
    if not res.get("ok"):
        return fail(res.get("error", "?"), partial_rate=res.get("rate"))
    if not res.get("messages"):
        return fail("no echo came back in the window")
    out = {"ok": True, "value": res["rate"], "unit": "msg/s", "server_cpu_pct": scpu,
           "server_us_per_op": per_op_us(res, res["messages"]),
           "client_cpu_pct": res["client_cpu_pct"], "lat_p50_ms": res["lat_p50_ms"],
           "lat_p99_ms": res["lat_p99_ms"]}
    if p["size"] >= 1024:
        out["mib_s"] = res["bytes"] / res["seconds"] / 2 ** 20
    if deflate_file:
        if res.get("deflate_conns") != p["conns"]:
            return fail("permessage-deflate negotiated on %s of %d connections" % (res.get("deflate_conns"),
                                                                                 p["conns"]))
        got = res.get("inflated", 0) + res.get("plain", 0)
        out.update(extensions=res.get("extensions"), inflated=res.get("inflated"), plain=res.get("plain"),
                   wire_b_per_msg=res["wire_bytes"] / got if got else None,
                   plain_b_per_msg=res["bytes"] / res["messages"])
    return out


def measure_broadcast(ctx, server, p, memory=None):
    """Broadcast rounds; when ``memory`` is a dict it also gets the idle-connection RSS delta."""
    conns = p["conns"]
    if memory is not None:
        # warm the server up (imports, first handshake) before the baseline
        run_client(ctx, ["echo", "--conns", "1", "--size", "32", "--warmup", "0", "--duration", "0.2"],
                   server, timeout=20)
        time.sleep(memory["settle"])
        memory["rss_before_kib"] = proc_rss_kib(server.pid)

    def on_ready():
        if memory is not None:
            time.sleep(memory["settle"])
            memory["rss_after_kib"] = proc_rss_kib(server.pid)
            memory["alive"] = server.alive()

    count = p["count"] if p.get("count") is not None else 0
    args = ["broadcast", "--conns", str(conns), "--size", str(p.get("size", 32)), "--count", str(count),
            "--broadcast-timeout", "10" if ctx.quick else "20"]
    if memory is not None:
        args.append("--hold")
    res, scpu = run_client(ctx, args, server, on_ready=on_ready, timeout=120)
    if memory is not None:
        memory["connected"] = res.get("connected")
        memory["open_seconds"] = res.get("open_seconds")
    if not res.get("ok"):
        return fail(res.get("error", "?"))
    if not count:
        return {"ok": True}
    lats = res["latencies_s"]
    return {"ok": True, "value": res["rate"], "unit": "deliveries/s",
            "latency_ms": 1000 * statistics.median(lats), "latency_max_ms": 1000 * max(lats),
            "server_cpu_pct": scpu, "client_cpu_pct": res["client_cpu_pct"],
            "server_us_per_op": per_op_us(res, res["deliveries"]), "open_seconds": res["open_seconds"]}


def memory_result(mem, conns, error=None):
    if mem.get("rss_after_kib") is None and error:
        return fail(error)
    if mem.get("rss_before_kib") is None or mem.get("rss_after_kib") is None:
        return fail("server memory could not be read")
    if mem.get("connected") != conns:
        return fail("only %s of %d connections opened" % (mem.get("connected"), conns))
    if not mem.get("alive", True):
        return fail("server exited")
    delta = mem["rss_after_kib"] - mem["rss_before_kib"]
    return {"ok": True, "value": delta * 1024.0 / conns, "unit": "B/conn", "rss_before_kib": mem["rss_before_kib"],
            "rss_after_kib": mem["rss_after_kib"], "open_seconds": mem.get("open_seconds")}


def measure_deflate_memory(ctx, server, p, small_file, after_msg):
    """RSS delta per connection with permessage-deflate negotiated, the connections idle.

    after_msg=False: after the upgrade nothing at all is sent (no sync message).
    after_msg=True: each connection first sends one compressed ~2 KiB JSON message
    and waits for its echo (checked), then idles."""
    if not ctx.client_zlib:
        return fail(ZLIB_MISSING)
    # warm the server up (imports, the deflate code paths) before the baseline
    run_client(ctx, ["echo", "--conns", "1", "--deflate", "--payload-file", small_file, "--warmup", "0",
                     "--duration", "0.2"], server, timeout=20)
    time.sleep(p["settle"])
    mem = {"rss_before_kib": proc_rss_kib(server.pid)}

    def on_ready():
        time.sleep(p["settle"])
        mem["rss_after_kib"] = proc_rss_kib(server.pid)
        mem["alive"] = server.alive()

    args = ["broadcast", "--conns", str(p["conns"]), "--count", "0", "--hold", "--deflate",
            "--broadcast-timeout", "10" if ctx.quick else "30"]
    args += ["--payload-file", small_file] if after_msg else ["--no-sync"]
    res, _ = run_client(ctx, args, server, on_ready=on_ready, timeout=120)
    mem["connected"] = res.get("connected")
    mem["open_seconds"] = res.get("open_seconds")
    r = memory_result(mem, p["conns"], None if res.get("ok") else res.get("error", "?"))
    if r.get("ok") and not res.get("ok"):
        r = fail(res.get("error", "?"))
    if r.get("ok"):
        if res.get("deflate_conns") != p["conns"]:
            return fail("permessage-deflate negotiated on %s of %d connections" % (res.get("deflate_conns"),
                                                                                 p["conns"]))
        r.update(extensions=res.get("extensions"), inflated=res.get("inflated"))
    return r


def measure_handshake(ctx, server, p):
    args = ["handshake", "--concurrency", str(p["concurrency"]), "--warmup", str(p["warmup"]),
            "--duration", str(p["duration"])]
    res, scpu = run_client(ctx, args, server, timeout=60 + p["duration"])
    if not res.get("ok"):
        return fail(res.get("error", "?"))
    return {"ok": True, "value": res["rate"], "unit": "handshakes/s", "server_cpu_pct": scpu,
            "server_us_per_op": per_op_us(res, res["handshakes"]),
            "client_cpu_pct": res["client_cpu_pct"], "lat_p50_ms": res["lat_p50_ms"],
            "lat_p99_ms": res["lat_p99_ms"]}


def warm_up(ctx, server):
    """One connection that echoes for 0.2 s and closes: the server's state after its first client.

    A server process that never saw a connection close can behave differently
    (the allocator's thresholds adapt on the first large free); real servers
    are warm, so measurements are too unless fresh ones are asked for."""
    run_client(ctx, ["echo", "--conns", "1", "--size", "32", "--warmup", "0", "--duration", "0.2"], server,
               timeout=20)


def run_server_measurement(ctx, name, mid, rnd):
    """One measurement of one server in a new server process; returns {mid: result}."""
    p = ctx.params[mid]
    why = SERVERS[name][2].get(base_id(mid))
    if why:
        return {m: {"ok": False, "na": True, "error": SERVERS[name][2].get(base_id(m), why)}
                for m in ctx.bundle(mid)}
    profile_path = None
    if ctx.profile_dir and name == "ratchet_sel":
        profile_path = os.path.join(ctx.profile_dir, "%s-r%d.pstats" % (mid, rnd))
    server = Server(ctx, name, profile_path, ["--deflate"] if mid in DEFLATE else ())
    results = {}
    try:
        if server.port is None:
            msg = "server did not start: %s" % server.stderr_tail()
            return {m: fail(msg) for m in ctx.bundle(mid)}
        if not is_fresh(ctx, mid) and (mid.startswith("echo_") or mid.startswith("broadcast_")):
            warm_up(ctx, server)
        pyspy = start_pyspy(ctx, server, "%s-%s-r%d" % (name, mid, rnd)) if name in ctx.pyspy_servers else None
        if mid.startswith("echo_"):
            results[mid] = measure_echo(ctx, server, p)
        elif mid == "handshake":
            results[mid] = measure_handshake(ctx, server, p)
        elif mid == "broadcast_1000":
            results[mid] = measure_broadcast(ctx, server, p)
        elif mid == "deflate_echo":
            results[mid] = (measure_echo(ctx, server, p, ctx.payload_file(p["size"])) if ctx.client_zlib
                            else fail(ZLIB_MISSING))
        elif mid in ("deflate_memory", "deflate_memory_msg"):
            size = ctx.params["deflate_memory_msg"]["size"]
            results[mid] = measure_deflate_memory(ctx, server, p, ctx.payload_file(size),
                                                  mid == "deflate_memory_msg")
        elif mid in ("broadcast_10000", "memory"):
            # memory and the big broadcast share one set of connections when both run
            mp = ctx.params["memory"]
            bp = dict(ctx.params["broadcast_10000"])
            want_mem = "memory" in ctx.bundle(mid)
            want_bc = "broadcast_10000" in ctx.bundle(mid)
            if not want_bc:
                bp = dict(conns=mp["conns"], size=32, count=0)
            elif want_mem and mp["conns"] != bp["conns"]:
                raise SystemExit("memory and broadcast_10000 must use the same connection count")
            mem = {"settle": mp["settle"]} if want_mem else None
            r = measure_broadcast(ctx, server, bp, memory=mem)
            if want_bc:
                results["broadcast_10000"] = r
            if want_mem:
                results["memory"] = memory_result(mem, mp["conns"], None if r.get("ok") else r.get("error", "?"))
        if pyspy:
            stop_pyspy(pyspy)
        for m in results:
            why = SERVERS[name][2].get(base_id(m))
            if why:  # measured alongside another in a bundle, but not meaningful for this server
                results[m] = {"ok": False, "na": True, "error": why}
    finally:
        died = server.stop()
        if died is not None:
            tail = server.stderr_tail()
            for m, r in results.items():
                if not r.get("ok"):
                    r["error"] = "%s; server exited with %s: %s" % (r.get("error"), died, tail)
    return results


def run_unmask(ctx):
    p = ctx.params["unmask"]
    out = subprocess.run([ctx.py, os.path.join(BENCH_SRC, "unmask.py"), "--size", str(p["size"]),
                          "--min-time", str(p["min_time"])], capture_output=True, text=True, cwd=ROOT, timeout=300)
    if out.returncode != 0:
        return fail("unmask.py failed: %s" % out.stderr.strip()[-300:])
    data = json.loads(out.stdout)
    res = data["results"]
    ours = res["ratchet_sel apply_mask"]["gib_s"]
    loop = res["per-byte loop"]["gib_s"]
    return {"ok": True, "value": ours, "unit": "GiB/s", "per_byte_gib_s": loop, "speedup_vs_per_byte": ours / loop,
            "all": {k: v["gib_s"] for k, v in res.items()},
            "all_vs_per_byte": {k: v["gib_s"] / loop for k, v in res.items()}}


# -- py-spy (optional) ---------------------------------------------------------------------
def find_pyspy(ctx):
    cand = os.path.join(os.path.dirname(ctx.py), "py-spy")
    return cand if os.path.exists(cand) else shutil.which("py-spy")


def start_pyspy(ctx, server, label):
    exe = find_pyspy(ctx)
    if not exe:
        log("py-spy not found (pip install py-spy into the venv); not sampling")
        return None
    out = os.path.join(ctx.pyspy_dir, label + ".txt")
    proc = subprocess.Popen([exe, "record", "--pid", str(server.pid), "--format", "raw", "--rate", "250",
                             "--nonblocking", "-o", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent)
    LIVE.add(proc)
    return proc


def stop_pyspy(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    LIVE.discard(proc)


# -- report ------------------------------------------------------------------------------
LOWER_IS_BETTER = set(MEMORY)


def fmt_num(v, unit):
    if v is None:
        return "n.a."
    if unit == "GiB/s":
        return "%.2f GiB/s" % v
    if unit == "B/conn":
        return "%.1f KiB" % (v / 1024)
    if v >= 100:
        return "{:,.0f}".format(v)
    return "%.1f" % v


def summarize(ctx, raw):
    """Medians over rounds and ratios against websockets."""
    summary = {}
    for mid in ctx.measurements:
        if mid == "unmask":
            runs = [r for r in raw.get("unmask", {}).get("_", []) if r.get("ok")]
            if runs:
                names = runs[0]["all"].keys()
                summary["unmask"] = {
                    "value": statistics.median(r["value"] for r in runs),
                    "speedup_vs_per_byte": statistics.median(r["speedup_vs_per_byte"] for r in runs),
                    "all": {n: statistics.median(r["all"][n] for r in runs if n in r["all"]) for n in names},
                    "all_vs_per_byte": {n: statistics.median(r["all_vs_per_byte"][n] for r in runs
                                                             if n in r["all_vs_per_byte"]) for n in names},
                    "rounds": len(runs)}
            else:
                errs = [r.get("error") for r in raw.get("unmask", {}).get("_", [])]
                summary["unmask"] = {"value": None, "error": "; ".join(e for e in errs if e)}
            continue
        per = {}
        for name in ctx.servers:
            runs = raw.get(mid, {}).get(name, [])
            ok = [r for r in runs if r.get("ok")]
            entry = {"rounds_ok": len(ok), "rounds": len(runs)}
            if ok and len(ok) * 2 > len(runs):   # a majority of rounds succeeded
                entry["value"] = statistics.median(r["value"] for r in ok)
                for k in ("server_cpu_pct", "client_cpu_pct", "server_us_per_op", "latency_ms", "lat_p50_ms",
                          "lat_p99_ms", "mib_s", "open_seconds", "wire_b_per_msg", "plain_b_per_msg"):
                    vals = [r[k] for r in ok if r.get(k) is not None]
                    if vals:
                        entry[k] = statistics.median(vals)
                if ok[0].get("extensions") is not None:
                    entry["extensions"] = ok[0]["extensions"]
            else:
                entry["value"] = None
            errs = sorted(set(r.get("error") for r in runs if not r.get("ok") and r.get("error")))
            if errs:
                entry["errors"] = errs
                entry["na"] = all(r.get("na") for r in runs if not r.get("ok"))
            per[name] = entry
        ref = per.get(REFERENCE, {}).get("value")
        for name, entry in per.items():
            v = entry["value"]
            if v and ref:
                entry["vs_websockets"] = (ref / v) if mid in LOWER_IS_BETTER else (v / ref)
                if "latency_ms" in entry and per[REFERENCE].get("latency_ms"):
                    entry["latency_vs_websockets"] = per[REFERENCE]["latency_ms"] / entry["latency_ms"]
        summary[mid] = per
    return summary


def targets(summary):
    """The targets, checked on ratchet_sel's medians of this run (ratios between servers of one run)."""
    rows = []

    def value(mid, name):
        return (summary.get(mid) or {}).get(name, {}).get("value")

    def add(label, r, goal, ok, shown):
        rows.append({"target": label, "goal": goal, "measured": shown,
                     "met": None if r is None else bool(ok)})

    def at_least(mid, ours, peer, goal):
        if mid not in summary:
            return
        a, b = value(mid, ours), value(mid, peer)
        r = a / b if a and b else None
        add("%s: %s vs %s" % (mid, ours, peer), r, ">= %.2fx" % goal, r is not None and r >= goal,
            "n.a." if r is None else "%.2fx" % r)

    for mid in ("echo_50", "echo_50_fresh"):
        at_least(mid, "ratchet_sel", "websockets", 2.0)
        at_least(mid, "ratchet_sel", "aiohttp", 1.3)
        at_least(mid, "ratchet_sel", "floor", 0.95)
    for mid in ("echo_64k", "echo_64k_fresh", "echo_1m", "echo_1m_fresh"):
        at_least(mid, "ratchet_sel", "websockets", 1.0)
    for mid, goal in (("echo_64k", 0.8), ("echo_1m", 0.4)):
        at_least(mid, "ratchet_sel-pure", "websockets", goal)
    if "broadcast_10000" in summary:
        # Rates: the broadcast's time is within 1.1x of the bare loop's when our rate is >= 1/1.1 of its rate.
        a, b = value("broadcast_10000", "ratchet_sel"), value("broadcast_10000", "send-loop")
        r = b / a if a and b else None
        add("broadcast_10000: time vs the bare send loop", r, "<= 1.10x", r is not None and r <= 1.1,
            "n.a." if r is None else "%.2fx" % r)
    at_least("handshake", "ratchet_sel", "websockets", 2.0)
    if "memory" in summary:
        v = value("memory", "ratchet_sel")
        add("memory per idle connection", v, "<= 4.0 KiB", v is not None and v <= 4096,
            "n.a." if v is None else "%.2f KiB" % (v / 1024))
    if "unmask" in summary:
        u = summary["unmask"]
        # The goal is about pure Python's XOR: with the accelerator built, use the pure reference's figure.
        pure = (u.get("all_vs_per_byte") or {}).get("ratchet_sel apply_mask_python (pure)")
        s = pure if pure is not None else u.get("speedup_vs_per_byte")
        add("unmask in pure Python vs per-byte loop", s, ">= 50x", s is not None and s >= 50,
            "n.a." if s is None else "%.0fx" % s)
    return rows


def markdown(ctx, summary, target_rows, meta):
    names = ctx.servers
    lines = []
    lines.append("Run %s, %d round%s (median), %s; Python %s; %s." % (
        meta["date"], ctx.rounds, "s" if ctx.rounds > 1 else "", "--quick" if ctx.quick else "full scale",
        meta["versions"].get("python"),
        ", ".join("%s %s" % (p, meta["versions"].get(p)) for p in PEER_PACKAGES if meta["versions"].get(p))))
    lines.append("Machine: %s, %s cores, %s GiB; load average %.1f at the start, %.1f at the end.  Command: `%s`" % (
        meta["machine"]["cpu"] or "?", meta["machine"]["cores"], meta["machine"]["mem_gib"],
        meta["loadavg_start"][0], meta["loadavg_end"][0], meta["command"]))
    lines.append("Servers measured %s%s." % (
        "fresh, as started" if meta.get("state") == "fresh" else
        "warm (one connection opened, used and closed first)", "" if meta.get("state") == "fresh" else
        "; rows marked 'fresh server' are taken without that"))
    if meta.get("load_warning"):
        lines.append("")
        lines.append("**Warning: the load average rose above the core count during this run; other work shared "
                     "the machine, and these figures are not reproducible.**")
    lines.append("")
    lines.append("Higher is better except memory; (N.NNx) is the ratio against websockets in this run, "
                 "with >1 better than websockets (memory: websockets' bytes / ours).")
    lines.append("")
    lines.append("| Measurement | Unit | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---:|" * len(names))
    notes = []
    for mid in ctx.measurements:
        if mid == "unmask":
            continue
        per = summary[mid]
        all_runs = [r for runs in ctx.raw.get(mid, {}).values() for r in runs]
        unit = next((r["unit"] for r in all_runs if r.get("unit")), "")
        cells = []
        for n in names:
            e = per[n]
            if e["value"] is None:
                if e.get("na"):
                    cells.append("n.a.")
                else:
                    cells.append("failed")
                if e.get("errors") and not (e.get("na") and n in VARIANTS):  # a floor's n.a. is by design
                    notes.append("%s, %s: %s" % (title(mid, ctx.params[mid]), n, "; ".join(e["errors"])[:300]))
                continue
            c = fmt_num(e["value"], unit)
            if e.get("vs_websockets") is not None and n != REFERENCE:
                c += " (%.2fx)" % e["vs_websockets"]
            if e["rounds_ok"] < e["rounds"]:
                c += " [%d/%d ok]" % (e["rounds_ok"], e["rounds"])
                notes.append("%s, %s: %s" % (title(mid, ctx.params[mid]), n, "; ".join(e.get("errors", []))[:300]))
            cells.append(c)
        lines.append("| %s | %s | %s |" % (title(mid, ctx.params[mid]), "KiB" if unit == "B/conn" else unit,
                                         " | ".join(cells)))
        if mid.startswith("broadcast_"):
            cells = []
            for n in names:
                e = per[n]
                if e.get("latency_ms") is None:
                    cells.append("n.a." if e.get("na") else "failed")
                else:
                    c = "%.1f" % e["latency_ms"]
                    if e.get("latency_vs_websockets") is not None and n != REFERENCE:
                        c += " (%.2fx)" % e["latency_vs_websockets"]
                    cells.append(c)
            lines.append("| ... latency until the last receiver has it | ms | %s |" % " | ".join(cells))
        if base_id(mid) in ("echo_64k", "echo_1m"):
            cells = ["%.0f" % per[n]["mib_s"] if per[n].get("mib_s") else "n.a." for n in names]
            lines.append("| ... payload echoed | MiB/s | %s |" % " | ".join(cells))
        if mid == "deflate_echo":
            cells = ["{:,.0f}".format(per[n]["wire_b_per_msg"]) if per[n].get("wire_b_per_msg") else "n.a."
                     for n in names]
            lines.append("| ... server's message on the wire (%s B uncompressed) | B | %s |" % (
                "{:,.0f}".format(next((per[n]["plain_b_per_msg"] for n in names if per[n].get("plain_b_per_msg")),
                                      0)), " | ".join(cells)))
    lines.append("")
    ext = [(n, summary[m][n]["extensions"]) for m in DEFLATE if m in summary for n in names
           if summary[m][n].get("extensions")]
    if ext:
        lines.append("Deflate rows: the client offers `permessage-deflate; client_max_window_bits`; the servers "
                     "answered: " + "; ".join("%s `%s`" % x for x in dict(ext).items()) + ".")
        lines.append("")
    cpu_mids = [m for m in ctx.measurements if m not in ("unmask",) + MEMORY]
    if cpu_mids:
        lines.append("CPU over the measuring window: server % / load client % (100% = one core), and in brackets "
                     "the server's CPU time per message, delivery or handshake in µs (lower is better; "
                     "less sensitive to a busy machine than the rates):")
        lines.append("")
        lines.append("| Measurement | " + " | ".join(names) + " |")
        lines.append("|---|" + "---:|" * len(names))
        for mid in cpu_mids:
            cells = []
            for n in names:
                e = summary[mid][n]
                if e.get("value") is None:
                    cells.append("-")
                else:
                    s = e.get("server_cpu_pct")
                    c = e.get("client_cpu_pct")
                    u = e.get("server_us_per_op")
                    cells.append("%s / %s%s" % ("?" if s is None else "%.0f" % s, "?" if c is None else "%.0f" % c,
                                                "" if u is None else " (%.0f µs)" % u if u >= 10 else " (%.1f µs)" % u))
            lines.append("| %s | %s |" % (title(mid, ctx.params[mid]), " | ".join(cells)))
        lines.append("")
    if "unmask" in summary and summary["unmask"].get("value") is not None:
        u = summary["unmask"]
        lines.append("Unmasking a %d KiB payload (best of repeated calls; medians over rounds of the speed and "
                     "of the ratio):" % (
            ctx.params["unmask"]["size"] // 1024))
        lines.append("")
        lines.append("| Implementation | GiB/s | vs per-byte loop |")
        lines.append("|---|---:|---:|")
        for n, v in u["all"].items():
            lines.append("| %s | %.3f | %.0fx |" % (n, v, u["all_vs_per_byte"].get(n, 0)))
        lines.append("")
    if target_rows:
        lines.append("Targets (ratchet_sel, ratios from this run):")
        lines.append("")
        lines.append("| Target | Goal | Measured | Met |")
        lines.append("|---|---|---|---|")
        for t in target_rows:
            lines.append("| %s | %s | %s | %s |" % (t["target"], t["goal"], t["measured"],
                                                  "n.a." if t["met"] is None else ("yes" if t["met"] else "**no**")))
        lines.append("")
    if notes:
        lines.append("Failures and n.a.:")
        lines.append("")
        for n in dict.fromkeys(notes):
            lines.append("- " + n)
        lines.append("")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------
class Ctx:
    pass


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny counts, 1 round, seconds per server")
    ap.add_argument("--fresh", action="store_true",
                    help="measure every server fresh, as started (default: warm, one connect/close first; "
                         "the *_fresh rows are fresh either way)")
    ap.add_argument("--rounds", type=int, help="rounds (default 3; 1 with --quick)")
    ap.add_argument("--servers", help="comma-separated, from: " + ",".join(SERVERS))
    ap.add_argument("--only", help="comma-separated groups or ids: " + ",".join(list(GROUPS) + ORDER))
    ap.add_argument("--json", help="JSON output (default WORKDIR/results.json)")
    ap.add_argument("--markdown", help="Markdown output (default WORKDIR/results.md)")
    ap.add_argument("--workdir", default=DEFAULT_WORKDIR, help="venv, client binary, logs (default %(default)s)")
    ap.add_argument("--venv", help="peers' venv (default WORKDIR/venv)")
    ap.add_argument("--upgrade-peers", action="store_true", help="pip install -U the peers even if present")
    ap.add_argument("--retry-failed", action="store_true",
                    help="measure again in later rounds what failed in every earlier round (default: skip it)")
    ap.add_argument("--duration", type=float, help="measuring window of echo/handshake runs, seconds")
    ap.add_argument("--profile", metavar="DIR", help="run ratchet_sel's server under cProfile, stats into DIR "
                    "(numbers are then not comparable)")
    ap.add_argument("--py-spy", metavar="DIR", dest="pyspy", help="sample servers with py-spy into DIR "
                    "(collapsed stacks); see --py-spy-servers")
    ap.add_argument("--py-spy-servers", default="ratchet_sel", help="servers to sample (default %(default)s)")
    ap.add_argument("--baseline", metavar="DIR",
                    help="another checkout (an older commit) measured in the same run as the servers "
                         "ratchet_sel-before and ratchet_sel-pure-before; build its accelerator there first "
                         "(python3 setup.py build_ext --inplace)")
    return ap.parse_args(argv)


def add_baseline(root):
    """Measure the ratchet_sel of checkout ``root`` too, as ratchet_sel-before and ratchet_sel-pure-before."""
    global VARIANTS
    root = os.path.abspath(root)
    if not os.path.isfile(os.path.join(root, "ratchet_sel", "__init__.py")):
        raise SystemExit("--baseline %s: no ratchet_sel package there" % root)
    for name in ("ratchet_sel", "ratchet_sel-pure"):
        SERVERS[name + "-before"] = SERVERS[name]
        SERVER_ENV[name + "-before"] = dict(SERVER_ENV.get(name, {}), RATCHET_SEL_BENCH_ROOT=root)
    VARIANTS = VARIANTS + ("ratchet_sel-pure-before",)


def main(argv=None):
    # --workers-group: the prefork rows (--workers 2 against --workers 1) of scripts/bench_workers.py,
    # which takes the same --quick/--rounds/--workdir.
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--workers-group" in argv:
        import bench_workers
        return bench_workers.main([a for a in argv if a != "--workers-group"])
    # --redis-group: fan-out latency through a real Redis (1,000 subscribers over 2 servers)
    # next to the same fan-out in one process, from scripts/bench_redis.py (--quick/--rounds/--json).
    if "--redis-group" in argv:
        import bench_redis
        return bench_redis.main([a for a in argv if a != "--redis-group"])
    # --wamp2-group: WAMP v2 RPC round trips and events per second, ratchet_sel's router against
    # Crossbar.io driven by the same lean client, from scripts/bench_wamp2.py (--quick/--rounds/--json).
    if "--wamp2-group" in argv:
        import bench_wamp2
        return bench_wamp2.main([a for a in argv if a != "--wamp2-group"])
    args = parse_args(argv)
    ctx = Ctx()
    ctx.quick = args.quick
    ctx.fresh = args.fresh
    ctx.rounds = args.rounds or (1 if args.quick else 3)
    ctx.workdir = args.workdir
    os.makedirs(ctx.workdir, exist_ok=True)
    if args.baseline:
        add_baseline(args.baseline)
    ctx.servers = args.servers.split(",") if args.servers else list(SERVERS)
    for s in ctx.servers:
        if s not in SERVERS:
            raise SystemExit("unknown server %r (known: %s)" % (s, ", ".join(SERVERS)))
    wanted = []
    for item in (args.only.split(",") if args.only else list(GROUPS)):
        if item in GROUPS:
            wanted += GROUPS[item]
        elif item in ORDER:
            wanted.append(item)
        else:
            raise SystemExit("unknown measurement %r (known: %s)" % (item, ", ".join(list(GROUPS) + ORDER)))
    ctx.measurements = [m for m in ORDER if m in wanted]
    ctx.params = scale(args.quick)
    for mid in ORDER:
        if mid.endswith(FRESH_SUFFIX):
            ctx.params[mid] = ctx.params[base_id(mid)]
    if args.duration:
        for p in ctx.params.values():
            if "duration" in p:
                p["duration"] = args.duration
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    need = max(ctx.params["broadcast_10000"]["conns"], ctx.params["memory"]["conns"]) + 100
    if ctx.params["deflate_memory"]["conns"] + 100 > hard != resource.RLIM_INFINITY:
        for m in ("deflate_memory", "deflate_memory_msg"):
            ctx.params[m]["conns"] = max(100, hard - 200)
    if hard != resource.RLIM_INFINITY and hard < need:
        n = max(100, hard - 200)
        log("RLIMIT_NOFILE hard limit is %d: the 10,000-connection runs use %d connections" % (hard, n))
        ctx.params["broadcast_10000"]["conns"] = ctx.params["memory"]["conns"] = n
    ctx.profile_dir = args.profile
    if ctx.profile_dir:
        os.makedirs(ctx.profile_dir, exist_ok=True)
    ctx.pyspy_dir = args.pyspy
    ctx.pyspy_servers = set(args.py_spy_servers.split(",")) if args.pyspy else set()
    if ctx.pyspy_dir:
        os.makedirs(ctx.pyspy_dir, exist_ok=True)
    json_path = args.json or os.path.join(ctx.workdir, "results.json")
    md_path = args.markdown or os.path.join(ctx.workdir, "results.md")

    def bundle(mid):
        # broadcast_10000 and memory run together on one set of connections
        if mid in ("broadcast_10000", "memory"):
            return [m for m in ("broadcast_10000", "memory") if m in ctx.measurements]
        return [mid]
    ctx.bundle = bundle

    started = time.monotonic()
    ctx.py = ensure_venv(args.venv or os.path.join(ctx.workdir, "venv"), args.upgrade_peers)
    ctx.client, ctx.client_zlib = build_client(ctx.workdir)
    files = {}

    def deflate_payload(size):
        if size not in files:
            files[size] = payload_file(ctx, size)
        return files[size]
    ctx.payload_file = deflate_payload
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "versions": versions(ctx.py),
            "machine": machine_info(),
            "command": " ".join(["python3", "scripts/bench.py"] + (argv if argv is not None else sys.argv[1:])),
            "params": ctx.params, "rounds": ctx.rounds, "servers": ctx.servers, "quick": ctx.quick,
            "loadavg_start": os.getloadavg(), "state": "fresh" if ctx.fresh else "warm"}
    log("load average at the start: %.2f %.2f %.2f (%d cores)" % (meta["loadavg_start"] + (os.cpu_count(),)))
    if meta["loadavg_start"][0] > (os.cpu_count() or 1):
        log("WARNING: the load average (%.1f) is above the core count (%d) already: the figures will not "
            "be reproducible" % (meta["loadavg_start"][0], os.cpu_count()))
    log("setup %.1f s; servers: %s; measurements: %s; %d round(s)" % (
        time.monotonic() - started, ", ".join(ctx.servers), ", ".join(ctx.measurements), ctx.rounds))

    ctx.raw = {m: {} for m in ctx.measurements}
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        for rnd in range(ctx.rounds):
            k = rnd % len(ctx.servers)
            order = ctx.servers[k:] + ctx.servers[:k]
            done_bundles = set()
            for mid in ctx.measurements:
                if mid == "unmask":
                    r = run_unmask(ctx)
                    ctx.raw["unmask"].setdefault("_", []).append(r)
                    log("round %d  %-16s %s" % (rnd + 1, "unmask", "%.3f GiB/s, %.0fx per-byte" % (
                        r["value"], r["speedup_vs_per_byte"]) if r.get("ok") else "FAILED " + r["error"]))
                    continue
                b = tuple(ctx.bundle(mid))
                if b in done_bundles:
                    continue
                done_bundles.add(b)
                for name in order:
                    t = time.monotonic()
                    prev = [ctx.raw[m].get(name, []) for m in b]
                    if rnd > 0 and not args.retry_failed and all(
                            runs and all(not r.get("ok") for r in runs) for runs in prev):
                        # failed in every earlier round: do not spend minutes (and the
                        # machine) failing again; the table shows the earlier failure
                        for m in b:
                            log("round %d  %-16s %-24s skipped: failed in every earlier round" % (rnd + 1, m, name))
                        continue
                    try:
                        res = run_server_measurement(ctx, name, mid, rnd)
                    except Exception as exc:  # a harness bug must not lose the other results
                        res = {m: fail("harness error: %r" % exc) for m in ctx.bundle(mid)}
                    for m, r in res.items():
                        ctx.raw[m].setdefault(name, []).append(r)
                        if r.get("ok") and r.get("value") is not None:
                            extra = ""
                            if r.get("server_cpu_pct") is not None:
                                extra = "  cpu server %.0f%% client %.0f%%" % (r["server_cpu_pct"],
                                                                             r.get("client_cpu_pct") or 0)
                            s = "%s %s%s" % (fmt_num(r["value"], r["unit"]), r["unit"] if r["unit"] != "B/conn" else "",
                                             extra)
                        elif r.get("na") and name in VARIANTS:
                            continue  # a floor or variant that does not take part in this measurement
                        else:
                            s = ("n.a.: " if r.get("na") else "FAILED: ") + str(r.get("error"))[:200]
                        log("round %d  %-16s %-24s %s  (%.1f s)" % (rnd + 1, m, name, s, time.monotonic() - t))
    finally:
        kill_all()

    summary = summarize(ctx, ctx.raw)
    target_rows = targets(summary)
    meta["elapsed_s"] = time.monotonic() - started
    meta["loadavg_end"] = os.getloadavg()
    cores = os.cpu_count() or 1
    meta["load_warning"] = max(meta["loadavg_start"][0], meta["loadavg_end"][0]) > cores
    log("load average at the end: %.2f %.2f %.2f (%d cores)" % (meta["loadavg_end"] + (cores,)))
    if meta["load_warning"]:
        log("WARNING: the load average rose above the core count (%.1f at the start, %.1f at the end, %d cores): "
            "other work shared the machine; do not quote these figures" % (
                meta["loadavg_start"][0], meta["loadavg_end"][0], cores))
    md = markdown(ctx, summary, target_rows, meta)
    with open(json_path, "w") as f:
        json.dump({"meta": meta, "summary": summary, "targets": target_rows, "raw": ctx.raw}, f, indent=1)
    with open(md_path, "w") as f:
        f.write(md + "\n")
    print(md)
    log("wrote %s and %s (%.0f s in all)" % (json_path, md_path, meta["elapsed_s"]))
    # No assertion on speed; but ratchet_sel itself (both masking paths) and the
    # floors the targets are measured against must get through every measurement.
    ours = [(m + " " + name, r.get("error")) for m in ctx.measurements if m != "unmask"
            for name in ("ratchet_sel",) + VARIANTS
            for r in ctx.raw[m].get(name, []) if not r.get("ok") and not r.get("na")]
    ours += [("unmask", r.get("error")) for r in ctx.raw.get("unmask", {}).get("_", []) if not r.get("ok")]
    if ours:
        log("ratchet_sel failed: %s" % "; ".join("%s: %s" % x for x in ours))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
