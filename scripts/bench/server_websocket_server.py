"""websocket-server (a thread per connection); broadcast with send_message_to_all.

It has no binary frames: the 64 KiB binary echo is not applicable to it.
"""

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BACKLOG, BROADCAST_PREFIX, announce, exit_on_sigterm, raise_nofile  # noqa: E402

from websocket_server import WebsocketServer  # noqa: E402

PREFIX_LEN = len(BROADCAST_PREFIX)


class Server(WebsocketServer):
    request_queue_size = BACKLOG  # socketserver's default is 5


def on_message(client, server, message):
    if message.startswith(BROADCAST_PREFIX):
        server.send_message_to_all(message[PREFIX_LEN:])
    else:
        server.send_message(client, message)


def main():
    raise_nofile()
    logging.basicConfig(level=logging.WARNING)
    exit_on_sigterm()
    server = Server(host="127.0.0.1", port=0, loglevel=logging.WARNING)
    server.set_fn_message_received(on_message)
    announce(server.port)
    server.run_forever()


if __name__ == "__main__":
    main()
