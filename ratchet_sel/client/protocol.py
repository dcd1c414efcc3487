"""The client side of an open RFC 6455 connection, sans-IO.

:class:`ClientProtocol` turns the server's bytes into events and the
application's messages into masked frames; it answers pings and echoes the
server's close frame by itself, queuing those bytes for :meth:`data_to_send`.
The blocking and the loop-based clients drive the same object, so each rule
of the client role lives here once.
"""

import secrets
from typing import Any, List, Optional, Union

from ..websocket.rfc6455 import (OP_CLOSE, OP_PING, OP_PONG, Close, CloseCode, Failure, Message, Ping,
                                 FrameParser, encode_close_payload, encode_frame, encode_message,
                                 is_sendable_close_code)
from .handshake import WebSocketClientError

__all__ = ["ClientProtocol", "ConnectionClosed", "ProtocolError", "DEFAULT_MAX_MESSAGE_SIZE",
           "NORMAL_CLOSE_CODES", "new_mask"]

#: The largest message accepted from a server by default (after decompression).
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
#: Close codes that end a connection normally: normal, going away, and a close frame without a code.
NORMAL_CLOSE_CODES = (CloseCode.NORMAL, CloseCode.GOING_AWAY, CloseCode.NO_STATUS)


def new_mask() -> bytes:
    """A fresh masking key from a strong source (RFC 6455 5.3: unpredictable to the server)."""
    return secrets.token_bytes(4)


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


_OPEN, _CLOSING, _CLOSED = "open", "closing", "closed"


class ClientProtocol:
    """One open client connection's framing state (see the module docstring).

    ``extension`` is the agreed permessage-deflate state or ``None``;
    ``max_message_size`` bounds a message (1009 beyond it).
    """

    def __init__(self, extension: Any = None, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.extension = extension
        # Server frames must not be masked (RFC 6455 5.1).
        self._parser = FrameParser(max_message_size=max_message_size, require_mask=False, forbid_mask=True,
                                   extension=extension)
        self._outgoing: List[bytes] = []
        self.state = _OPEN
        #: Set once the connection closed: a :class:`ConnectionClosed` (or :class:`ProtocolError`).
        self.closed: Optional[ConnectionClosed] = None
        self.close_sent = False
        self.close_received = False
        self._our_close: Optional[ConnectionClosed] = None
        self._pending_end: Any = None

    @property
    def is_open(self) -> bool:
        """True until a close frame was sent or received."""
        return self.state == _OPEN

    def data_to_send(self) -> bytes:
        """The bytes queued for the server (and forget them)."""
        data = b"".join(self._outgoing)
        self._outgoing = []
        return data

    # -- outbound ------------------------------------------------------------
    def send(self, message: Union[str, bytes, bytearray, memoryview], fragment_size: int = 0) -> None:
        """Queue a text (``str``) or binary message; raises :class:`ConnectionClosed` once closing."""
        self._check_open()
        if not isinstance(message, (str, bytes, bytearray, memoryview)):
            raise TypeError("a message is str or bytes, not %s" % type(message).__name__)
        data = message if isinstance(message, str) else bytes(message)
        encode = self.extension.encode_message if self.extension is not None else encode_message
        self._outgoing.extend(encode(data, fragment_size, mask_source=new_mask))

    def ping(self, payload: Union[str, bytes] = b"") -> None:
        """Queue a ping (at most 125 bytes of payload)."""
        self._check_open()
        self._control(OP_PING, payload)

    def pong(self, payload: Union[str, bytes] = b"") -> None:
        """Queue an unsolicited pong."""
        self._check_open()
        self._control(OP_PONG, payload)

    def _control(self, opcode: int, payload: Union[str, bytes]) -> None:
        raw = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        if len(raw) > 125:
            raise ValueError("control frame payload over 125 bytes")
        self._outgoing.append(encode_frame(opcode, raw, mask=new_mask()))

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Queue our close frame (once); the connection is closed when the server's arrives."""
        if not is_sendable_close_code(code):
            raise ValueError("close code %d may not be sent" % code)
        self.end_pending()
        if self.close_sent or self.state == _CLOSED:
            return
        self._send_close(code, reason)
        self.state = _CLOSING
        self._our_close = ConnectionClosed(code, reason)

    def _send_close(self, code: Optional[int], reason: str) -> None:
        self.close_sent = True
        self._outgoing.append(encode_frame(OP_CLOSE, encode_close_payload(code, reason), mask=new_mask()))

    def _check_open(self) -> None:
        if self.closed is not None:
            raise self.closed
        if self.state != _OPEN:
            code = self._our_close.code if self._our_close is not None else CloseCode.NORMAL
            raise ConnectionClosed(code, "the connection is closing")

    # -- inbound -------------------------------------------------------------
    def receive(self, data: bytes) -> List[Any]:
        """Feed the server's bytes; returns the :class:`Message` (and ``Pong``) events for the application.

        Pings are answered at once.  The server's close frame, or a protocol
        error, ends the connection; when messages came before it in the same
        bytes, the end waits for :meth:`end_pending` so that the application
        handles (and may answer) those messages first, in wire order.
        """
        events: List[Any] = []
        if self.state == _CLOSED or self._pending_end is not None:
            return events
        for event in self._parser.feed(data):
            kind = event.__class__
            if kind is Message:
                if self.state == _OPEN:
                    events.append(event)
            elif kind is Ping:
                if not self.close_sent:
                    self._outgoing.append(encode_frame(OP_PONG, event.payload, mask=new_mask()))
            elif kind is Close or kind is Failure:
                if events and self.state == _OPEN:
                    self._pending_end = event
                else:
                    self._end(event)
            else:  # a Pong
                events.append(event)
        return events

    def end_pending(self) -> None:
        """Act on a close frame or protocol error held back behind messages (see :meth:`receive`)."""
        event, self._pending_end = self._pending_end, None
        if event is not None:
            self._end(event)

    def _end(self, event: Any) -> None:
        if event.__class__ is Close:
            self._server_closed(event)
        else:
            self.fail(event.code, event.reason)

    def _server_closed(self, event: Close) -> None:
        self.close_received = True
        code = CloseCode.NO_STATUS if event.code is None else event.code
        if not self.close_sent:
            # Echo the code (RFC 6455 5.5.1); the server then closes TCP first.
            self._send_close(event.code, "")
        self.state = _CLOSED
        self.closed = ConnectionClosed(code, event.reason)

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): a close frame if we still may, then :attr:`closed`."""
        if self.state == _CLOSED:
            return
        if not self.close_sent:
            self._send_close(code, reason)
        self.state = _CLOSED
        self.closed = ProtocolError(code, reason)

    def connection_lost(self) -> None:
        """The TCP connection ended: 1006 unless the closing handshake was done."""
        if self.state == _CLOSED:
            return
        self.end_pending()
        if self.state == _CLOSED:
            return
        self.state = _CLOSED
        self.closed = ConnectionClosed(CloseCode.ABNORMAL, "the connection dropped without a closing handshake")
