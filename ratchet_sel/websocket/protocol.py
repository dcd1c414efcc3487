"""The WebSocket connection protocol (RFC 6455 sections 5-7), sans-IO, for both roles.

One :class:`Protocol` object holds what an open connection must remember and
decide, whichever end it is and whatever does its I/O: the state
(:class:`State`), the closing handshake, failing the connection, answering
pings, assembling messages within limits (through the :class:`FrameParser`
codec and the permessage-deflate extension) and masking.  Bytes go in
(:meth:`Protocol.receive_data`, or the driver's own loop over the parser's
``feed`` and :meth:`Protocol.receive_event`), events come out, and the bytes
to send wait in :attr:`Protocol.outgoing`.

What the driver does about the TCP connection is decided here and read from
two attributes after each call: :attr:`Protocol.close_transport` (close it now,
after writing what is queued) and :attr:`Protocol.expect_close_within` (wait
that many seconds for the peer to end it, then drop it).

:class:`ServerProtocol` and :class:`ClientProtocol` are the two roles: a server
requires masked frames and sends unmasked ones, and closes TCP first after the
closing handshake (RFC 6455 7.1.1); a client does the opposite of each.
"""

import enum
import logging
import secrets
from typing import Any, Callable, List, Optional, Union

from ..ops.ratelimit import RateLimitedLog
from .rfc6455 import (OP_CLOSE, OP_PING, OP_PONG, Close, CloseCode, Failure, FrameParser, Message, Ping, Pong,
                      encode_close_payload, encode_frame, encode_message, is_sendable_close_code)

__all__ = ["State", "Protocol", "ServerProtocol", "ClientProtocol", "new_mask"]

log = logging.getLogger(__name__)
# A flood of broken peers (a scanner, a bad client release) fails thousands of connections:
# one line per close code per 10 s, with the count, rather than one line each.
_fail_log = RateLimitedLog(log)


class State(enum.Enum):
    """The states of a WebSocket connection, compared by identity (``is``), never by order."""

    CONNECTING = "connecting"  #: the opening handshake is under way
    OPEN = "open"              #: messages flow both ways
    CLOSING = "closing"        #: our close frame is sent; the peer's is awaited
    CLOSED = "closed"          #: the closing handshake is done, or the connection failed or dropped


# Module-level names for the hot paths (a global read, no attribute lookup on the class).
CONNECTING, OPEN, CLOSING, CLOSED = State.CONNECTING, State.OPEN, State.CLOSING, State.CLOSED

#: The reason recorded with 1006.
DROPPED_REASON = "the connection dropped without a closing handshake"


def new_mask() -> bytes:
    """A fresh masking key from a strong source (RFC 6455 5.3: unpredictable to the server)."""
    return secrets.token_bytes(4)


class Protocol:
    """One open connection's protocol state, in one role (use :class:`ServerProtocol` or :class:`ClientProtocol`).

    - ``extension``: the agreed permessage-deflate state, or ``None``.
    - ``max_message_size``/``max_frame_size``: limits on what the peer sends (1009 past them).
    - ``close_timeout``: how long to wait for the peer's part of the closing
      handshake (see :attr:`expect_close_within`).
    - ``may_answer(size) -> bool``: asked before a pong answering a ping is
      queued; a server passes its write-limit check, so that a peer that pings
      but never reads cannot grow our buffer.  ``None`` always answers.

    Public attributes: :attr:`state`, :attr:`parser` (its ``feed`` turns
    bytes into events, for drivers that loop over them themselves),
    :attr:`outgoing`, :attr:`close_code`/:attr:`close_reason` (the peer's
    close, the failure's code, or 1006), ``close_sent``, ``close_received``,
    ``failed`` (we failed the connection), :attr:`close_transport`,
    :attr:`expect_close_within`.  The role is in the class attributes
    :attr:`client_side` and :attr:`mask_source`.

    One of these lives beside every open connection, so it keeps few
    attributes: the role is the class's, the extension the parser's, and
    :attr:`outgoing` is only made when something is queued.
    """

    __slots__ = ("parser", "state", "outgoing", "close_code", "close_reason", "close_sent", "close_received",
                 "failed", "close_timeout", "close_transport", "expect_close_within", "may_answer", "_held")

    #: True in the client role (set by the role's class).
    client_side = False
    #: Makes the masking key of each frame sent: ``None`` in the server role (servers do not mask).
    mask_source: Optional[Callable[[], bytes]] = None

    def __init__(self, extension: Any = None, *, max_message_size: int, max_frame_size: Optional[int] = None,
                 close_timeout: float = 5.0, may_answer: Optional[Callable[[int], bool]] = None) -> None:
        client_side = self.client_side
        # Client frames must be masked, server frames must not be (RFC 6455 5.1).
        self.parser = FrameParser(max_message_size=max_message_size, max_frame_size=max_frame_size,
                                  require_mask=not client_side, forbid_mask=client_side, extension=extension)
        self.state = OPEN
        #: Bytes to send, in order (``None`` until something is queued); :meth:`data_to_send` takes them.
        self.outgoing: Optional[List[bytes]] = None
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self.close_sent = False
        self.close_received = False
        self.failed = False
        self.close_timeout = close_timeout
        #: True once the driver must close the TCP connection (after sending :attr:`outgoing`).
        self.close_transport = False
        #: Seconds to wait for the peer to finish closing (then drop TCP); ``None`` while nothing is awaited.
        self.expect_close_within: Optional[float] = None
        self.may_answer = may_answer
        self._held: Any = None  # a Close or Failure waiting behind messages (see receive_data)

    def __repr__(self) -> str:
        return "<%s %s>" % (type(self).__name__, self.state.value)

    @property
    def is_open(self) -> bool:
        """True until a close frame was sent or received, or the connection dropped."""
        return self.state is OPEN

    @property
    def extension(self) -> Any:
        """The agreed permessage-deflate state, or ``None``."""
        return self.parser.extension

    def data_to_send(self) -> bytes:
        """The bytes queued for the peer (and forget them)."""
        outgoing, self.outgoing = self.outgoing, None
        return b"".join(outgoing) if outgoing else b""

    def _queue(self, frames: List[bytes]) -> None:
        if self.outgoing is None:
            self.outgoing = frames
        else:
            self.outgoing.extend(frames)

    # -- outbound -------------------------------------------------------------------
    def frames_for(self, message: Union[str, bytes, bytearray, memoryview], fragment_size: int = 0) -> List[bytes]:
        """The frames that carry ``message`` (text for ``str``) in this role, compressed if agreed."""
        data = message if isinstance(message, str) else bytes(message)
        extension = self.parser.extension
        if extension is not None:
            return extension.encode_message(data, fragment_size, mask_source=self.mask_source)
        return encode_message(data, fragment_size, mask_source=self.mask_source)

    def send(self, message: Union[str, bytes, bytearray, memoryview], fragment_size: int = 0) -> bool:
        """Queue a message; returns False (nothing queued) once the connection is not open."""
        if self.state is not OPEN:
            return False
        self._queue(self.frames_for(message, fragment_size))
        return True

    def ping(self, payload: Union[str, bytes] = b"") -> bool:
        """Queue a ping (at most 125 bytes of payload); False once the connection is not open."""
        return self._control(OP_PING, payload)

    def pong(self, payload: Union[str, bytes] = b"") -> bool:
        """Queue an unsolicited pong; False once the connection is not open."""
        return self._control(OP_PONG, payload)

    def _control(self, opcode: int, payload: Union[str, bytes]) -> bool:
        raw = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        if len(raw) > 125:
            raise ValueError("control frame payload over 125 bytes")
        if self.state is not OPEN:
            return False
        self._queue([self._frame(opcode, raw)])
        return True

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        mask_source = self.mask_source
        return encode_frame(opcode, payload, mask=mask_source() if mask_source is not None else None)

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the closing handshake: queue our close frame, then wait for the peer's.

        Sets :attr:`expect_close_within`.  Does nothing once the connection is
        not open (a close held back behind messages is acted on first).
        """
        if not is_sendable_close_code(code):
            raise ValueError("close code %d may not be sent" % code)
        self.end_pending()
        if self.state is not OPEN:
            return
        self._send_close(code, reason)
        self.state = CLOSING
        self.expect_close_within = self.close_timeout

    def _send_close(self, code: Optional[int], reason: str) -> None:
        self.close_sent = True
        self._queue([self._frame(OP_CLOSE, encode_close_payload(code, reason))])

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): our close frame if none was sent, then close TCP."""
        if self.state is CLOSED:
            return
        _fail_log.info(code, "%r: failing the connection with %d: %s", self, code, reason)
        if not self.close_sent:
            self._send_close(code, reason)
        self.close_code = code
        self.close_reason = reason
        self.failed = True
        self.state = CLOSED
        self.close_transport = True

    # -- inbound ----------------------------------------------------------------------
    def receive_data(self, data: bytes) -> List[Any]:
        """Feed the peer's bytes; returns the :class:`Message` and :class:`Pong` events for the application.

        Messages are returned only while the connection is open.  When a close
        frame or a protocol error follows messages in the same bytes, it is
        held back until :meth:`end_pending`, so that the application handles
        (and may answer) those messages first, in wire order.
        """
        events: List[Any] = []
        if self.state is CLOSED or self._held is not None:
            return events
        for event in self.parser.feed(data):
            kind = event.__class__
            if kind is Message:
                if self.state is OPEN:
                    events.append(event)
            elif (kind is Close or kind is Failure) and events and self.state is OPEN:
                self._held = event  # the parser stops after it: nothing follows
            else:
                answer = self.receive_event(event)
                if answer is not None:
                    events.append(answer)
        return events

    def receive_event(self, event: Any) -> Any:
        """Apply the rules for one parser event other than a :class:`Message`.

        Returns the event the application should see (a :class:`Pong`) or
        ``None``.  A ping is answered (unless ``may_answer`` refuses); the
        peer's close is echoed with its code (RFC 6455 5.5.1); a
        :class:`Failure` fails the connection.
        """
        kind = event.__class__
        if kind is Ping:
            if not self.close_sent:
                pong = self._frame(OP_PONG, event.payload)
                if self.may_answer is None or self.may_answer(len(pong)):
                    self._queue([pong])
        elif kind is Pong:
            return event
        elif kind is Close:
            self._peer_closed(event)
        elif kind is Failure:
            self.fail(event.code, event.reason)
        return None

    def _peer_closed(self, event: Close) -> None:
        self.close_received = True
        self.close_code = CloseCode.NO_STATUS if event.code is None else event.code
        self.close_reason = event.reason
        if not self.close_sent:
            self._send_close(event.code, "")
        self.state = CLOSED
        if self.client_side:
            # The server closes the TCP connection first (RFC 6455 7.1.1): wait for it, a while.
            self.expect_close_within = self.close_timeout
        else:
            self.close_transport = True

    def end_pending(self) -> None:
        """Act on a close frame or protocol error held back behind messages (see :meth:`receive_data`)."""
        event, self._held = self._held, None
        if event is not None:
            self.receive_event(event)

    def connection_lost(self) -> None:
        """The TCP connection ended: 1006 unless the closing handshake was done."""
        if self.state is CLOSED:
            return
        self.end_pending()
        if self.state is CLOSED:
            return
        self.state = CLOSED
        self.close_code = CloseCode.ABNORMAL
        self.close_reason = DROPPED_REASON


class ServerProtocol(Protocol):
    """The server role: requires masked frames, sends unmasked ones, closes TCP first."""

    __slots__ = ()


class ClientProtocol(Protocol):
    """The client role: masks every frame with a fresh key, rejects masked frames, lets the server close TCP."""

    __slots__ = ()

    client_side = True
    mask_source = staticmethod(new_mask)
