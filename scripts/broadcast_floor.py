#!/usr/bin/env python3
"""CPU per delivery of ``broadcast()`` against the bare ``send()`` loop, measured in one process.

The server (``IoServer(WsServer(app))``) runs in this process; the receivers
are held by the C client scripts/scale/wscrowd.c in another (it reads every
message, so that no socket buffer fills between rounds).  Once every
connection is open the loop stops turning and this process alternates, round
after round, the two ways of sending one 32-byte text message to every
receiver over the same sockets:

``broadcast``  :func:`ratchet_sel.broadcast` (state checks, shared frames by
               frame key, write limits, counters);
``send-loop``  the floor: one prebuilt frame, ``transport.socket.send(frame)``
               per receiver, nothing else (as scripts/bench.py's
               ``--bare-broadcast``).

Each round's figure is the CPU time (user + system, ``time.process_time``) of
the sending call alone, divided by the receivers; every delivery is counted
by the client before the next round.  Medians of the rounds, and their ratio.
On a busy machine CPU time is steadier than wall time, but still noisy:
compare the two side by side only.

    python3 scripts/broadcast_floor.py [--conns 10000] [--rounds 15] [--json FILE]
"""

import argparse
import base64
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ.get("RATCHET_SEL_BENCH_ROOT") or ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from ratchet_sel import IoServer, MessageComponent, WsServer, broadcast  # noqa: E402
from ratchet_sel.websocket.rfc6455 import OP_TEXT, encode_frame  # noqa: E402
from scale_client import build_wscrowd, handshake_pair  # noqa: E402


class Members(MessageComponent):
    """Keeps the open connections."""

    def __init__(self) -> None:
        self.clients = set()

    def on_open(self, conn):
        self.clients.add(conn)

    def on_close(self, conn):
        self.clients.discard(conn)


def bare_send_loop(clients, text):
    """The floor: the same frame written to each socket, nothing else."""
    frame = encode_frame(OP_TEXT, text.encode("utf-8"))
    for conn in clients:
        conn.transport.socket.send(frame)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.conns + 64 > hard:
        raise SystemExit("--conns %d needs more descriptors than RLIMIT_NOFILE allows (%d)" % (args.conns, hard))
    exe = build_wscrowd("/tmp/ratchet_sel-scale")
    app = Members()
    server = IoServer(WsServer(app, compression=None), "127.0.0.1", 0, max_connections=None)
    key, accept = handshake_pair()
    client = subprocess.Popen([exe, "--port", str(server.port), "--conns", str(args.conns), "--key", key,
                               "--accept", accept, "--timeout", "120"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        while len(app.clients) < args.conns and client.poll() is None:
            server.loop.run_once(0.05)
        opened = client.stdout.readline().split()
        if opened[:2] != ["OPEN", str(args.conns)]:
            raise SystemExit("the client opened %s" % opened)
        ways = {"broadcast": lambda text: broadcast(app.clients, text), "send-loop":
                lambda text: bare_send_loop(app.clients, text)}
        cpu = {name: [] for name in ways}
        for r in range(args.rounds):
            order = list(ways) if r % 2 == 0 else list(reversed(ways))
            for name in order:
                tag = "r%03d-%s-" % (r, name)
                client.stdin.write("ARM %s\n" % tag)
                client.stdin.flush()
                client.stdout.readline()
                text = tag + "x" * (32 - len(tag))
                before = time.process_time()
                ways[name](text)
                spent = time.process_time() - before
                client.stdin.write("WAIT %d 60 /dev/null\n" % args.conns)
                client.stdin.flush()
                got = int(client.stdout.readline().split()[1])
                if got != args.conns:
                    raise SystemExit("%s round %d: %d of %d deliveries" % (name, r, got, args.conns))
                server.loop.run_once(0)  # whatever a slow socket left buffered
                cpu[name].append(spent / args.conns * 1e6)
        result = {name: {"median_us": statistics.median(v), "min_us": min(v), "max_us": max(v), "rounds": v}
                  for name, v in cpu.items()}
        ratio = result["broadcast"]["median_us"] / result["send-loop"]["median_us"]
        for name, r in result.items():
            print("%-10s %.3f us CPU per delivery (median of %d; %.3f-%.3f)"
                  % (name, r["median_us"], args.rounds, r["min_us"], r["max_us"]))
        print("ratio broadcast / send-loop: %.3f (goal <= 1.10) at %d receivers; load %s"
              % (ratio, args.conns, " ".join("%.2f" % x for x in os.getloadavg())))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"conns": args.conns, "ratio": ratio, "ways": result, "loadavg": os.getloadavg()}, f,
                          indent=1)
    finally:
        client.stdin.close()
        client.wait(30)
        server.loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
