"""The drafts before HyBi: draft-hixie-thewebsocketprotocol-76 and -75, sans-IO.

Handshake: draft-76 signs the request with an MD5 of two numbers hidden in
``Sec-WebSocket-Key1``/``Key2`` and of 8 bytes (key3) that follow the header
section; draft-75 has no signature at all.  Framing: a text message is
``0x00``, UTF-8 bytes, ``0xFF``; ``0xFF 0x00`` closes (draft-76 only).  There
are no binary messages, pings or close codes.
"""

import hashlib
import struct
from typing import Any, List, Optional

from ..http.request import HttpError, Request
from .handshake import check_upgrade, select_subprotocol
from .protocol import CLOSED, CLOSING, DROPPED_REASON, OPEN
from .rfc6455 import Close, CloseCode, Failure, Message, is_sendable_close_code

__all__ = ["HIXIE_KEY3_LENGTH", "key_number", "hixie76_answer", "hixie_response", "HixieParser",
           "HixieProtocol", "encode_text", "CLOSE_FRAME", "FRAME_KEY"]

#: The length of key3, the bytes a draft-76 client sends after its headers.
HIXIE_KEY3_LENGTH = 8

#: Draft-76's closing frame (draft-75 simply closes the TCP connection).
CLOSE_FRAME = b"\xff\x00"

#: What every draft connection shares for broadcasts: a text message is framed the same way on all.
FRAME_KEY = "hixie"


def key_number(key: str) -> int:
    """The number hidden in a draft-76 key: its digits divided by its spaces.

    Raises :class:`~ratchet_sel.http.HttpError` (400) when the key has no
    space, the division is not exact, or the result does not fit 32 bits.
    """
    digits = "".join(ch for ch in key if ch.isdigit() and ch.isascii())
    spaces = key.count(" ")
    if not digits or spaces == 0:
        raise HttpError(400, "Sec-WebSocket-Key1/2 needs digits and at least one space")
    digits = digits.lstrip("0") or "0"
    if len(digits) > 20:
        # Far past 32 bits times any plausible count of spaces; and int() of
        # thousands of digits is refused by Python (and slow) anyway.
        raise HttpError(400, "Sec-WebSocket-Key1/2 number exceeds 32 bits")
    number = int(digits)
    if number % spaces:
        raise HttpError(400, "Sec-WebSocket-Key1/2 digits are not a multiple of its spaces")
    number //= spaces
    if number > 0xFFFFFFFF:
        raise HttpError(400, "Sec-WebSocket-Key1/2 number exceeds 32 bits")
    return number


def hixie76_answer(key1: str, key2: str, key3: bytes) -> bytes:
    """The 16-byte MD5 answer of draft-76 (section 5.2, step 7)."""
    if len(key3) != HIXIE_KEY3_LENGTH:
        raise ValueError("key3 must be exactly 8 bytes")
    return hashlib.md5(struct.pack("!II", key_number(key1), key_number(key2)) + key3).digest()


def check_keys(request: Request) -> None:
    """Validate both draft-76 keys before key3 is waited for (400 if bad)."""
    for name in ("Sec-WebSocket-Key1", "Sec-WebSocket-Key2"):
        values = request.headers.get_all(name)
        if len(values) != 1:
            raise HttpError(400, "Exactly one %s is required" % name)
        key_number(values[0])


def hixie_response(request: Request, version: str, *, secure: bool = False,
                   subprotocols: Any = (), strict_subprotocols: bool = False,
                   key3: Optional[bytes] = None) -> "tuple":
    """The 101 response for a draft-76 (``key3`` given) or draft-75 request.

    Returns ``(response_bytes, subprotocol)``; raises HttpError to refuse.
    """
    check_upgrade(request)
    subprotocol = select_subprotocol(request, subprotocols, strict_subprotocols)
    origin = request.headers.get("Origin") or "null"
    location = "%s://%s%s" % ("wss" if secure else "ws", request.host, request.target)
    if version == "hixie-76":
        assert key3 is not None
        check_keys(request)
        prefix = "Sec-"
        status = "HTTP/1.1 101 WebSocket Protocol Handshake"
    else:
        prefix = ""
        status = "HTTP/1.1 101 Web Socket Protocol Handshake"
    lines = [status, "Upgrade: WebSocket", "Connection: Upgrade",
             "%sWebSocket-Origin: %s" % (prefix, origin), "%sWebSocket-Location: %s" % (prefix, location)]
    if subprotocol is not None:
        lines.append("%sWebSocket-Protocol: %s" % (prefix, subprotocol))
    response = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if version == "hixie-76":
        response += hixie76_answer(request.headers["Sec-WebSocket-Key1"],
                                   request.headers["Sec-WebSocket-Key2"], key3)  # type: ignore[arg-type]
    return response, subprotocol


def encode_text(message: str) -> bytes:
    """One draft text frame."""
    return b"\x00" + message.encode("utf-8") + b"\xff"


class HixieParser:
    """Turns draft-75/76 client bytes into Message/Close/Failure events.

    ``max_message_size`` bounds a message's UTF-8 bytes (1009 semantics: the
    connection closes).  A length-prefixed frame, any frame type but ``0x00``,
    or invalid UTF-8 fails the connection.
    """

    __slots__ = ("max_message_size", "_buffer", "_in_text", "_done")

    #: The drafts have no large binary frames to read directly (see FrameParser).
    large_frame_pending = False

    def __init__(self, *, max_message_size: int = 1024 * 1024) -> None:
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self._in_text = False
        self._done = False

    def feed(self, data: bytes) -> List[Any]:
        """Add bytes; returns the events they complete."""
        events: List[Any] = []
        if self._done:
            return events
        buf = self._buffer
        buf += data
        pos = 0
        while pos < len(buf):
            if not self._in_text:
                kind = buf[pos]
                if kind == 0x00:
                    self._in_text = True
                    pos += 1
                    continue
                if kind == 0xFF:
                    if pos + 1 >= len(buf):
                        break
                    self._done = True
                    if buf[pos + 1] == 0x00:
                        events.append(Close(None, ""))
                    else:
                        events.append(Failure(CloseCode.PROTOCOL_ERROR, "length-prefixed frames are not supported"))
                    break
                self._done = True
                events.append(Failure(CloseCode.PROTOCOL_ERROR, "unknown draft frame type 0x%02x" % kind))
                break
            end = buf.find(b"\xff", pos)
            if end < 0:
                if len(buf) - pos > self.max_message_size:
                    self._done = True
                    events.append(Failure(CloseCode.MESSAGE_TOO_BIG, "message exceeds the limit of %d bytes"
                                          % self.max_message_size))
                break
            if end - pos > self.max_message_size:
                self._done = True
                events.append(Failure(CloseCode.MESSAGE_TOO_BIG, "message exceeds the limit of %d bytes"
                                      % self.max_message_size))
                break
            try:
                text = bytes(buf[pos:end]).decode("utf-8")
            except UnicodeDecodeError:
                self._done = True
                events.append(Failure(CloseCode.INVALID_DATA, "invalid UTF-8 in text frame"))
                break
            events.append(Message(text))
            self._in_text = False
            pos = end + 1
        del buf[:pos]
        if self._done:
            self._buffer = bytearray()
        return events


class HixieProtocol:
    """A draft-76/75 connection's state, for the same driver as RFC 6455's protocol.

    The drafts have no pings and no close codes: the peer's ``0xFF 0x00``
    is answered with ours (draft-76) and the server closes TCP; draft-75
    has no closing frame at all.  The attributes and methods are the subset
    of :class:`~ratchet_sel.websocket.protocol.Protocol` that
    :class:`~ratchet_sel.websocket.connection.WsConnection` uses.
    """

    __slots__ = ("version", "parser", "state", "outgoing", "close_code", "close_reason",
                 "close_timeout", "close_transport", "expect_close_within")

    def __init__(self, version: str, *, max_message_size: int, close_timeout: float = 5.0) -> None:
        self.version = version
        self.parser = HixieParser(max_message_size=max_message_size)
        self.state = OPEN
        self.outgoing: List[bytes] = []
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self.close_timeout = close_timeout
        self.close_transport = False
        self.expect_close_within: Optional[float] = None

    def data_to_send(self) -> bytes:
        """The bytes queued for the peer (and forget them)."""
        data = b"".join(self.outgoing)
        self.outgoing.clear()
        return data

    def ping(self, payload: Any = b"") -> bool:
        """The drafts have no pings: nothing is queued (False)."""
        return False

    def pong(self, payload: Any = b"") -> bool:
        """The drafts have no pongs: nothing is queued (False)."""
        return False

    def _closing_frame(self) -> None:
        if self.version == "hixie-76":
            self.outgoing.append(CLOSE_FRAME)

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close: draft-76 sends its closing frame and waits for the peer's; draft-75 closes TCP at once."""
        if not is_sendable_close_code(code):
            raise ValueError("close code %d may not be sent" % code)
        if self.state is not OPEN:
            return
        if self.version == "hixie-76":
            self._closing_frame()
            self.state = CLOSING
            self.expect_close_within = self.close_timeout
        else:
            self.state = CLOSED
            self.close_transport = True

    def receive_event(self, event: Any) -> None:
        """The peer's closing frame (answered, then TCP closes) or a fault (TCP closes)."""
        if self.state is OPEN:
            self._closing_frame()
        if self.close_code is None:
            if event.__class__ is Close:
                self.close_code = CloseCode.NO_STATUS
            else:
                self.close_code, self.close_reason = event.code, event.reason
        self.state = CLOSED
        self.close_transport = True

    def connection_lost(self) -> None:
        """The TCP connection ended: 1006 unless the closing frames were exchanged."""
        if self.state is not CLOSED:
            self.state = CLOSED
            self.close_code = CloseCode.ABNORMAL
            self.close_reason = DROPPED_REASON
