"""ratchet_sel under test: IoServer(WsServer(app)) from this checkout.

WsServer's defaults, which include permessage-deflate (PerMessageDeflate()); the
main measurements' client never offers it.  --deflate passes
compression=PerMessageDeflate() explicitly (the same thing), for the deflate
group, whose client does offer it.

--bare-broadcast answers the broadcast trigger with the floor instead of
ratchet_sel's broadcast(): a bare loop of socket.send() of one prebuilt frame
over the same sockets, nothing else (no state check, no buffering).
"""

import logging
import os
import sys

# RATCHET_SEL_BENCH_ROOT: another checkout's ratchet_sel (scripts/profile_calls.py --root).
sys.path.insert(0, os.environ.get("RATCHET_SEL_BENCH_ROOT")
                or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BACKLOG, BROADCAST_PREFIX, announce, raise_nofile, start_profile, stop_profile  # noqa: E402

from ratchet_sel import IoServer, MessageComponent, WsServer, broadcast  # noqa: E402
from ratchet_sel.websocket.rfc6455 import OP_TEXT, encode_frame  # noqa: E402


def bare_send_loop(clients, text):
    """The floor of a broadcast: the same frame written to each socket, nothing else."""
    frame = encode_frame(OP_TEXT, text.encode("utf-8"))
    for conn in clients:
        conn.transport.socket.send(frame)
from ratchet_sel.websocket.deflate import PerMessageDeflate  # noqa: E402


class BenchApp(MessageComponent):
    def __init__(self, fan_out=broadcast):
        self.clients = set()
        self.fan_out = fan_out

    def on_open(self, conn):
        self.clients.add(conn)

    def on_message(self, conn, msg):
        if msg.__class__ is str and msg.startswith(BROADCAST_PREFIX):
            self.fan_out(self.clients, msg[len(BROADCAST_PREFIX):])
        else:
            conn.send(msg)

    def on_close(self, conn):
        self.clients.discard(conn)

    def on_error(self, conn, exc):
        conn.close()


def main():
    raise_nofile()
    logging.basicConfig(level=logging.WARNING)
    app = BenchApp(bare_send_loop if "--bare-broadcast" in sys.argv[1:] else broadcast)
    if "--deflate" in sys.argv[1:]:
        ws = WsServer(app, compression=PerMessageDeflate())
    else:
        ws = WsServer(app)
    server = IoServer(ws, "127.0.0.1", 0, backlog=BACKLOG)
    announce(server.port)
    prof = start_profile()
    server.run()  # SIGTERM: graceful shutdown, then run() returns
    stop_profile(prof)


if __name__ == "__main__":
    main()
