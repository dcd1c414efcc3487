#!/usr/bin/env python3
"""The WAMP v2 router's own cost per RPC round trip, in process, without sockets.

    PYTHONPATH=. python3 scripts/bench/wamp2_router.py [--calls 50000]

A caller and a callee session (each with JSON and with MessagePack) exchange
CALL -> INVOCATION -> YIELD -> RESULT through ``WampRouter.on_message``; the
connections are stand-ins that keep what is sent.  It prints round trips per
second of router CPU (decode, validate, route, encode), the ceiling a real
client can approach on one core.  The comparison with Crossbar.io over real
sockets is ``scripts/bench.py``'s job.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from ratchet_sel.wamp.v2 import WampRouter  # noqa: E402
from ratchet_sel.wamp.v2.serializers import SERIALIZERS  # noqa: E402


class Connection:
    """What the router needs of a WebSocket connection: it keeps the last payload sent."""

    is_open = True
    loop = None

    def __init__(self, subprotocol: str) -> None:
        self.subprotocol = subprotocol
        self.last = None

    def send(self, payload):
        self.last = payload

    def close(self, code=1000, reason=""):
        self.is_open = False


def round_trips(subprotocol: str, calls: int) -> float:
    serializer = SERIALIZERS[subprotocol]
    router = WampRouter(["realm1"])
    caller, callee = Connection(subprotocol), Connection(subprotocol)
    for conn in (caller, callee):
        router.on_open(conn)
        router.on_message(conn, serializer.encode([1, "realm1", {"roles": {"caller": {}, "callee": {}}}]))
    router.on_message(callee, serializer.encode([64, 1, {}, "com.bench.echo"]))
    encode, decode, on_message = serializer.encode, serializer.decode, router.on_message
    started = time.perf_counter()
    for request in range(1, calls + 1):
        on_message(caller, encode([48, request, {}, "com.bench.echo", [request, "payload"]]))
        invocation = decode(callee.last)
        on_message(callee, encode([70, invocation[1], {}, invocation[4]]))
    elapsed = time.perf_counter() - started
    assert decode(caller.last)[:2] == [50, calls]
    return calls / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50000)
    args = parser.parse_args()
    for subprotocol in ("wamp.2.json", "wamp.2.msgpack"):
        print("%-15s %8.0f round trips/s (the clients' encode/decode included)" % (
            subprotocol, round_trips(subprotocol, args.calls)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
