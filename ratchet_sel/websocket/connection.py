"""WsConnection: the WebSocket connection an application talks to.

It drives a sans-IO protocol object (:class:`~ratchet_sel.websocket.protocol.ServerProtocol`,
or :class:`~ratchet_sel.websocket.hixie.HixieProtocol` for the drafts) over the
server's transport, and meets the server that made it through
:class:`ConnectionPolicy` only.
"""

import logging
from abc import ABC, abstractmethod
from typing import Any, Iterable, List, Optional, Union

from ..ops.ratelimit import RateLimitedLog
from ..ops.stats import STATS
from . import hixie
from .protocol import CLOSED, OPEN
from .rfc6455 import OP_BINARY, OP_TEXT, CloseCode, Message, Ping, SMALL_FRAME_HEADERS, encode_message, frame_header

__all__ = ["WsConnection", "HixieConnection", "ConnectionPolicy", "broadcast", "PLAIN_FRAMES"]

log = logging.getLogger(__name__)

# A shutdown closes every connection at once, and peers that are gone answer none:
# their close timeouts fire together.  One line per 10 s, with the count.
_close_timeout_log = RateLimitedLog(log)

# Above this size a frame's header and payload are written side by side
# (one sendmsg) rather than copied into one buffer.
_COALESCE_LIMIT = 64 * 1024

#: The :attr:`WsConnection.frame_key` of RFC 6455/HyBi connections without an
#: extension: their frames for a message are the plain unmasked frames.
PLAIN_FRAMES = "rfc6455-plain"


class ConnectionPolicy(ABC):
    """What a :class:`WsConnection` asks of the server that made it (:class:`~ratchet_sel.WsServer` is one).

    Attributes read by the connection: ``component`` (the application),
    ``write_limit`` (bytes buffered for a peer before :meth:`write_limit_reached`),
    ``idle_timeout`` (when set, the connection records :attr:`WsConnection.last_seen`).
    """

    component: Any
    write_limit: int
    idle_timeout: Optional[float]

    @abstractmethod
    def write_limit_reached(self, conn: "WsConnection") -> None:
        """``conn`` has more buffered than ``write_limit`` allows: apply the slow-client policy."""

    @abstractmethod
    def application_error(self, conn: "WsConnection", exc: BaseException) -> None:
        """A callback of the application raised ``exc`` while handling ``conn``."""

    @abstractmethod
    def pong_received(self, conn: "WsConnection", payload: bytes) -> None:
        """The peer of ``conn`` sent a pong carrying ``payload``."""


class WsConnection:
    """One WebSocket connection, the same object for its whole life.

    Attributes: ``resource_id``, ``remote_address``, ``remote_port``,
    ``request`` (the upgrade :class:`~ratchet_sel.http.Request`: method, path,
    query, headers, cookies), ``version`` (``"rfc6455"``, ``"hybi-10"``,
    ``"hixie-76"`` or ``"hixie-75"``), ``subprotocol`` (``None`` if none was
    agreed), ``close_code``/``close_reason`` (what the peer sent; 1006 when the
    connection dropped), ``user`` (who the peer is, as an authenticating guard
    such as :class:`~ratchet_sel.TokenAuth` found it; ``None`` without one).
    User attributes may be added freely.

    For the server and :func:`broadcast`: ``protocol`` (the sans-IO protocol
    object, whose ``state`` is the connection's :class:`~ratchet_sel.websocket.protocol.State`),
    ``frame_key``, :meth:`frames_for`, :meth:`room_for`, :meth:`data_received`,
    :meth:`connection_lost`, :meth:`run_close_listeners`, ``ping_outstanding``
    and ``last_seen``.
    """

    __slots__ = ("__dict__", "__weakref__", "transport", "resource_id", "remote_address", "remote_port", "request",
                 "user", "version", "subprotocol", "extension", "dropped_messages", "protocol", "frame_key",
                 "ping_outstanding", "last_seen", "_policy", "_close_timer", "_close_listeners")

    def __init__(self, policy: "ConnectionPolicy", transport: Any, request: Any, version: str,
                 subprotocol: Optional[str], protocol: Any, extension: Any = None) -> None:
        self.transport = transport
        self.resource_id = transport.resource_id
        self.remote_address = transport.remote_address
        self.remote_port = getattr(transport, "remote_port", 0)
        self.request = request
        #: Who the peer is: what an authenticating guard's check returned (it is kept on the request).
        self.user: Any = getattr(request, "user", None)
        self.version = version
        self.subprotocol = subprotocol
        self.extension = extension
        #: The sans-IO protocol this connection drives; ``protocol.state`` is its state.
        self.protocol = protocol
        #: Connections with equal keys are sent identical bytes for a message
        #: (see :func:`broadcast`); ``None``: this one encodes its own.
        self.frame_key: Any = PLAIN_FRAMES if extension is None else extension.shared_key
        #: Messages not sent because the client was not reading (policy "drop").
        self.dropped_messages = 0
        #: True from a keepalive ping until the peer sends anything.
        self.ping_outstanding = False
        #: The loop time of the peer's last bytes (kept up to date only under an idle timeout).
        self.last_seen = transport.loop.time()
        self._policy = policy
        self._close_timer: Any = None
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
        return self.protocol.state is OPEN

    @property
    def close_code(self) -> Optional[int]:
        """The peer's close code (1005 for a close frame without one), the code we failed with, or 1006; else None."""
        return self.protocol.close_code

    @property
    def close_reason(self) -> str:
        """The reason that goes with :attr:`close_code`."""
        return self.protocol.close_reason

    # -- sending ------------------------------------------------------------
    def send(self, message: Union[str, bytes, bytearray, memoryview], fragment_size: int = 0) -> None:
        """Send a text (``str``) or binary (bytes-like) message.

        ``fragment_size`` > 0 splits it into frames of at most that many bytes.
        Messages sent after the connection began closing are dropped.
        """
        if self.protocol.state is not OPEN:
            log.debug("%r: message dropped, the connection is %s", self, self.protocol.state.value)
            return
        transport = self.transport
        if fragment_size > 0 or self.extension is not None:
            frames = self.protocol.frames_for(message, fragment_size)
            if transport.buffered_amount and not self.room_for(sum(len(f) for f in frames)):
                return
            STATS.messages_sent += 1
            for frame in frames:
                transport.send(frame)
            return
        # The common case, written out: one unmasked frame, no call into the protocol.
        if message.__class__ is str:
            payload: Any = message.encode("utf-8")  # type: ignore[union-attr]
            opcode = OP_TEXT
        else:
            payload = message
            opcode = OP_BINARY
        size = len(payload)
        if transport.buffered_amount and not self.room_for(size + 10):
            return
        STATS.messages_sent += 1
        if size < 126:
            transport.send(SMALL_FRAME_HEADERS[opcode][size] + payload)
        elif size <= _COALESCE_LIMIT:
            transport.send(frame_header(opcode, size) + payload)
        else:
            transport.writev((frame_header(opcode, size), payload))

    def room_for(self, size: int) -> bool:
        """May ``size`` more bytes be buffered?  If not, the server's slow-client policy acts (and False)."""
        if self.transport.buffered_amount + size <= self._policy.write_limit:
            return True
        self._policy.write_limit_reached(self)
        return False

    def frames_for(self, message: Union[str, bytes]) -> Optional[bytes]:
        """The bytes that carry ``message`` on this connection, or None if it cannot carry it."""
        return b"".join(self.protocol.frames_for(message))

    def ping(self, payload: Union[str, bytes] = b"") -> None:
        """Send a ping (at most 125 bytes of payload); the peer answers with a pong."""
        if self.protocol.ping(payload):
            self.transport.send(self.protocol.data_to_send())

    def pong(self, payload: Union[str, bytes] = b"") -> None:
        """Send an unsolicited pong (a one-way heartbeat)."""
        if self.protocol.pong(payload):
            self.transport.send(self.protocol.data_to_send())

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

    def run_close_listeners(self) -> None:
        """Call the close listeners once (the server does, after ``on_close``); later calls do nothing."""
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
        self.protocol.close(code, reason)
        self._act()

    def abort(self) -> None:
        """Drop the TCP connection now, without a closing handshake."""
        self.protocol.connection_lost()
        self.transport.abort()

    def _act(self) -> None:
        # Do what the protocol decided: send its bytes, then close TCP or wait for the peer.
        protocol = self.protocol
        if protocol.outgoing:
            self.transport.send(protocol.data_to_send())
        if protocol.close_transport:
            self._cancel_close_timer()
            self.transport.close()
        elif protocol.expect_close_within is not None and self._close_timer is None:
            self._close_timer = self.transport.loop.call_later(protocol.expect_close_within,
                                                               self._on_close_timeout)

    def _on_close_timeout(self) -> None:
        _close_timeout_log.info("close-timeout", "%r: no close frame from the peer within %g s; dropping", self,
                                self.protocol.expect_close_within)
        self._close_timer = None
        self.transport.abort()

    def _cancel_close_timer(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None

    # -- receiving -----------------------------------------------------------------
    def data_received(self, data: Any, direct_size: int = 0) -> None:
        """Bytes from the peer: ``data``, or ``direct_size`` bytes the transport read into the parser's buffer."""
        protocol = self.protocol
        policy = self._policy
        # Any traffic proves the peer alive.
        self.ping_outstanding = False
        if policy.idle_timeout:
            self.last_seen = self.transport.loop.time()
        # The protocol's events are looped over here, so that a message costs
        # no call beyond the parser's and the application's; every other
        # event goes to the protocol's rules.
        for event in protocol.parser.payload_written(direct_size) if direct_size else protocol.parser.feed(data):
            if event.__class__ is Message:
                if protocol.state is OPEN:
                    STATS.messages_received += 1
                    try:
                        policy.component.on_message(self, event.data)
                    except Exception as exc:
                        policy.application_error(self, exc)
            else:
                self._event_received(event)
        if protocol.parser.large_frame_pending and not direct_size:
            # The rest of a large frame can go from the socket straight into its buffer.
            read_directly = getattr(self.transport, "read_directly", None)
            if read_directly is not None:
                read_directly(self._payload_buffer, self._payload_read)

    def _event_received(self, event: Any) -> None:
        if (event.__class__ is Ping and self.transport.buffered_amount
                and not self.room_for(2 + len(event.payload))):
            # The write limit is this server's policy, applied before the
            # protocol's rule (answer every ping): a client that pings but
            # never reads must not grow our buffer with pongs.
            return
        pong = self.protocol.receive_event(event)
        self._act()
        if pong is not None:
            self._policy.pong_received(self, pong.payload)

    # For the transport's read_directly().
    def _payload_buffer(self) -> Optional[memoryview]:
        return self.protocol.parser.payload_buffer() if self.protocol.state is not CLOSED else None

    def _payload_read(self, size: int) -> None:
        self.data_received(None, size)

    def connection_lost(self) -> None:
        """The transport has closed: the connection is closed (1006 unless the closing handshake was done)."""
        self._cancel_close_timer()
        self.protocol.connection_lost()


class HixieConnection(WsConnection):
    """A draft-76/75 connection: text messages only, no pings, no close codes.

    ``send(bytes)`` raises :class:`TypeError` (the drafts have no binary
    frames); ``ping``/``pong`` do nothing; ``close`` sends draft-76's
    ``0xFF 0x00`` (draft-75 just closes the TCP connection).
    """

    __slots__ = ()

    def __init__(self, policy: "ConnectionPolicy", transport: Any, request: Any, version: str,
                 subprotocol: Optional[str], protocol: Any) -> None:
        super().__init__(policy, transport, request, version, subprotocol, protocol)
        # Every draft connection frames a text message the same way.
        self.frame_key = hixie.FRAME_KEY

    def send(self, message: Union[str, bytes, bytearray, memoryview], fragment_size: int = 0) -> None:
        """Send a text message (drafts have no binary messages and no fragments)."""
        if not isinstance(message, str):
            raise TypeError("a %s connection cannot send binary messages" % self.version)
        if self.protocol.state is OPEN:
            frame = hixie.encode_text(message)
            if not self.transport.buffered_amount or self.room_for(len(frame)):
                STATS.messages_sent += 1
                self.transport.send(frame)

    def frames_for(self, message: Union[str, bytes]) -> Optional[bytes]:
        """The draft frame of a text message; None for a binary one, which the drafts cannot carry."""
        return hixie.encode_text(message) if message.__class__ is str else None  # type: ignore[arg-type]


def broadcast(connections: Iterable[WsConnection], message: Union[str, bytes],
              exclude: Optional[WsConnection] = None) -> int:
    """Send ``message`` to every open connection (but ``exclude``); returns how many got it.

    The frames are encoded once per :attr:`~WsConnection.frame_key` and the
    same bytes are written to every connection with that key: plain RFC
    6455/HyBi, compressed without context takeover (one compression per
    broadcast), and the drafts (text only: binary messages skip them).
    Connections whose frames depend on their own state (context takeover)
    have no key and encode their own.  A connection with bytes still
    pending gets the frames through its server's write limit (the
    slow-client policy), as :meth:`WsConnection.send` would.
    """
    # The common case (open, no extension) is only gathered here and written in one
    # batch by the transports' write_each (io/stream.py): per receiver no Python call
    # but the socket's send.
    plain_conns: List[WsConnection] = []
    plain_transports: List[Any] = []
    add_conn, add_transport = plain_conns.append, plain_transports.append
    shared: dict = {}
    sent_own = 0  # connections that encoded their own frames (conn.send counts them)
    written = 0  # frames written here
    for conn in connections:
        key = conn.frame_key
        if conn.protocol.state is not OPEN or conn is exclude:
            continue
        if key is PLAIN_FRAMES:
            add_conn(conn)
            add_transport(conn.transport)
            continue
        if key is None:
            conn.send(message)
            sent_own += 1
            continue
        if key in shared:
            frames = shared[key]
        else:
            frames = shared[key] = conn.frames_for(message)
        if frames is None:
            continue  # this kind of connection cannot carry the message
        if _write_frames(conn, frames):
            written += 1
    if plain_transports:
        plain = b"".join(encode_message(message))
        behind = plain_transports[0].write_each(plain_transports, plain)  # Stream.write_each, for all
        written += len(plain_transports) - len(behind)
        if behind:
            conn_of = {conn.transport: conn for conn in plain_conns}
            written += sum(1 for transport in behind if _write_frames(conn_of[transport], plain, tried=True))
    STATS.messages_sent += written  # (conn.send counted its own)
    return sent_own + written


def _write_frames(conn: WsConnection, frames: bytes, tried: bool = False) -> bool:
    """Write already encoded ``frames`` to ``conn`` now, or buffer them within its write limit; whether it took them."""
    transport = conn.transport
    if not tried and transport.try_write(frames):
        return True
    if not conn.room_for(len(frames)):  # bytes pending: the slow-client policy decides
        return False
    transport.send(frames)
    return True
