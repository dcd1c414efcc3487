"""Ratchet's chat example in Python: every message goes to every other member.

    python3 examples/chat.py --host 127.0.0.1 --port 8080

then open http://127.0.0.1:8080/ in two browser tabs (the page comes from the
package), or connect any WebSocket client to ws://127.0.0.1:8080/.

It runs three ways, with nothing installed:

* from a checkout: ``python3 examples/chat.py`` (also under ``python3 -I``);
* as one file: ``python3 -m ratchet_sel bundle examples/chat.py -o chat.pyz``,
  then ``python3 chat.pyz`` (also ``python3 -I -S chat.pyz``) on any host;
* with ratchet_sel installed (``pip install``): from anywhere.

The import below first tries the normal way, which succeeds in a bundle (the
archive is on ``sys.path``) and when installed.  Only when it fails does the
script look for the package in the checkout that holds it, found through its
own path: ``python3 -I`` leaves both the script's folder and ``PYTHONPATH``
off ``sys.path``, so nothing else would find it there.
"""

import argparse
import logging
import os
import sys

try:
    import ratchet_sel  # noqa: F401  (a bundle, an install, or PYTHONPATH)
except ImportError:
    _checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(_checkout, "ratchet_sel", "__init__.py")):
        raise
    sys.path.insert(0, _checkout)

from ratchet_sel import IoServer, MessageComponent, WsServer, exit_on_startup_error  # noqa: E402
from ratchet_sel.demo import chat_page  # noqa: E402


class Chat(MessageComponent):
    def __init__(self):
        self.clients = set()
    def on_open(self, conn):                    # after a successful handshake
        self.clients.add(conn)                  # conn.request, conn.version, conn.subprotocol
    def on_message(self, conn, msg):            # str for text, bytes for binary
        for client in self.clients:
            if client is not conn:
                client.send(msg)
    def on_close(self, conn):                   # exactly once per opened connection
        self.clients.discard(conn)
    def on_error(self, conn, exc):              # an exception from a callback above
        conn.close(1011, "internal error")


def main():
    parser = argparse.ArgumentParser(description="Ratchet's chat example: each message goes to every other member.")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default: %(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with exit_on_startup_error():               # a busy port: one logged line and exit status 1
        server = IoServer.factory(WsServer(Chat(), http_handler=chat_page), args.port, args.host)
    logging.info("chat listening on ws://%s:%d/", args.host, server.port)
    server.run()


if __name__ == "__main__":
    main()
