"""ratchet_sel with prefork workers, for scripts/bench_workers.py.

``--workers 1`` is one process exactly as ``python -m ratchet_sel ... --workers 1``
runs it (no master, no SO_REUSEPORT, an in-process Topics hub); ``--workers N``
forks N workers on one port whose hubs are joined by the master.  Every
connection subscribes to the topic "all"; a text message ``broadcast:<payload>``
publishes <payload> there (so with N workers it crosses the master's hub to the
other workers), anything else is echoed.
"""

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BACKLOG, BROADCAST_PREFIX, announce, raise_nofile  # noqa: E402

from ratchet_sel import IoServer, MessageComponent, WsServer  # noqa: E402
from ratchet_sel.pubsub import Topics  # noqa: E402
from ratchet_sel.workers import Workers  # noqa: E402

TOPIC = "all"


class BenchApp(MessageComponent):
    def __init__(self, topics):
        self.topics = topics

    def on_open(self, conn):
        self.topics.subscribe(conn, TOPIC)

    def on_message(self, conn, msg):
        if msg.__class__ is str and msg.startswith(BROADCAST_PREFIX):
            self.topics.publish(TOPIC, msg[len(BROADCAST_PREFIX):])
        else:
            conn.send(msg)

    def on_error(self, conn, exc):
        conn.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    raise_nofile()
    logging.basicConfig(level=logging.WARNING)
    if args.workers == 1:
        server = IoServer(WsServer(BenchApp(Topics())), "127.0.0.1", 0, backlog=BACKLOG, max_connections=None)
        announce(server.port)
        server.run()
        return 0
    port = 0
    master = Workers(lambda worker: WsServer(BenchApp(worker.topics)), args.workers, backlog=BACKLOG,
                     server_options=dict(max_connections=None), on_ready=lambda: announce(port))
    _, port = master.listen("127.0.0.1", 0)
    return master.run()


if __name__ == "__main__":
    sys.exit(main())
