#!/usr/bin/env python3
"""A plain TCP line chat on IoServer alone: no HTTP, no WebSocket.

Each complete line a client sends goes to every other client, prefixed with
the sender's id.  Try it with two terminals::

    python examples/line_chat.py --port 9000
    nc 127.0.0.1 9000          # or: telnet 127.0.0.1 9000

``/quit`` leaves.  ``--port 0`` picks a free port (the log line shows it).
SIGINT (Ctrl-C) or SIGTERM says goodbye to everyone and stops.
"""

import argparse
import logging
import os
import sys
from typing import Any, Dict, List, Optional

if __package__ in (None, ""):
    # Run from a checkout (python examples/line_chat.py): find ratchet_sel
    # next to this directory without installing it.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ratchet_sel import IoServer, MessageComponent, exit_on_startup_error  # noqa: E402

log = logging.getLogger("line_chat")

#: Longest line a client may send (bytes, without the newline).
DEFAULT_MAX_LINE = 4096


class LineChat(MessageComponent):
    """Relays every complete line to every other client, as ``[id] line``."""

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.max_line = max_line
        self.clients: Dict[Any, None] = {}  # an ordered set of connections

    # -- helpers --------------------------------------------------------------
    def broadcast(self, data: bytes, exclude: Any = None) -> None:
        # Iterate over a copy: a send may fail and close a member, and the
        # member list must not change under our feet.
        for client in list(self.clients):
            if client is not exclude:
                client.send(data)

    @staticmethod
    def tag(conn: Any) -> bytes:
        return b"[%d]" % conn.resource_id

    # -- the component ----------------------------------------------------------
    def on_open(self, conn: Any) -> None:
        conn.buffer = bytearray()
        others = len(self.clients)
        self.clients[conn] = None
        log.info("%s %s:%s joined (%d online)", self.tag(conn).decode(), conn.remote_address,
                 conn.remote_port, len(self.clients))
        conn.send(b"* welcome, you are %s; %d other(s) here. Lines you type go to everyone; "
                  b"/quit leaves.\r\n" % (self.tag(conn), others))
        self.broadcast(b"* %s joined\r\n" % self.tag(conn), exclude=conn)

    def on_message(self, conn: Any, data: bytes) -> None:
        buf = conn.buffer
        buf += data
        start = 0
        while not conn.closed:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = bytes(buf[start:end])
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.max_line:
                self.too_long(conn)
                return
            self.on_line(conn, line)
        del buf[:start]
        if len(buf) > self.max_line and not conn.closed:
            self.too_long(conn)  # a partial line that can only end up too long

    def on_line(self, conn: Any, line: bytes) -> None:
        if line.strip() == b"/quit":
            conn.send(b"* bye\r\n")
            conn.close()
        elif line.strip():
            self.broadcast(b"%s %s\r\n" % (self.tag(conn), line), exclude=conn)

    def too_long(self, conn: Any) -> None:
        log.warning("%s sent a line over %d bytes; closing", self.tag(conn).decode(), self.max_line)
        conn.send(b"* line too long (limit %d bytes); bye\r\n" % self.max_line)
        conn.buffer = bytearray()
        conn.close()

    def on_close(self, conn: Any) -> None:
        if conn in self.clients:
            del self.clients[conn]
            log.info("%s left (%d online)", self.tag(conn).decode(), len(self.clients))
            self.broadcast(b"* %s left\r\n" % self.tag(conn))

    def on_error(self, conn: Any, exc: BaseException) -> None:
        conn.close()

    def on_shutdown(self, conn: Any) -> None:
        # Called by IoServer.shutdown (SIGINT/SIGTERM) for each connection.
        conn.send(b"* server shutting down, bye\r\n")
        conn.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="A plain TCP line chat (use nc or telnet as the client).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; 0.0.0.0 or :: for every interface (default: %(default)s)")
    parser.add_argument("--port", type=int, default=9000,
                        help="port to listen on; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--max-line", type=int, default=DEFAULT_MAX_LINE, metavar="BYTES",
                        help="longest line a client may send (default: %(default)s)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging level (default: %(default)s)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with exit_on_startup_error():  # a busy port: one logged line and exit status 1
        server = IoServer(LineChat(max_line=args.max_line), args.host, args.port)
    host = "[%s]" % server.address if ":" in server.address else server.address
    log.info("line chat listening on %s:%d (try: nc %s %d)", host, server.port,
             server.address, server.port)
    server.run()  # until SIGINT/SIGTERM
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
