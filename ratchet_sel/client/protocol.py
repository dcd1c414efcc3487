"""The client side of an open RFC 6455 connection, sans-IO, with the client API's exceptions.

The rules are those of the client role of
:class:`ratchet_sel.websocket.protocol.Protocol` (masking, ping answers, the
closing handshake, limits); :class:`ClientProtocol` adds what the client API
promises on top: :attr:`ClientProtocol.closed` as a :class:`ConnectionClosed`
(or :class:`ProtocolError`), and sending on a closed connection raises it.
The blocking and the loop-based clients drive the same object.
"""

from typing import Any, List, Optional, Union

from ..websocket.protocol import CLOSED, OPEN, new_mask
from ..websocket.protocol import ClientProtocol as ClientRole
from ..websocket.rfc6455 import CloseCode
from .handshake import WebSocketClientError

__all__ = ["ClientProtocol", "ConnectionClosed", "ProtocolError", "DEFAULT_MAX_MESSAGE_SIZE",
           "NORMAL_CLOSE_CODES", "new_mask"]

#: The largest message accepted from a server by default (after decompression).
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
#: Close codes that end a connection normally: normal, going away, and a close frame without a code.
NORMAL_CLOSE_CODES = (CloseCode.NORMAL, CloseCode.GOING_AWAY, CloseCode.NO_STATUS)


class ConnectionClosed(WebSocketClientError):
    """The connection is closed: ``code`` and ``reason`` of the close.

    ``code`` is the server's (1005 when its close frame had none, 1006 when
    the TCP connection dropped without a closing handshake), or ours when we
    closed first.  :attr:`ok` says whether it ended normally.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__("connection closed with code %d%s" % (code, ": " + reason if reason else ""))
        self.code = code
        self.reason = reason

    @property
    def ok(self) -> bool:
        """True for a normal end (1000, 1001, or a close frame without a code)."""
        return self.code in NORMAL_CLOSE_CODES


class ProtocolError(ConnectionClosed):
    """The server broke the protocol (or a limit); we failed the connection with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.args = ("connection failed, closed by us with %d: %s" % (code, reason),)


class ClientProtocol(ClientRole):
    """One open client connection's protocol (see the module docstring).

    ``extension`` is the agreed permessage-deflate state or ``None``;
    ``max_message_size`` bounds a message (1009 beyond it); ``close_timeout``
    is how long the closing handshake may take (``expect_close_within``).
    """

    __slots__ = ("_closed", "_our_close")

    def __init__(self, extension: Any = None, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                 close_timeout: float = 5.0) -> None:
        super().__init__(extension, max_message_size=max_message_size, close_timeout=close_timeout)
        self._closed: Optional[ConnectionClosed] = None
        self._our_close: Optional[ConnectionClosed] = None

    @property
    def closed(self) -> Optional[ConnectionClosed]:
        """Once the connection closed: a :class:`ConnectionClosed` (a :class:`ProtocolError` if we failed it)."""
        if self.state is not CLOSED:
            return None
        if self._closed is None:
            kind = ProtocolError if self.failed else ConnectionClosed
            self._closed = kind(self.close_code or CloseCode.ABNORMAL, self.close_reason)
        return self._closed

    def send(self, message: Union[str, bytes, bytearray, memoryview], fragment_size: int = 0) -> bool:
        """Queue a text (``str``) or binary message; raises :class:`ConnectionClosed` once closing."""
        self._check_open()
        if not isinstance(message, (str, bytes, bytearray, memoryview)):
            raise TypeError("a message is str or bytes, not %s" % type(message).__name__)
        return super().send(message, fragment_size)

    def ping(self, payload: Union[str, bytes] = b"") -> bool:
        """Queue a ping (at most 125 bytes of payload); raises :class:`ConnectionClosed` once closing."""
        self._check_open()
        return super().ping(payload)

    def pong(self, payload: Union[str, bytes] = b"") -> bool:
        """Queue an unsolicited pong; raises :class:`ConnectionClosed` once closing."""
        self._check_open()
        return super().pong(payload)

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Queue our close frame (once); the connection is closed when the server's arrives."""
        super().close(code, reason)
        if self.close_sent and self._our_close is None and not self.close_received and not self.failed:
            self._our_close = ConnectionClosed(code, reason)

    def _check_open(self) -> None:
        closed = self.closed
        if closed is not None:
            raise closed
        if self.state is not OPEN:
            code = self._our_close.code if self._our_close is not None else CloseCode.NORMAL
            raise ConnectionClosed(code, "the connection is closing")

    def receive(self, data: bytes) -> List[Any]:
        """Feed the server's bytes; the events for the application (see :meth:`receive_data`)."""
        return self.receive_data(data)
