"""simple-websocket-server (select()-based); broadcast is a loop of send_message."""

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BACKLOG, BROADCAST_PREFIX, announce, exit_on_sigterm, raise_nofile  # noqa: E402

from simple_websocket_server import WebSocket, WebSocketServer  # noqa: E402

PREFIX_LEN = len(BROADCAST_PREFIX)
clients = set()


class Handler(WebSocket):
    def handle(self):
        data = self.data
        if isinstance(data, str) and data.startswith(BROADCAST_PREFIX):
            payload = data[PREFIX_LEN:]
            for client in list(clients):
                client.send_message(payload)
        else:
            self.send_message(data)

    def connected(self):
        clients.add(self)

    def handle_close(self):
        clients.discard(self)


class Server(WebSocketServer):
    request_queue_size = BACKLOG  # the library's default is 5


def main():
    raise_nofile()
    logging.basicConfig(level=logging.WARNING)
    exit_on_sigterm()
    server = Server("127.0.0.1", 0, Handler)
    announce(server.serversocket.getsockname()[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
