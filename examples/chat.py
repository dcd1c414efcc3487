"""Ratchet's chat example in Python: every message goes to every other member.

Run from a checkout, no install needed:

    python examples/chat.py [--port 8080]

then connect WebSocket clients to ws://127.0.0.1:8080/ (in a browser console:
``ws = new WebSocket("ws://127.0.0.1:8080/"); ws.onmessage = e => console.log(e.data);
ws.send("hello")``).
"""

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ratchet_sel import IoServer, MessageComponent, WsServer  # noqa: E402

log = logging.getLogger("chat")


class Chat(MessageComponent):
    """The chat room: a set of connections."""

    def __init__(self):
        self.clients = set()

    def on_open(self, conn):
        self.clients.add(conn)
        log.info("new connection #%d from %s", conn.resource_id, conn.remote_address)

    def on_message(self, conn, msg):
        others = len(self.clients) - 1
        log.info("connection #%d sending %r to %d other connection%s",
                 conn.resource_id, msg if len(msg) < 60 else msg[:60], others, "" if others == 1 else "s")
        for client in self.clients:
            if client is not conn:
                client.send(msg)

    def on_close(self, conn):
        self.clients.discard(conn)
        log.info("connection #%d has disconnected", conn.resource_id)

    def on_error(self, conn, exc):
        log.error("an error has occurred: %s", exc)
        conn.close(1011, "internal error")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    server = IoServer.factory(WsServer(Chat()), args.port, args.host)
    log.info("chat listening on ws://%s:%d/", args.host, server.port)
    server.run()


if __name__ == "__main__":
    main()
