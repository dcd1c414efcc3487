#!/usr/bin/env python3
"""Deterministic cost of one echoed WebSocket message: Python calls and system calls.

Wall-clock figures mean little on a busy machine; these counts do not depend on
the load.  Two measurements, each on ratchet_sel's echo server
(``IoServer(WsServer(app))`` as in scripts/bench/server_ratchet_sel.py) and a
blocking client in a separate process that keeps one message in flight per
connection:

``calls``     the server runs in this process; a profile hook on the loop
              thread counts Python frames (function calls) and calls of
              C functions while N messages are echoed, then divides by N.
``syscalls``  the server runs in its own process under ``strace -c -f``; the
              counts per message show the allocator trap (mmap/munmap/mremap
              and brk from a fresh recv buffer) in the ``fresh`` state (no
              connection has closed yet) against the ``warm`` state (one
              connect/close first).
``broadcast``  the server in this process, N connections: Python calls per
              delivery of one broadcast (the trigger message's own echo path
              included, spread over the receivers).
``cpu``       the server in its own process, untraced: its CPU time (user and
              system, from /proc) per message.  Less noisy than rates on a
              busy machine, but still not a benchmark.

``--root DIR`` measures the ratchet_sel of another checkout (an older commit,
to compare before and after).

    python3 scripts/profile_calls.py                       # both, 32 B, 1 and 50 connections
    python3 scripts/profile_calls.py calls --size 32 --conns 1 --messages 20000
    python3 scripts/profile_calls.py syscalls --size 65536 --conns 1
    RATCHET_SEL_NO_SPEEDUPS=1 python3 scripts/profile_calls.py calls --size 65536

Prints one line per measurement, and the JSON of all with --json PATH.
"""

import argparse
import base64
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MASK = b"\x5a\x17\xc3\x9e"


# -- the load client (a child process) ---------------------------------------------
def client_frame(size):
    payload = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    opcode = 0x1 if size < 1024 else 0x2
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    key = int.from_bytes((MASK * (size // 4 + 1))[:size], "little")
    masked = (int.from_bytes(payload, "little") ^ key).to_bytes(size, "little")
    return head + MASK + masked, payload


def upgrade(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("the server closed during the upgrade")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit("upgrade refused: %r" % head[:80])
    return sock


def read_echo(sock, expected_len):
    """Read one unmasked server frame; returns its payload length."""
    def exactly(n):
        out = bytearray()
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise SystemExit("the server closed")
            out += chunk
        return bytes(out)
    b0, b1 = exactly(2)
    length = b1 & 0x7F
    if length == 126:
        length = struct.unpack("!H", exactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", exactly(8))[0]
    exactly(length)
    if length != expected_len:
        raise SystemExit("echo of %d bytes, expected %d" % (length, expected_len))


def run_broadcast_client(port, conns, size, messages):
    """Child: N connections; connection 0 triggers ``messages`` broadcasts, each read on every connection."""
    socks = [upgrade(port) for _ in range(conns)]
    payload = ("b" * size)
    trigger = ("broadcast:" + payload).encode()
    mask_key = int.from_bytes((MASK * (len(trigger) // 4 + 1))[:len(trigger)], "little")
    body = (int.from_bytes(trigger, "little") ^ mask_key).to_bytes(len(trigger), "little")
    frame = struct.pack("!BB", 0x81, 0x80 | len(trigger)) + MASK + body
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "GO":
        return
    for _ in range(messages):
        socks[0].sendall(frame)
        for s in socks:
            read_echo(s, size)
    sys.stdout.write("DONE\n")
    sys.stdout.flush()
    sys.stdin.readline()
    for s in socks:
        s.close()


def run_client(port, conns, size, warmup, messages, warm_close):
    """Child: (optionally connect and close once), connect, warm up, READY, wait GO, echo, DONE."""
    if warm_close:
        upgrade(port).close()
        time.sleep(0.2)  # let the server see the close before the measured connections open
    socks = [upgrade(port) for _ in range(conns)]
    frame, _ = client_frame(size)

    def rounds(n):
        for _ in range(n):
            for s in socks:
                s.sendall(frame)
            for s in socks:
                read_echo(s, size)
    rounds(warmup)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "GO":
        return
    rounds(messages // conns)
    sys.stdout.write("DONE\n")
    sys.stdout.flush()
    sys.stdin.readline()
    for s in socks:
        s.close()


def spawn_client(port, args, warm_close, kind="_client"):
    cmd = [sys.executable, os.path.abspath(__file__), kind, "--port", str(port), "--conns", str(args.conns),
           "--size", str(args.size), "--messages", str(args.messages), "--warmup", str(args.warmup)]
    if warm_close:
        cmd.append("--warm-close")
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)


# -- Python calls per message ----------------------------------------------------------
def measure_calls(args, broadcast=False):
    """Server in this process; the profile hook counts calls on the loop thread during the window."""
    import threading

    sys.path.insert(0, os.path.join(ROOT, "scripts", "bench"))
    from server_ratchet_sel import BenchApp  # the benchmark's application: echo, and broadcast on a trigger

    from ratchet_sel import IoServer, WsServer

    server = IoServer(WsServer(BenchApp()), "127.0.0.1", 0)
    counts = Counter()

    def hook(frame, event, arg):
        if event == "call":
            counts["frames"] += 1
        elif event == "c_call":
            counts["c_calls"] += 1

    child = spawn_client(server.port, args, warm_close=not args.fresh,
                         kind="_broadcast_client" if broadcast else "_client")
    phase = {"state": "warmup"}

    def on_child_line():
        line = child.stdout.readline().strip()
        if line == "READY":
            sys.setprofile(hook)  # on the loop thread: only the server is counted
            child.stdin.write("GO\n")
            child.stdin.flush()
        elif line == "DONE":
            sys.setprofile(None)
            phase["state"] = "done"
            child.stdin.write("BYE\n")
            child.stdin.flush()
            server.loop.remove_reader(child.stdout)
            server.loop.stop()
        elif not line:
            server.loop.remove_reader(child.stdout)
            server.loop.stop()

    server.loop.add_reader(child.stdout, on_child_line)
    timer = threading.Timer(300, lambda: server.loop.stop())
    timer.start()
    try:
        server.loop.run()
    finally:
        timer.cancel()
        sys.setprofile(None)
        child.wait(30)
        server.close()
    if phase["state"] != "done":
        raise SystemExit("the client did not finish")
    n = args.messages * args.conns if broadcast else (args.messages // args.conns) * args.conns
    # The hook also sees the stop callback's few calls; they vanish in the division.
    return {"measure": "broadcast" if broadcast else "calls", "size": args.size, "conns": args.conns, "messages": n,
            "state": "fresh" if args.fresh else "warm",
            "frames_per_msg": counts["frames"] / n, "c_calls_per_msg": counts["c_calls"] / n,
            "calls_per_msg": (counts["frames"] + counts["c_calls"]) / n}


# -- server processes ------------------------------------------------------------------------
def server_env(args):
    """The server's environment: PYTHONPATH at --root when given (its package shadows ours)."""
    env = dict(os.environ)
    if args.root:
        env["PYTHONPATH"] = os.path.abspath(args.root)
        env["RATCHET_SEL_BENCH_ROOT"] = os.path.abspath(args.root)
    return env


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_cpu(args, fresh):
    """CPU seconds of an untraced server process per message, over the window."""
    script = os.path.join(ROOT, "scripts", "bench", "server_ratchet_sel.py")
    server = subprocess.Popen([sys.executable, script], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env=server_env(args))
    child = None
    try:
        line = server.stdout.readline()
        if not line.startswith("LISTENING "):
            raise SystemExit("the server did not start: %r" % line)
        child = spawn_client(int(line.split()[1]), args, warm_close=not fresh)
        if child.stdout.readline().strip() != "READY":
            raise SystemExit("the client did not get ready")
        before = proc_cpu_seconds(server.pid)
        child.stdin.write("GO\n")
        child.stdin.flush()
        if child.stdout.readline().strip() != "DONE":
            raise SystemExit("the client did not finish")
        after = proc_cpu_seconds(server.pid)
        child.stdin.write("BYE\n")
        child.stdin.flush()
        child.wait(30)
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    n = (args.messages // args.conns) * args.conns
    return {"measure": "cpu", "size": args.size, "conns": args.conns, "messages": n,
            "state": "fresh" if fresh else "warm", "cpu_us_per_msg": (after - before) * 1e6 / n}


# -- system calls per message ------------------------------------------------------------
STRACE_LINE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def measure_syscalls(args, fresh):
    strace = subprocess.run(["which", "strace"], capture_output=True, text=True).stdout.strip()
    if not strace:
        raise SystemExit("strace is not installed (apt-get install strace)")
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "bench", "server_ratchet_sel.py")],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT, env=server_env(args))
    tracer = None
    child = None
    out_path = "/tmp/ratchet_sel-profile-strace.%d" % os.getpid()
    try:
        line = server.stdout.readline()
        if not line.startswith("LISTENING "):
            raise SystemExit("the server did not start: %r" % line)
        port = int(line.split()[1])
        child = spawn_client(port, args, warm_close=not fresh)
        if child.stdout.readline().strip() != "READY":
            raise SystemExit("the client did not get ready")
        tracer = subprocess.Popen([strace, "-c", "-f", "-o", out_path, "-p", str(server.pid)],
                                  stderr=subprocess.PIPE, text=True)
        tracer.stderr.readline()  # "strace: Process N attached": tracing has begun
        child.stdin.write("GO\n")
        child.stdin.flush()
        if child.stdout.readline().strip() != "DONE":
            raise SystemExit("the client did not finish")
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
        tracer = None
        child.stdin.write("BYE\n")
        child.stdin.flush()
        child.wait(30)
    finally:
        if tracer is not None:
            tracer.kill()
            tracer.wait()
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    calls = Counter()
    with open(out_path) as f:
        for row in f:
            m = STRACE_LINE.match(row)
            if m and m.group(2) != "total":
                calls[m.group(2)] += int(m.group(1))
    os.unlink(out_path)
    n = (args.messages // args.conns) * args.conns
    memory = sum(calls[k] for k in ("mmap", "munmap", "mremap", "brk", "madvise"))
    return {"measure": "syscalls", "size": args.size, "conns": args.conns, "messages": n,
            "state": "fresh" if fresh else "warm", "per_msg": {k: v / n for k, v in sorted(calls.items())},
            "memory_syscalls_per_msg": memory / n, "total_per_msg": sum(calls.values()) / n}


def describe(r):
    head = "%-8s %-5s %6d B x %-3d conns:" % (r["measure"], r["state"], r["size"], r["conns"])
    if r["measure"] == "cpu":
        return "%s %8.1f us of server CPU per message" % (head, r["cpu_us_per_msg"])
    if r["measure"] == "broadcast":
        return "%s %5.1f calls per delivery (%5.1f Python frames + %5.1f C calls)" % (
            head, r["calls_per_msg"], r["frames_per_msg"], r["c_calls_per_msg"])
    if r["measure"] == "calls":
        return "%s %5.1f calls/msg (%5.1f Python frames + %5.1f C calls)" % (
            head, r["calls_per_msg"], r["frames_per_msg"], r["c_calls_per_msg"])
    top = ", ".join("%s %.2f" % kv for kv in sorted(r["per_msg"].items(), key=lambda kv: -kv[1]) if kv[1] >= 0.01)
    return "%s %5.2f syscalls/msg, of which memory (mmap/munmap/mremap/brk/madvise) %.2f  [%s]" % (
        head, r["total_per_msg"], r["memory_syscalls_per_msg"], top)


def masking_status():
    try:
        from ratchet_sel import accelerator
    except ImportError:  # a version from before the accelerator (--root, or an older checkout)
        return "pure Python (this version has no accelerator)"
    return accelerator.status


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="all", choices=["all", "calls", "syscalls", "cpu", "broadcast", "_client", "_broadcast_client"])
    ap.add_argument("--root", help="the checkout whose ratchet_sel the separate server processes run")
    ap.add_argument("--port", type=int)
    ap.add_argument("--size", type=int, help="payload bytes (default: 32, and 65536 too for 'all')")
    ap.add_argument("--conns", type=int, help="connections, one message in flight each (default 1 and 50)")
    ap.add_argument("--messages", type=int, default=10000, help="messages echoed in the counted window")
    ap.add_argument("--warmup", type=int, default=200, help="rounds before the window")
    ap.add_argument("--fresh", action="store_true", help="calls: no connect/close before (default: warm)")
    ap.add_argument("--warm-close", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="write the results as JSON to this path")
    args = ap.parse_args(argv)
    if args.what == "_client":
        run_client(args.port, args.conns, args.size, args.warmup, args.messages, args.warm_close)
        return 0
    if args.what == "_broadcast_client":
        run_broadcast_client(args.port, args.conns, args.size, args.messages)
        return 0
    if args.what == "broadcast":
        print("masking: %s" % masking_status())
        run = argparse.Namespace(**dict(vars(args), size=args.size or 32, conns=args.conns or 1000,
                                        messages=min(args.messages, 50)))
        result = measure_calls(run, broadcast=True)
        print(describe(result), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump([result], f, indent=1)
        return 0
    print("masking: %s" % masking_status())
    sizes = [args.size] if args.size else ([32] if args.what == "calls" else [32, 65536])
    conn_counts = [args.conns] if args.conns else [1, 50]
    results = []
    for size in sizes:
        for conns in conn_counts:
            if size >= 65536 and conns > 10 and not args.conns:
                continue
            run = argparse.Namespace(**dict(vars(args), size=size, conns=conns,
                                            messages=args.messages if size < 65536 else min(args.messages, 2000)))
            if args.what in ("all", "calls"):
                results.append(measure_calls(run))
                print(describe(results[-1]), flush=True)
            if args.what == "cpu":
                for fresh in (True, False):
                    results.append(measure_cpu(run, fresh))
                    print(describe(results[-1]), flush=True)
            if args.what in ("all", "syscalls"):
                for fresh in (True, False):
                    results.append(measure_syscalls(run, fresh))
                    print(describe(results[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
