"""The loop-based client: ``connect_async(loop, url, component)``.

The connection runs on a :class:`~ratchet_sel.Loop` next to any servers of
that loop and drives a server-style component: ``on_open(conn)``,
``on_message(conn, str | bytes)``, ``on_close(conn)`` (exactly once after
``on_open``) and ``on_error(conn, exc)``.  A failed connection attempt (DNS,
TCP, TLS, timeout, a bad handshake) calls ``on_error`` alone, since the
connection never opened.  One process can so relay between a server it
serves and one it consumes, without threads.
"""

import logging
from typing import Any, Optional, Sequence, Union

from ..io.stream import Stream, StreamOwner
from ..websocket.protocol import State
from ..websocket.rfc6455 import CloseCode, Message
from .handshake import ClientHandshake, HandshakeError, Target, parse_url
from .options import client_offer, client_ssl_context, connect_error
from .protocol import DEFAULT_MAX_MESSAGE_SIZE, ClientProtocol, ConnectionClosed

__all__ = ["connect_async", "AsyncClientConnection"]

log = logging.getLogger(__name__)

# The connection's states (its protocol's, until the TCP connection is released: CLOSED).
_CONNECTING, _OPEN, _CLOSING, _CLOSED = State.CONNECTING, State.OPEN, State.CLOSING, State.CLOSED


def connect_async(loop: Any, url: str, component: Any, *, subprotocols: Sequence[str] = (),
                  headers: Any = None, origin: Optional[str] = None, timeout: float = 10,
                  compression: Any = True, ssl_context: Any = None,
                  max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                  close_timeout: float = 5) -> "AsyncClientConnection":
    """Start connecting to ``url`` on ``loop``; returns the connection object at once.

    The options are those of :func:`~ratchet_sel.client.connect`; ``timeout``
    bounds connecting plus the opening handshake (``on_error`` gets a
    :class:`TimeoutError`), ``close_timeout`` the closing handshake.  Call it
    from the loop thread (or before the loop runs).
    """
    target = parse_url(url)
    handshake = ClientHandshake(target, subprotocols=subprotocols, headers=headers, origin=origin,
                                offer=client_offer(compression))
    context = None
    if target.secure:
        context = ssl_context if ssl_context is not None else client_ssl_context()
    return AsyncClientConnection(loop, target, component, handshake, max_message_size, close_timeout,
                                 ssl_context=context, connect_timeout=timeout)


class AsyncClientConnection(StreamOwner):
    """A client connection on a loop, the same object in every callback.

    Like a server-side connection it has ``send``, ``ping``, ``close``,
    ``abort``, ``is_open``, ``subprotocol``, ``close_code`` and
    ``close_reason``; plus ``url``, ``response_headers`` and ``extension``
    once open.  User attributes may be added freely.  Its bytes travel over a
    :class:`~ratchet_sel.io.stream.Stream`, which reports to it as its owner.
    Given a ``connect_timeout``, it starts connecting at once (``ssl_context``
    for ``wss://``), as :func:`connect_async` has it do.
    """

    def __init__(self, loop: Any, target: Target, component: Any, handshake: ClientHandshake,
                 max_message_size: int, close_timeout: float, *, ssl_context: Any = None,
                 connect_timeout: Optional[float] = None) -> None:
        self.loop = loop
        self.url = target.url
        self.component = component
        self.subprotocol: Optional[str] = None
        self.response_headers = handshake.response_headers
        self.extension: Any = None
        self.close_timeout = close_timeout
        self._target = target
        self._handshake = handshake
        self._max_message_size = max_message_size
        self._protocol: Optional[ClientProtocol] = None
        self._stream: Optional[Stream] = None
        self._state = _CONNECTING
        self._handshaking = False  # CONNECTING: TCP (and TLS) first, then the opening handshake
        self._timer: Any = None
        if connect_timeout is not None:
            self._start(ssl_context, connect_timeout)

    def __repr__(self) -> str:
        return "<AsyncClientConnection %s %s>" % (self.url, self._state.value)

    @property
    def is_open(self) -> bool:
        """True while messages may be sent."""
        return self._state is _OPEN and self._protocol is not None and self._protocol.is_open

    @property
    def close_code(self) -> Optional[int]:
        """The close code once closed (1006 when the connection dropped), else ``None``."""
        closed = self._protocol.closed if self._protocol is not None else None
        return closed.code if closed is not None else None

    @property
    def close_reason(self) -> str:
        """The close reason once closed."""
        closed = self._protocol.closed if self._protocol is not None else None
        return closed.reason if closed is not None else ""

    # -- connecting ------------------------------------------------------------
    def _start(self, context: Any, timeout: float) -> None:
        self._timer = self.loop.call_later(timeout, self._timed_out, timeout)
        self._stream = Stream.connect(self.loop, self._target.host, self._target.port, self, self._stream_data,
                                      ssl_context=context, server_hostname=self._target.host)

    def stream_opened(self, stream: Stream) -> None:
        """The stream is connected (TLS done): the opening handshake starts."""
        self._begin_handshake()

    def stream_failed(self, stream: Stream, exc: BaseException) -> None:
        """Resolution, TCP or TLS failed: the attempt fails (``on_error``, the error naming the address)."""
        self._fail_attempt(connect_error(exc, self._target.host, self._target.port))

    def stream_ended(self, stream: Stream, exc: Optional[BaseException]) -> None:
        """The server ended TCP (or it failed): the end of the handshake or of the connection."""
        if self._state is _CONNECTING:
            self._handshake_data(b"")
        elif self._state is _OPEN or self._state is _CLOSING:
            self._lost()

    def _begin_handshake(self) -> None:
        self._handshaking = True
        self._write(self._handshake.request)

    def _timed_out(self, timeout: float) -> None:
        self._timer = None
        if self._state is _CONNECTING and self._handshaking and self._handshake.refused:
            self._handshake_data(b"")  # the refusal's status is the answer, body or not
        elif self._state is _CONNECTING:
            what = "handshake response" if self._handshaking else "connection"
            self._fail_attempt(TimeoutError("no complete %s from %s within %g s" % (what, self.url, timeout)))
        elif self._state is _CLOSING:
            log.info("%r: no close from the server within %g s; dropping", self, timeout)
            self._release()

    def _fail_attempt(self, exc: BaseException) -> None:
        if self._state is not _CONNECTING:
            return
        log.info("%r: connection failed: %s", self, exc)
        self._state = _CLOSED
        self._cancel_timer()
        if self._stream is not None:
            self._stream.abort()
        self._call("on_error", exc)

    def _handshake_data(self, data: bytes) -> None:
        try:
            if not data:
                self._handshake.eof()  # always raises
            done = self._handshake.feed(data)
        except HandshakeError as exc:
            self._fail_attempt(exc)
            return
        if not done:
            return
        self._cancel_timer()
        self._state = _OPEN
        self.subprotocol = self._handshake.subprotocol
        self.extension = self._handshake.extension
        self._protocol = ClientProtocol(self.extension, self._max_message_size, self.close_timeout)
        self._call("on_open")
        if self._handshake.leftover and self._state is not _CLOSED:
            self._data_received(self._handshake.leftover)

    # -- sending ---------------------------------------------------------------
    def send(self, message: Union[str, bytes, bytearray, memoryview], fragment_size: int = 0) -> None:
        """Send a text (``str``) or binary message; dropped (and logged) once the connection is closing."""
        if not self.is_open:
            log.debug("%r: message dropped, the connection is not open", self)
            return
        assert self._protocol is not None
        self._protocol.send(message, fragment_size)
        self._flush()

    def ping(self, payload: Union[str, bytes] = b"") -> None:
        """Send a ping; the pong goes to the component's ``on_pong(conn, payload)`` if it has one."""
        if self.is_open:
            assert self._protocol is not None
            self._protocol.ping(payload)
            self._flush()

    @property
    def buffered_amount(self) -> int:
        """Bytes sent that the kernel has not taken yet."""
        return self._stream.buffered_amount if self._stream is not None else 0

    def _flush(self) -> None:
        if self._protocol is not None:
            data = self._protocol.data_to_send()
            if data:
                self._write(data)

    def _write(self, data: bytes) -> None:
        if self._stream is not None and self._state is not _CLOSED:
            self._stream.send(data)

    # -- receiving ---------------------------------------------------------------
    def _stream_data(self, stream: Stream, data: bytes) -> None:
        if self._state is _CONNECTING:
            self._handshake_data(data)
        elif self._state is _OPEN or self._state is _CLOSING:
            self._data_received(data)

    def _data_received(self, data: bytes) -> None:
        protocol = self._protocol
        assert protocol is not None
        for event in protocol.receive(data):
            if event.__class__ is Message:
                self._call("on_message", event.data)
            elif hasattr(self.component, "on_pong"):
                self._call("on_pong", event.payload)
        protocol.end_pending()  # the application has seen every message before the end
        self._flush()
        if protocol.state is _CLOSED and self._state is not _CLOSED:
            self._act()

    # -- closing -------------------------------------------------------------------
    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the closing handshake (or abandon a connection still being made).

        ``on_close`` follows once the server has answered and ended TCP, or
        after ``close_timeout``.
        """
        if self._state is _CONNECTING:
            self._fail_attempt(ConnectionClosed(code, "closed before the connection opened"))
            return
        if self._state is not _OPEN or self._protocol is None:
            return
        self._protocol.close(code, reason)
        self._flush()
        self._act()

    def abort(self) -> None:
        """Drop the TCP connection now, without a closing handshake."""
        if self._state is _CONNECTING:
            self._fail_attempt(ConnectionClosed(CloseCode.ABNORMAL, "aborted before the connection opened"))
        else:
            self._lost()

    def _act(self) -> None:
        # Do what the protocol decided about TCP: close it now, or wait for the server to.
        protocol = self._protocol
        assert protocol is not None
        if protocol.close_transport:
            self._release()
        elif protocol.expect_close_within is not None:
            self._state = _CLOSING
            if self._timer is None:
                wait = protocol.expect_close_within
                self._timer = self.loop.call_later(wait, self._timed_out, wait)

    def _lost(self) -> None:
        self._release()  # which tells the protocol, once

    def _release(self) -> None:
        if self._state is _CLOSED:
            return
        was_open = self._protocol is not None
        self._state = _CLOSED
        self._cancel_timer()
        if self._protocol is not None:
            self._protocol.connection_lost()
        if self._stream is not None:
            self._stream.abort()  # a close frame written this iteration gets its one last try
        if was_open:
            self._call("on_close")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _call(self, name: str, *args: Any) -> None:
        try:
            getattr(self.component, name)(self, *args)
        except Exception as exc:
            if name in ("on_error", "on_close"):
                log.exception("%r: %s raised", self, name)
                if name == "on_error" and self._state is not _CLOSED:
                    self.abort()
                return
            log.error("%r: unhandled %s in %s: %s", self, type(exc).__name__, name, exc,
                      exc_info=(type(exc), exc, exc.__traceback__))
            self._call("on_error", exc)
