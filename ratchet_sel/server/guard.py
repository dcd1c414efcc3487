"""Guard: the base of decorators that admit or refuse each connection.

A decorator in the HTTP layer (between :class:`~ratchet_sel.http.HttpServer`
and :class:`~ratchet_sel.WsServer`) sees the transport connection and the
parsed request; above ``WsServer`` (wrapping the application) it sees the
:class:`~ratchet_sel.WsConnection`, whose ``request`` is the upgrade request.
Guards work in either place, and in both a refused WebSocket handshake gets
its HTTP status *before* any upgrade: ``WsServer`` asks every guard in the
chain of decorators it wraps (:meth:`Guard.admit_upgrade`) before it answers
``101``.  Only a guard hidden from ``WsServer`` (behind a component that is not
a :class:`~ratchet_sel.ComponentDecorator`) sees connections already open; it
closes the refused ones with 1008 and logs a warning saying so, once.

:class:`Guard` keeps the stack's promise that ``on_close`` follows ``on_open``
exactly once: a connection it refuses never reaches the wrapped component, so
none of that connection's later events are passed on either.
"""

import logging
import weakref
from typing import Any, Dict, NamedTuple, Optional, Set

from ..component import ComponentDecorator
from ..http.server import refuse
from ..ops.ratelimit import RateLimitedLog
from ..websocket.connection import WsConnection
from ..websocket.rfc6455 import CloseCode

__all__ = ["Guard", "Refusal", "refuse_connection", "request_of"]

log = logging.getLogger(__name__)

# A refused client may come back at once and often: one line per 10 s, with a count.
_refusals_log = RateLimitedLog(log)

# A close frame's payload is at most 125 bytes, two of which hold the code.
_MAX_CLOSE_REASON = 123


class Refusal(NamedTuple):
    """Why a connection is turned away: the HTTP status, a reason, extra headers."""

    status: int
    reason: str
    headers: Optional[Dict[str, str]] = None


def request_of(conn: Any, args: tuple) -> Any:
    """The request of an ``on_open`` call: the argument if given, else ``conn.request``."""
    if args and args[0] is not None:
        return args[0]
    return getattr(conn, "request", None)


def refuse_connection(conn: Any, status: int, reason: str,
                      headers: Optional[Dict[str, str]] = None, *, logged: bool = False) -> None:
    """Turn ``conn`` away, in the protocol it speaks at this point, and log why.

    Before the WebSocket handshake the answer is an HTTP error response with
    ``status`` and ``reason``; on an open WebSocket connection it is a close
    frame with 1008 (policy violation) and the reason.  ``logged``: the caller
    has logged the refusal already.
    """
    if isinstance(conn, WsConnection):
        if not logged:
            _refusals_log.info("refused-ws", "%r: refused (close 1008): %s", conn, reason)
        conn.close(CloseCode.POLICY_VIOLATION, reason.encode("utf-8")[:_MAX_CLOSE_REASON]
                   .decode("utf-8", "ignore"))
    else:
        refuse(conn, status, reason, headers, logged=logged)


class Guard(ComponentDecorator):
    """A decorator that admits or refuses each connection when it opens.

    Subclasses implement :meth:`check`.  An admitted connection gets every
    event passed on; a refused one is answered (see
    :func:`refuse_connection`) and the wrapped component never hears of it.
    An exception in :meth:`check` is logged and answered ``500``.

    Where it stands in the stack does not change what a refused WebSocket
    client sees: ``Guard(WsServer(app))`` (under a router) is asked when the
    request arrives, ``WsServer(Guard(app))`` is asked by ``WsServer`` through
    :meth:`admit_upgrade` before the ``101``; both answer with the HTTP status.
    """

    def __init__(self, component: Any) -> None:
        super().__init__(component)
        self._admitted: Set[Any] = set()
        # WebSocket connections this guard admitted at the handshake (admit_upgrade), not yet opened.
        self._admitted_early: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._warned_late = False

    def check(self, conn: Any, request: Any) -> Optional[Refusal]:
        """``None`` to let ``conn`` through, or the :class:`Refusal` to answer it with."""
        raise NotImplementedError

    def refuse(self, conn: Any, refusal: Refusal, request: Any) -> None:
        """Answer a refused connection (subclasses may answer differently)."""
        refuse_connection(conn, refusal.status, refusal.reason, refusal.headers)

    def evaluate(self, conn: Any, request: Any) -> Optional[Refusal]:
        """:meth:`check`, with an exception in it logged and turned into a ``500`` refusal."""
        try:
            return self.check(conn, request)
        except Exception:
            log.exception("%r: %s.check raised; answered 500", conn, type(self).__name__)
            return Refusal(500, "Internal Server Error")

    def admit_upgrade(self, ws: Any, request: Any) -> bool:
        """Called by :class:`~ratchet_sel.WsServer` before it accepts a handshake.

        ``ws`` is the :class:`~ratchet_sel.WsConnection` about to open (nothing
        sent yet).  A refused handshake is answered here with the HTTP
        status on ``ws.transport`` and False is returned: the server then
        never upgrades it.  An admitted one is not checked again in :meth:`on_open`.
        """
        refusal = self.evaluate(ws, request)
        if refusal is not None:
            self.refuse(ws.transport, refusal, request)
            return False
        self._admitted_early.add(ws)
        return True

    def on_open(self, conn: Any, *args: Any) -> None:
        if conn in self._admitted_early:
            self._admitted_early.discard(conn)
        else:
            request = request_of(conn, args)
            if isinstance(conn, WsConnection):
                self._warn_late(conn)
            refusal = self.evaluate(conn, request)
            if refusal is not None:
                self.refuse(conn, refusal, request)
                return
        self._admitted.add(conn)
        self.component.on_open(conn, *args)

    def _warn_late(self, conn: Any) -> None:
        if not self._warned_late:
            self._warned_late = True
            log.warning("%r: %s sees WebSocket connections only after the upgrade (it is hidden from WsServer "
                        "behind a component that is not a ComponentDecorator): it refuses with close 1008 "
                        "instead of an HTTP status", conn, type(self).__name__)

    def on_message(self, conn: Any, msg: Any) -> None:
        if conn in self._admitted:
            self.component.on_message(conn, msg)

    def on_close(self, conn: Any) -> None:
        if conn in self._admitted:
            self._admitted.discard(conn)
            self.component.on_close(conn)

    def on_error(self, conn: Any, exc: BaseException) -> None:
        if conn in self._admitted:
            self.component.on_error(conn, exc)
        else:
            log.error("%r: error on a refused connection: %r", conn, exc)
            conn.close()

    def on_shutdown(self, conn: Any) -> None:
        """Pass a server shutdown on for admitted connections; close the others."""
        if conn in self._admitted:
            super().on_shutdown(conn)
        else:
            conn.close()
