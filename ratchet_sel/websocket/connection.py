"""WsConnection: the WebSocket connection an application talks to."""

import logging
from typing import Any, Iterable, List, Optional, Union

from ..ops.stats import STATS
from . import hixie
from .rfc6455 import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Close, CloseCode, Failure, Message,
                      Ping, Pong, SMALL_FRAME_HEADERS, encode_close_payload, encode_frame, encode_message, frame_header,
                      is_sendable_close_code)

__all__ = ["WsConnection", "HixieConnection", "broadcast"]

log = logging.getLogger(__name__)

_OPEN, _CLOSING, _CLOSED = "open", "closing", "closed"

# Above this size a frame's header and payload are written side by side
# (one sendmsg) rather than copied into one buffer.
_COALESCE_LIMIT = 64 * 1024


class WsConnection:
    """One WebSocket connection, the same object for its whole life.

    Attributes: ``resource_id``, ``remote_address``, ``remote_port``,
    ``request`` (the upgrade :class:`~ratchet_sel.http.Request`: method, path,
    query, headers, cookies), ``version`` (``"rfc6455"``, ``"hybi-10"``,
    ``"hixie-76"`` or ``"hixie-75"``), ``subprotocol`` (``None`` if none was
    agreed), ``close_code``/``close_reason`` (what the peer sent; 1006 when the
    connection dropped).  User attributes may be added freely.
    """

    __slots__ = ("__dict__", "__weakref__", "transport", "resource_id", "remote_address", "remote_port", "request",
                 "version", "subprotocol", "extension", "close_code", "close_reason",
                 "dropped_messages", "_server", "_parser", "_state", "_close_timer",
                 "_ping_outstanding", "_last_seen", "_close_listeners")

    def __init__(self, server: Any, transport: Any, request: Any, version: str,
                 subprotocol: Optional[str], parser: Any, extension: Any = None) -> None:
        self.transport = transport
        self.resource_id = transport.resource_id
        self.remote_address = transport.remote_address
        self.remote_port = getattr(transport, "remote_port", 0)
        self.request = request
        self.version = version
        self.subprotocol = subprotocol
        self.extension = extension
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self._server = server
        self._parser = parser
        self._state = _OPEN
        self._close_timer: Any = None
        #: Messages not sent because the client was not reading (policy "drop").
        self.dropped_messages = 0
        self._ping_outstanding = False
        self._last_seen = transport.loop.time()
        self._close_listeners: Optional[List[Any]] = None

    def __repr__(self) -> str:
        return "<WsConnection #%d %s %s>" % (self.resource_id, self.remote_address, self.version)

    @property
    def loop(self) -> Any:
        """The loop this connection runs on (for timers)."""
        return self.transport.loop

    @property
    def buffered_amount(self) -> int:
        """Bytes sent by the application that the kernel has not taken yet."""
        return self.transport.buffered_amount

    @property
    def is_open(self) -> bool:
        """True until a close frame was sent or received, or the connection dropped."""
        return self._state is _OPEN

    # -- sending ------------------------------------------------------------
    def send(self, message: Union[str, bytes, bytearray, memoryview], fragment_size: int = 0) -> None:
        """Send a text (``str``) or binary (bytes-like) message.

        ``fragment_size`` > 0 splits it into frames of at most that many bytes.
        Messages sent after the connection began closing are dropped.
        """
        if self._state is not _OPEN:
            log.debug("%r: message dropped, the connection is %s", self, self._state)
            return
        transport = self.transport
        if fragment_size > 0 or self.extension is not None:
            frames = self._encode(message, fragment_size)
            if transport.buffered_amount and not self._room_for(sum(len(f) for f in frames)):
                return
            STATS.messages_sent += 1
            for frame in frames:
                transport.send(frame)
            return
        if message.__class__ is str:
            payload: Any = message.encode("utf-8")  # type: ignore[union-attr]
            opcode = OP_TEXT
        else:
            payload = message
            opcode = OP_BINARY
        size = len(payload)
        if transport.buffered_amount and not self._room_for(size + 10):
            return
        STATS.messages_sent += 1
        if size < 126:
            transport.send(SMALL_FRAME_HEADERS[opcode][size] + payload)
        elif size <= _COALESCE_LIMIT:
            transport.send(frame_header(opcode, size) + payload)
        else:
            transport.writev((frame_header(opcode, size), payload))

    def _room_for(self, size: int) -> bool:
        """May ``size`` more bytes be buffered?  If not, the server's slow-client policy acts."""
        if self.transport.buffered_amount + size <= self._server.write_limit:
            return True
        self._server._write_limit_reached(self)
        return False

    def _encode(self, message: Any, fragment_size: int = 0) -> List[bytes]:
        if self.extension is not None:
            return self.extension.encode_message(message, fragment_size)
        return encode_message(message, fragment_size)

    def ping(self, payload: Union[str, bytes] = b"") -> None:
        """Send a ping (at most 125 bytes of payload); the peer answers with a pong."""
        self._send_control(OP_PING, payload)

    def pong(self, payload: Union[str, bytes] = b"") -> None:
        """Send an unsolicited pong (a one-way heartbeat)."""
        self._send_control(OP_PONG, payload)

    def _send_control(self, opcode: int, payload: Union[str, bytes]) -> None:
        raw = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        if len(raw) > 125:
            raise ValueError("control frame payload over 125 bytes")
        if self._state is _OPEN:
            self.transport.send(encode_frame(opcode, raw))

    # -- closing ----------------------------------------------------------------
    def add_close_listener(self, callback: Any) -> None:
        """Call ``callback(conn)`` once the connection has closed, after the application's ``on_close``.

        Meant for shared registries (topics, sessions) that must forget a
        connection without relying on every application to tell them.  A
        listener added to a connection that has already closed is never called.
        """
        if self._close_listeners is None:
            self._close_listeners = [callback]
        elif callback not in self._close_listeners:
            self._close_listeners.append(callback)

    def remove_close_listener(self, callback: Any) -> None:
        """Forget a callback given to :meth:`add_close_listener` (no error if absent)."""
        if self._close_listeners is not None and callback in self._close_listeners:
            self._close_listeners.remove(callback)

    def _notify_closed(self) -> None:
        listeners, self._close_listeners = self._close_listeners, None
        for callback in listeners or ():
            try:
                callback(self)
            except Exception:
                log.exception("%r: a close listener raised", self)

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the closing handshake: send a close frame and wait for the peer's.

        The TCP connection is dropped when the peer answers, or after the
        server's ``close_timeout``.  ``on_close`` follows either way.
        """
        if not is_sendable_close_code(code):
            raise ValueError("close code %d may not be sent" % code)
        if self._state is not _OPEN:
            return
        frame = self._close_frame(code, reason)
        if not frame:  # a protocol without a closing handshake
            self._finish()
            return
        self._state = _CLOSING
        self.transport.send(frame)
        self._close_timer = self.transport.loop.call_later(self._server.close_timeout,
                                                           self._on_close_timeout)

    def _close_frame(self, code: Optional[int], reason: str) -> bytes:
        return encode_frame(OP_CLOSE, encode_close_payload(code, reason))

    def abort(self) -> None:
        """Drop the TCP connection now, without a closing handshake."""
        self._state = _CLOSED
        self.transport.abort()

    def _on_close_timeout(self) -> None:
        log.info("%r: no close frame from the peer within %g s; dropping", self,
                 self._server.close_timeout)
        self.transport.abort()

    # -- receiving -----------------------------------------------------------------
    def _data_received(self, data: Any, direct_size: int = 0) -> None:
        # ``data`` from the transport's on_message, or ``direct_size`` bytes
        # that the transport read straight into the parser's payload_buffer().
        parser = self._parser
        server = self._server
        # Any traffic proves the peer alive.
        self._ping_outstanding = False
        if server.idle_timeout:
            self._last_seen = self.transport.loop.time()
        for event in parser.payload_written(direct_size) if direct_size else parser.feed(data):
            kind = event.__class__
            if kind is Message:
                if self._state is _OPEN:
                    # The application's on_message, called here: this runs once per message.
                    STATS.messages_received += 1
                    try:
                        server.component.on_message(self, event.data)
                    except Exception as exc:
                        server._app_error(self, exc)
            elif kind is Ping:
                if self._state is _OPEN:
                    pong = encode_frame(OP_PONG, event.payload)
                    # A client that pings but never reads must not grow our buffer.
                    if not self.transport.buffered_amount or self._room_for(len(pong)):
                        self.transport.send(pong)
            elif kind is Pong:
                server._pong_received(self, event.payload)
            elif kind is Close:
                self._peer_closed(event)
            elif kind is Failure:
                self._fail(event.code, event.reason)
        if parser.large_frame_pending and not direct_size:
            # The rest of a large frame can go from the socket straight into its buffer.
            read_directly = getattr(self.transport, "read_directly", None)
            if read_directly is not None:
                read_directly(self._payload_buffer, self._payload_read)

    # For the transport's read_directly().
    def _payload_buffer(self) -> Optional[memoryview]:
        return self._parser.payload_buffer() if self._state is not _CLOSED else None

    def _payload_read(self, size: int) -> None:
        self._data_received(None, size)

    def _peer_closed(self, event: Close) -> None:
        self.close_code = CloseCode.NO_STATUS if event.code is None else event.code
        self.close_reason = event.reason
        if self._state is _OPEN:
            # Echo the peer's code (RFC 6455 5.5.1), then close TCP: the server
            # closes the TCP connection first (section 7.1.1).
            self.transport.send(self._close_frame(event.code, ""))
        self._finish()

    def _fail(self, code: int, reason: str) -> None:
        log.info("%r: failing the connection with %d: %s", self, code, reason)
        if self._state is _OPEN:
            self.transport.send(self._close_frame(code, reason))
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self._finish()

    def _finish(self) -> None:
        self._state = _CLOSED
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self.transport.close()

    def _transport_closed(self) -> None:
        self._state = _CLOSED
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self.close_code is None:
            self.close_code = CloseCode.ABNORMAL


class HixieConnection(WsConnection):
    """A draft-76/75 connection: text messages only, no pings, no close codes.

    ``send(bytes)`` raises :class:`TypeError` (the drafts have no binary
    frames); ``ping``/``pong`` do nothing; ``close`` sends draft-76's
    ``0xFF 0x00`` (draft-75 just closes the TCP connection).
    """

    __slots__ = ()

    def send(self, message: Union[str, bytes, bytearray, memoryview], fragment_size: int = 0) -> None:
        """Send a text message (drafts have no binary messages and no fragments)."""
        if not isinstance(message, str):
            raise TypeError("a %s connection cannot send binary messages" % self.version)
        if self._state is _OPEN:
            frame = hixie.encode_text(message)
            if not self.transport.buffered_amount or self._room_for(len(frame)):
                STATS.messages_sent += 1
                self.transport.send(frame)

    def _send_control(self, opcode: int, payload: Union[str, bytes]) -> None:
        pass  # the drafts have no control frames besides closing

    def _close_frame(self, code: Optional[int], reason: str) -> bytes:
        return hixie.CLOSE_FRAME if self.version == "hixie-76" else b""


def broadcast(connections: Iterable[WsConnection], message: Union[str, bytes],
              exclude: Optional[WsConnection] = None) -> int:
    """Send ``message`` to every open connection (but ``exclude``); returns how many got it.

    The frames are encoded once per kind of connection and the same bytes are
    written to every connection of that kind: plain RFC 6455/HyBi, and
    compressed without context takeover (one compression per broadcast).
    Connections whose frames depend on their own state (context takeover,
    drafts) encode their own.
    """
    shared: dict = {}
    plain: Optional[bytes] = None  # the frame for connections without an extension, the common case
    count = 0
    written = 0  # shared frames written here
    frames: Any
    for conn in connections:
        if conn is exclude or conn._state is not _OPEN:
            continue
        extension = conn.extension
        if extension is None and conn.__class__ is not HixieConnection:
            if plain is None:
                plain = b"".join(encode_message(message))
            frames = plain
        elif conn.__class__ is HixieConnection:
            if message.__class__ is not str:
                continue  # the drafts cannot carry binary messages
            conn.send(message)
            count += 1
            continue
        elif extension.shared_key is not None:
            frames = shared.get(extension.shared_key)
            if frames is None:
                frames = shared[extension.shared_key] = b"".join(conn._encode(message))
        else:
            conn.send(message)
            count += 1
            continue
        transport = conn.transport
        if not transport.try_write(frames):  # bytes pending: the slow-client policy decides
            if not conn._room_for(len(frames)):
                continue
            transport.send(frames)
        written += 1
        count += 1
    STATS.messages_sent += written  # (conn.send counted its own)
    return count
