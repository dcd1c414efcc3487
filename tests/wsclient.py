"""A small blocking WebSocket client for tests, built on the project's own codec."""

import base64
import os
import socket
from typing import Any, Dict, List, Optional, Tuple

from ratchet_sel.websocket.rfc6455 import (OP_CLOSE, OP_PING, Close, FrameParser, encode_close_payload,
                                           encode_frame, encode_message)


def upgrade_request(path: str = "/", version: Optional[str] = "13", key: Optional[str] = None,
                    extra: Optional[List[Tuple[str, str]]] = None, host: str = "127.0.0.1") -> bytes:
    """The bytes of a client upgrade request."""
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: %s" % host, "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: %s" % key]
    if version is not None:
        lines.append("Sec-WebSocket-Version: %s" % version)
    for name, value in extra or ():
        lines.append("%s: %s" % (name, value))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_response(sock: socket.socket) -> Tuple[int, Dict[str, str], bytes]:
    """Read an HTTP response head; returns (status, lower-cased headers, bytes after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def http_exchange(port: int, request: bytes, timeout: float = 5.0) -> Tuple[int, Dict[str, str], bytes]:
    """Send raw request bytes; return (status, headers, whole body until close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        status, headers, rest = read_response(sock)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return status, headers, rest


class WsClient:
    """Connects, upgrades, and sends/receives frames with blocking calls."""

    def __init__(self, port: int, path: str = "/", version: Optional[str] = "13",
                 extra: Optional[List[Tuple[str, str]]] = None, timeout: float = 10.0,
                 tls: Any = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="localhost")
        self.sock.sendall(upgrade_request(path, version, extra=extra))
        self.status, self.headers, rest = read_response(self.sock)
        self.parser = FrameParser(require_mask=False, max_message_size=1 << 31)
        self.events: List[Any] = []
        if rest:
            self.events.extend(self.parser.feed(rest))

    def send(self, message: Any, fragment_size: int = 0) -> None:
        """Send a text (str) or binary message, masked."""
        for frame in encode_message(message, fragment_size, mask_source=lambda: os.urandom(4)):
            self.sock.sendall(frame)

    def send_frame(self, opcode: int, payload: bytes = b"", fin: bool = True, rsv1: bool = False,
                   mask: Optional[bytes] = None) -> None:
        """Send one frame (masked with a random key unless ``mask`` is given)."""
        self.sock.sendall(encode_frame(opcode, payload, fin, rsv1, mask or os.urandom(4)))

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are."""
        self.sock.sendall(data)

    def recv(self) -> Any:
        """The next event (Message, Ping, Pong, Close); raises ConnectionError at EOF."""
        while not self.events:
            data = self.sock.recv(262144)
            if not data:
                raise ConnectionError("connection closed by the server")
            self.events.extend(self.parser.feed(data))
        return self.events.pop(0)

    def recv_message(self) -> Any:
        """The data of the next event, which must be a Message."""
        event = self.recv()
        assert event.__class__.__name__ == "Message", event
        return event.data

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping."""
        self.send_frame(OP_PING, payload)

    def close(self, code: int = 1000, reason: str = "") -> Close:
        """Send a close frame and return the server's close frame."""
        self.send_frame(OP_CLOSE, encode_close_payload(code, reason))
        return self.expect_close()

    def expect_close(self) -> Close:
        """Skip to the server's close frame and return it."""
        while True:
            event = self.recv()
            if isinstance(event, Close):
                return event

    def at_eof(self) -> bool:
        """True when the server has closed the TCP connection (after a close frame)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def shutdown(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> "WsClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()
