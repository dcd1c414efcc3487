"""WsServer: turns HTTP upgrade requests into WebSocket connections for an application."""

import logging
from typing import Any, Callable, Dict, Iterable, Optional

from ..component import ComponentDecorator, HttpServerInterface
from ..http.request import HttpError, Request
from ..http.response import Response, error_response
from ..http.server import RequestReader, refuse, refuse_over_capacity, send_response
from ..ops.ratelimit import RateLimitedLog
from ..ops.stats import STATS
from . import hixie
from .connection import ConnectionPolicy, HixieConnection, WsConnection
from .deflate import PerMessageDeflate
from .handshake import SUPPORTED_VERSIONS, check_upgrade, detect_version, negotiate
from .protocol import ServerProtocol
from .rfc6455 import CloseCode

__all__ = ["WsServer", "admitted_by_guards"]

log = logging.getLogger(__name__)

#: Default largest message (after decompression) a client may send: 1 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
#: Default most bytes buffered for one client before the slow-client policy acts: 8 MiB.
DEFAULT_WRITE_LIMIT = 8 * 1024 * 1024

ALL_VERSIONS = ("rfc6455", "hybi-10", "hixie-76", "hixie-75")
_DRAFTS = ("hixie-76", "hixie-75")


def admitted_by_guards(component: Any, ws: WsConnection, request: Request) -> bool:
    """Ask each guard among the decorators from ``component`` down whether ``ws`` may open.

    :class:`WsServer` calls it with its application once a handshake is valid,
    before it answers ``101``: a guard wrapping the application
    (``WsServer(TokenAuth(app))``) refuses with its HTTP status (401, 403...),
    exactly as one placed in front of the server would, instead of closing an
    upgraded connection.  The walk follows ``component`` through
    :class:`~ratchet_sel.ComponentDecorator` objects and asks those with an
    ``admit_upgrade(ws, request)`` method (:meth:`~ratchet_sel.Guard.admit_upgrade`);
    the first that answers False has refused (and answered) the request.
    """
    depth = 0
    while isinstance(component, ComponentDecorator) and depth < 64:  # a bound against cycles
        admit = getattr(component, "admit_upgrade", None)
        if admit is not None and not admit(ws, request):
            return False
        component, depth = component.component, depth + 1
    return True


def _say_last_word(component: Any, ws: WsConnection) -> None:
    last_word = getattr(component, "on_server_stopping", None)
    if last_word is not None:
        try:
            last_word(ws)
        except Exception:   # a shutdown goes on whatever one application does
            log.exception("%r: on_server_stopping failed", ws)


class WsServer(HttpServerInterface, ConnectionPolicy):
    """Serves ``component`` over WebSocket: RFC 6455, HyBi-07/08/10, Hixie-76/75 on one port.

    It works directly under :class:`~ratchet_sel.IoServer` (it reads the
    upgrade request itself) or under :class:`~ratchet_sel.http.HttpServer` and
    a router (which hand it the parsed request).  ``component`` gets
    ``on_open(conn)``, ``on_message(conn, str | bytes)``, ``on_close(conn)``,
    ``on_error(conn, exc)`` with a :class:`WsConnection`, and optionally
    ``on_pong(conn, payload)``.  Its ``subprotocols`` attribute lists the
    subprotocols it speaks, in the server's order of preference.

    Keywords (each limit has a safe default):

    - ``max_message_size`` (1 MiB) and ``max_frame_size`` (same): larger input
      closes with 1009.
    - ``close_timeout`` (5 s): how long to wait for the peer's close frame.
    - ``handshake_timeout`` (10 s): the upgrade request must be complete by then.
    - ``strict_subprotocols``: refuse (400) clients that offer subprotocols of
      which none is supported, instead of answering without one.
    - ``http_handler(request) -> Response``: answers requests that are not
      upgrades (by default 426 Upgrade Required); an exception in it is logged
      and answered 500.
    - ``write_limit`` (8 MiB): the most bytes buffered for a client that does
      not read.  ``slow_client_policy`` says what happens past it: ``"close"``
      (default: close with 1008 and a reason) or ``"drop"`` (drop the
      messages that do not fit; ``conn.dropped_messages`` counts them).  The
      application's ``on_drain(conn)``, if any, is called when the buffer is
      back down to ``write_low_water`` (a quarter of the limit).
    - ``idle_timeout`` (off): close (1001) connections silent for that long.
      See also :meth:`enable_keepalive`.
    - ``compression``: a :class:`~ratchet_sel.websocket.deflate.PerMessageDeflate`
      (the default, with its defaults) to negotiate permessage-deflate with
      clients that offer it, or ``None`` to never compress.
    """

    _DEFAULT_COMPRESSION = object()

    def __init__(self, component: Any, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                 max_frame_size: Optional[int] = None, close_timeout: float = 5.0,
                 handshake_timeout: float = 10.0, strict_subprotocols: bool = False,
                 http_handler: Optional[Callable[[Request], Optional[Response]]] = None,
                 max_header_bytes: int = 65536, compression: Any = _DEFAULT_COMPRESSION,
                 write_limit: int = DEFAULT_WRITE_LIMIT, write_low_water: Optional[int] = None,
                 slow_client_policy: str = "close", idle_timeout: Optional[float] = None) -> None:
        if slow_client_policy not in ("close", "drop"):
            raise ValueError("slow_client_policy must be 'close' or 'drop'")
        self.component = component
        self.max_message_size = max_message_size
        self.max_frame_size = max_frame_size
        self.close_timeout = close_timeout
        self.strict_subprotocols = strict_subprotocols
        self.http_handler = http_handler or self._upgrade_required
        self.compression: Optional[PerMessageDeflate] = (
            PerMessageDeflate() if compression is WsServer._DEFAULT_COMPRESSION else compression or None)
        self.enabled_versions = set(ALL_VERSIONS)
        self.connections: Dict[Any, WsConnection] = {}
        # draft-76 handshakes waiting for key3: transport -> [request, bytes so far, timer]
        self._awaiting_key3: Dict[Any, list] = {}
        self.handshake_timeout = handshake_timeout
        self._reader = RequestReader(self._handshake, request_timeout=handshake_timeout,
                                     max_header_bytes=max_header_bytes)
        self._on_pong = getattr(component, "on_pong", None)
        self._on_drain = getattr(component, "on_drain", None)
        self.write_limit = write_limit
        self.write_low_water = write_limit // 4 if write_low_water is None else write_low_water
        self.slow_client_policy = slow_client_policy
        self.idle_timeout = idle_timeout
        self.keepalive_interval: Optional[float] = None
        self._timers: Dict[str, Any] = {}
        # Keepalive sweeps and slow clients can close thousands at once: one line per kind per 10 s.
        self._quiet_log = RateLimitedLog(log)

    # -- configuration -----------------------------------------------------------
    def disable_version(self, version: str) -> None:
        """Stop accepting one protocol version (``"hybi-10"``, ...), as Ratchet's disableVersion."""
        self.enabled_versions.discard(version)

    def enable_keepalive(self, interval: float = 30.0) -> None:
        """Ping every connection each ``interval`` seconds; close (1011) those that
        sent nothing since the previous ping, as Ratchet's enableKeepAlive does."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.keepalive_interval = interval
        self._cancel_timer("keepalive")
        self._start_timers()

    def _start_timers(self, loop: Any = None) -> None:
        if loop is None:
            if not self.connections:
                return  # started with the first connection
            loop = next(iter(self.connections)).loop
        self._quiet_log.call_later = loop.call_later  # a burst's last count is written when it ends
        if self.keepalive_interval and "keepalive" not in self._timers:
            self._timers["keepalive"] = loop.call_every(self.keepalive_interval, self._keepalive)
        if self.idle_timeout and "idle" not in self._timers:
            self._timers["idle"] = loop.call_every(max(self.idle_timeout / 4, 0.05), self._close_idle)

    def _cancel_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _keepalive(self) -> None:
        for ws in list(self.connections.values()):
            if not ws.is_open or isinstance(ws, HixieConnection):
                continue
            if ws.ping_outstanding:
                self._quiet_log.info("keepalive", "%r: no answer to the keepalive ping; closing", ws)
                ws.close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            else:
                ws.ping_outstanding = True
                ws.ping(b"keepalive")

    def _close_idle(self) -> None:
        for ws in list(self.connections.values()):
            if ws.is_open and ws.loop.time() - ws.last_seen > self.idle_timeout:
                self._quiet_log.info("idle", "%r: idle for %g s; closing", ws, self.idle_timeout)
                ws.close(CloseCode.GOING_AWAY, "idle timeout")

    def write_limit_reached(self, ws: WsConnection) -> None:
        """Apply ``slow_client_policy`` to ``ws``, which has more than ``write_limit`` buffered."""
        if self.slow_client_policy == "drop":
            ws.dropped_messages += 1
            STATS.messages_dropped += 1
            if ws.dropped_messages == 1:
                STATS.slow_clients_dropping += 1
                self._quiet_log.info("slow-drop", "%r: client not reading; dropping messages past %d buffered bytes",
                                     ws, self.write_limit)
            return
        if not ws.is_open:  # already closing: what still comes for it meets the limit again
            return
        self._quiet_log.warning("slow-close", "%r: client not reading; %d bytes buffered; closing with 1008",
                                ws, ws.buffered_amount)
        STATS.slow_clients_closed += 1
        ws.close(CloseCode.POLICY_VIOLATION, "client too slow: write buffer limit exceeded")

    def _drained(self, ws: WsConnection) -> None:
        if self._on_drain is not None and ws.is_open:
            try:
                self._on_drain(ws)
            except Exception as exc:
                self.application_error(ws, exc)

    @property
    def subprotocols(self) -> Iterable[str]:
        """The subprotocols the application supports."""
        return getattr(self.component, "subprotocols", ()) or ()

    # -- the component interface, facing the transport ----------------------------
    def on_open(self, conn: Any, request: Optional[Request] = None) -> None:
        if request is None:
            self._reader.start(conn)
        else:
            self._handshake(conn, request, b"")

    def on_message(self, conn: Any, data: bytes) -> None:
        ws = self.connections.get(conn)
        if ws is not None:
            ws.data_received(data)
        elif conn in self._awaiting_key3:
            self._key3_received(conn, data)
        else:
            self._reader.feed(conn, data)

    def on_close(self, conn: Any) -> None:
        ws = self.connections.pop(conn, None)
        if ws is None:
            self._reader.forget(conn)
            self._forget_key3(conn)
            return
        ws.connection_lost()
        opened = STATS.websockets_open
        opened[ws.version] = opened.get(ws.version, 1) - 1
        code = ws.close_code if ws.close_code is not None else CloseCode.ABNORMAL
        STATS.closes[code] = STATS.closes.get(code, 0) + 1
        try:
            self.component.on_close(ws)
        except Exception:
            log.exception("%r: on_close raised", ws)
        ws.run_close_listeners()

    def on_error(self, conn: Any, exc: BaseException) -> None:
        ws = self.connections.get(conn)
        if ws is not None:
            self.application_error(ws, exc)
        else:
            log.error("%r: error during the handshake: %r", conn, exc)
            self._reader.forget(conn)
            self._forget_key3(conn)
            conn.abort()

    def on_shutdown(self, conn: Any) -> None:
        """Close a connection because the server stops (1001), after the application's
        ``on_server_stopping(ws)`` if it has one (WAMP v2 sends GOODBYE there)."""
        ws = self.connections.get(conn)
        if ws is not None and ws.is_open:
            _say_last_word(self.component, ws)
            if ws.is_open:
                ws.close(CloseCode.GOING_AWAY, "server shutting down")
        elif ws is None:
            self._reader.forget(conn)
            self._forget_key3(conn)
            refuse(conn, 503, "Server shutting down")

    # -- handshake ------------------------------------------------------------------
    def _handshake(self, conn: Any, request: Request, rest: bytes) -> None:
        version = detect_version(request)
        if version is None:
            self._answer_plain_request(conn, request)
            return
        if request.body:
            # An upgrade has no HTTP body: what a Content-Length announced is
            # already the new protocol's (draft-76 clients such as Autobahn
            # declare key3 as an 8-byte body).
            rest = request.body + rest
            request.body = b""
        if version in _DRAFTS and version in self.enabled_versions:
            self._draft_handshake(conn, request, version, rest)
            return
        try:
            if version not in self.enabled_versions and version in SUPPORTED_VERSIONS.values():
                raise HttpError(426, "WebSocket version %s is disabled here" % version,
                                {"Sec-WebSocket-Version": self._version_list()})
            agreement = negotiate(request, subprotocols=list(self.subprotocols),
                                  strict_subprotocols=self.strict_subprotocols,
                                  negotiate_extensions=self.compression.negotiate if self.compression else None)
        except HttpError as exc:
            refuse(conn, exc.status, exc.reason, exc.headers)
            return
        protocol = ServerProtocol(agreement.extension, max_message_size=self.max_message_size,
                                  max_frame_size=self.max_frame_size, close_timeout=self.close_timeout)
        ws = WsConnection(self, conn, request, agreement.version, agreement.subprotocol, protocol,
                          agreement.extension)
        if not admitted_by_guards(self.component, ws, request):
            return
        conn.send(agreement.response)
        self._open(ws, rest)

    def _answer_plain_request(self, conn: Any, request: Request) -> None:
        # A request without Upgrade goes to http_handler; its exception is a 500, logged once.
        try:
            response = self.http_handler(request) or self._upgrade_required(request)
        except Exception:
            log.exception("%r: http_handler raised for %s %s; answered 500", conn, request.method, request.path)
            STATS.refused[500] = STATS.refused.get(500, 0) + 1
            response = error_response(500, "Internal Server Error")
        send_response(conn, response)

    def _draft_handshake(self, conn: Any, request: Request, version: str, rest: bytes) -> None:
        try:
            check_upgrade(request)
            if version == "hixie-76":
                hixie.check_keys(request)
        except HttpError as exc:
            refuse(conn, exc.status, exc.reason, exc.headers)
            return
        if version == "hixie-76" and len(rest) < hixie.HIXIE_KEY3_LENGTH:
            # key3 follows the headers, maybe in a later segment: wait for it,
            # within the handshake timeout; never sign a short key3.
            timer = conn.loop.call_later(self.handshake_timeout, self._key3_timeout, conn)
            self._awaiting_key3[conn] = [request, rest, timer]
            return
        self._finish_draft_handshake(conn, request, version, rest)

    def _key3_received(self, conn: Any, data: bytes) -> None:
        pending = self._awaiting_key3[conn]
        pending[1] += data
        if len(pending[1]) >= hixie.HIXIE_KEY3_LENGTH:
            self._forget_key3(conn)
            self._finish_draft_handshake(conn, pending[0], "hixie-76", pending[1])

    def _key3_timeout(self, conn: Any) -> None:
        if self._forget_key3(conn):
            refuse(conn, 408, "draft-76 key3 not received within %g s" % self.handshake_timeout)

    def _forget_key3(self, conn: Any) -> bool:
        pending = self._awaiting_key3.pop(conn, None)
        if pending is None:
            return False
        pending[2].cancel()
        return True

    def _finish_draft_handshake(self, conn: Any, request: Request, version: str, rest: bytes) -> None:
        key3 = None
        if version == "hixie-76":
            key3, rest = rest[:hixie.HIXIE_KEY3_LENGTH], rest[hixie.HIXIE_KEY3_LENGTH:]
        try:
            response, subprotocol = hixie.hixie_response(
                request, version, secure=getattr(conn, "is_secure", False),
                subprotocols=list(self.subprotocols), strict_subprotocols=self.strict_subprotocols,
                key3=key3)
        except HttpError as exc:
            refuse(conn, exc.status, exc.reason, exc.headers)
            return
        protocol = hixie.HixieProtocol(version, max_message_size=self.max_message_size,
                                       close_timeout=self.close_timeout)
        ws = HixieConnection(self, conn, request, version, subprotocol, protocol)
        if not admitted_by_guards(self.component, ws, request):
            return
        conn.send(response)
        self._open(ws, rest)

    def _upgrade_required(self, request: Request) -> Response:
        return error_response(426, "This is a WebSocket endpoint; send an Upgrade request",
                              {"Upgrade": "websocket", "Sec-WebSocket-Version": self._version_list()})

    def _version_list(self) -> str:
        return ", ".join(number for number, name in SUPPORTED_VERSIONS.items()
                         if name in self.enabled_versions)

    def on_refuse(self, conn: Any) -> None:
        """Answer a connection the server has no room for: 503."""
        refuse_over_capacity(conn)

    def _open(self, ws: WsConnection, rest: bytes) -> None:
        self.connections[ws.transport] = ws
        STATS.websockets_open[ws.version] = STATS.websockets_open.get(ws.version, 0) + 1
        if self._on_drain is not None:
            ws.transport.low_water = self.write_low_water
            ws.transport.on_drain = lambda: self._drained(ws)
        if (self.keepalive_interval or self.idle_timeout) and len(self._timers) < 2:
            self._start_timers(ws.loop)
        log.debug("%r: open (%s%s)", ws, ws.request.path,
                  ", subprotocol " + ws.subprotocol if ws.subprotocol else "")
        try:
            self.component.on_open(ws)
        except Exception as exc:
            self.application_error(ws, exc)
        if rest and ws.transport in self.connections:
            ws.data_received(rest)

    # -- calling the application --------------------------------------------------------
    def pong_received(self, ws: WsConnection, payload: bytes) -> None:
        """Pass a pong to the application's ``on_pong(conn, payload)``, if it has one."""
        if self._on_pong is not None:
            try:
                self._on_pong(ws, payload)
            except Exception as exc:
                self.application_error(ws, exc)

    def application_error(self, ws: WsConnection, exc: BaseException) -> None:
        """Log ``exc`` and hand it to the application's ``on_error``; close with 1011 if that raises too."""
        log.error("%r: unhandled %s in the application: %s", ws, type(exc).__name__, exc,
                  exc_info=(type(exc), exc, exc.__traceback__))
        try:
            self.component.on_error(ws, exc)
        except Exception:
            log.exception("%r: on_error raised; closing with 1011", ws)
            if ws.is_open:
                ws.close(CloseCode.INTERNAL_ERROR, "internal server error")
