#!/usr/bin/env python3
"""Fan-out latency through Redis, next to the same fan-out inside one process.

One publish reaching N WebSocket subscribers (1,000 by default), timed until the
last receiver has the whole frame:

- ``one process``: one chat server (``python -m ratchet_sel chat``) holds every
  subscriber; a client of it sends one message.
- ``2 servers via Redis``: two chat servers with ``--redis`` share a real
  ``redis-server`` (started here on a free loopback port, ``--save ''
  --appendonly no``, stopped by PID); the subscribers are split between them and a
  client of the first sends the message, so half of them get it locally and half
  through Redis and the second server.

    python3 scripts/bench_redis.py                    # 1,000 subscribers, 30 rounds
    python3 scripts/bench_redis.py --quick            # smoke run: 100 subscribers, 3 rounds
    python3 scripts/bench_redis.py --json out.json    # also write the figures as JSON

Every server runs in its own process on 127.0.0.1; the clients are plain
non-blocking sockets on one selector in this process.  Rounds are bounded and each
waits for the previous one to be fully received.  Prints median, p90 and max per
setup.  Figures depend on the machine and its load: compare the two rows of one run,
not runs on different machines.
"""

import argparse
import base64
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ratchet_sel.pubsub.resp import RespParser, encode_command  # noqa: E402
from ratchet_sel.websocket.rfc6455 import encode_message  # noqa: E402

ROUND_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            sys.exit("RLIMIT_NOFILE hard limit %d is below the %d sockets needed" % (hard, needed))


class Child:
    """A child process whose output is drained in a thread; ``wait_for`` a line."""

    def __init__(self, argv: List[str]) -> None:
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     errors="replace", env=env, cwd=ROOT)
        self.lines: List[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30.0) -> "re.Match":
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    match = regex.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    sys.exit("no line matching %r:\n%s" % (pattern, "".join(self.lines[-20:])))
                self._cond.wait(min(left, 0.5))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_chat(*extra: str) -> "tuple":
    child = Child([sys.executable, "-m", "ratchet_sel", "chat", "--host", "127.0.0.1", "--port", "0", *extra])
    port = int(child.wait_for(r"WebSocket ws://127\.0\.0\.1:(\d+)/").group(1))
    if extra:
        child.wait_for(r"redis .*: connected")
    return child, port


def ws_connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("the server closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        sys.exit("handshake refused: %r" % head[:80])
    if head.index(b"\r\n\r\n") + 4 != len(head):
        sys.exit("unexpected bytes after the handshake")
    sock.setblocking(False)
    return sock


def numsub(port: int, channel: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(encode_command("PUBSUB", "NUMSUB", channel))
        parser = RespParser()
        replies: List[Any] = []
        while not replies:
            replies = parser.feed(sock.recv(4096))
        return int(replies[0][1])


def fan_out_rounds(sender: socket.socket, receivers: List[socket.socket], rounds: int, size: int) -> List[float]:
    """Seconds from sending one message until every receiver has its whole frame, per round."""
    selector = selectors.DefaultSelector()
    frame_length = 2 + (size if size < 126 else 0) + (2 + size if 126 <= size < 65536 else 0)
    results = []
    for number in range(rounds):
        message = ("%08d" % number).ljust(size, "x")
        pending: Dict[socket.socket, int] = {sock: frame_length for sock in receivers}
        for sock in receivers:
            selector.register(sock, selectors.EVENT_READ)
        frames = encode_message(message, 0, mask_source=lambda: os.urandom(4))
        sender.setblocking(True)
        started = time.perf_counter()
        for frame in frames:
            sender.sendall(frame)
        deadline = started + ROUND_TIMEOUT
        while pending:
            if time.perf_counter() > deadline:
                sys.exit("round %d: %d of %d receivers got nothing within %g s"
                         % (number, len(pending), len(receivers), ROUND_TIMEOUT))
            for key, _ in selector.select(1.0):
                sock = key.fileobj
                try:
                    data = sock.recv(65536)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                if not data:
                    sys.exit("a receiver was closed by the server")
                left = pending[sock] - len(data)  # type: ignore[index]
                if left <= 0:
                    del pending[sock]  # type: ignore[arg-type]
                    selector.unregister(sock)
                else:
                    pending[sock] = left  # type: ignore[index]
        results.append(time.perf_counter() - started)
    selector.close()
    return results


def summary(samples: List[float]) -> Dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": statistics.median(ordered) * 1000,
            "p90_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))] * 1000,
            "max_ms": ordered[-1] * 1000, "rounds": len(ordered)}


def run(args: argparse.Namespace) -> Dict[str, Any]:
    raise_fd_limit(args.subscribers + 64)
    results: Dict[str, Any] = {"subscribers": args.subscribers, "message_bytes": args.size}
    # one process
    chat, port = start_chat()
    try:
        sender = ws_connect(port)
        receivers = [ws_connect(port) for _ in range(args.subscribers)]
        fan_out_rounds(sender, receivers, 2, args.size)  # warm-up
        results["one_process"] = summary(fan_out_rounds(sender, receivers, args.rounds, args.size))
        for sock in receivers + [sender]:
            sock.close()
    finally:
        chat.stop()
    # two servers and Redis
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    redis_port = free_port()
    redis = Child([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--daemonize", "no"])
    children = [redis]
    try:
        redis.wait_for(r"Ready to accept connections")
        url = "redis://127.0.0.1:%d/0" % redis_port
        a, port_a = start_chat("--redis", url)
        children.append(a)
        b, port_b = start_chat("--redis", url)
        children.append(b)
        sender = ws_connect(port_a)
        half = args.subscribers // 2
        receivers = [ws_connect(port_a) for _ in range(half)]
        receivers += [ws_connect(port_b) for _ in range(args.subscribers - half)]
        deadline = time.monotonic() + 30
        while numsub(redis_port, "ratchet_sel:chat") < 2:
            if time.monotonic() > deadline:
                sys.exit("the chat servers did not subscribe on Redis")
            time.sleep(0.05)
        fan_out_rounds(sender, receivers, 2, args.size)
        results["two_servers_via_redis"] = summary(fan_out_rounds(sender, receivers, args.rounds, args.size))
        for sock in receivers + [sender]:
            sock.close()
    finally:
        for child in reversed(children):
            child.stop()
    return results


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--size", type=int, default=64, help="message bytes (< 65,536)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 subscribers, 3 rounds")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.subscribers, args.rounds = 100, 3
    if not 0 < args.size < 65536 or args.subscribers < 2 or args.rounds < 1:
        parser.error("need 0 < --size < 65536, --subscribers >= 2, --rounds >= 1")
    results = run(args)
    print("fan-out of one %d-byte message to %d subscribers, until the last has it (%d rounds):"
          % (args.size, args.subscribers, args.rounds))
    for label, key in (("one process", "one_process"), ("2 servers via Redis", "two_servers_via_redis")):
        row = results[key]
        print("  %-22s median %8.2f ms   p90 %8.2f ms   max %8.2f ms"
              % (label, row["median_ms"], row["p90_ms"], row["max_ms"]))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
