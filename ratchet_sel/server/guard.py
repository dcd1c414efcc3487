"""Guard: the base of decorators that admit or refuse each connection.

A decorator in the HTTP layer (between :class:`~ratchet_sel.http.HttpServer`
and :class:`~ratchet_sel.WsServer`) sees the transport connection and the
parsed request; above ``WsServer`` it sees the
:class:`~ratchet_sel.WsConnection`, whose ``request`` is the upgrade request.
Guards work in either place.

:class:`Guard` keeps the stack's promise that ``on_close`` follows ``on_open``
exactly once: a connection it refuses never reaches the wrapped component, so
none of that connection's later events are passed on either.
"""

import logging
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
                      headers: Optional[Dict[str, str]] = None) -> None:
    """Turn ``conn`` away, in the protocol it speaks at this point, and log why.

    Before the WebSocket handshake the answer is an HTTP error response with
    ``status`` and ``reason``; on an open WebSocket connection it is a close
    frame with 1008 (policy violation) and the reason.
    """
    if isinstance(conn, WsConnection):
        _refusals_log.info("refused-ws", "%r: refused (close 1008): %s", conn, reason)
        conn.close(CloseCode.POLICY_VIOLATION, reason.encode("utf-8")[:_MAX_CLOSE_REASON]
                   .decode("utf-8", "ignore"))
    else:
        refuse(conn, status, reason, headers)


class Guard(ComponentDecorator):
    """A decorator that admits or refuses each connection when it opens.

    Subclasses implement :meth:`check`.  An admitted connection gets every
    event passed on; a refused one is answered (see
    :func:`refuse_connection`) and the wrapped component never hears of it.
    """

    def __init__(self, component: Any) -> None:
        super().__init__(component)
        self._admitted: Set[Any] = set()

    def check(self, conn: Any, request: Any) -> Optional[Refusal]:
        """``None`` to let ``conn`` through, or the :class:`Refusal` to answer it with."""
        raise NotImplementedError

    def refuse(self, conn: Any, refusal: Refusal, request: Any) -> None:
        """Answer a refused connection (subclasses may answer differently)."""
        refuse_connection(conn, refusal.status, refusal.reason, refusal.headers)

    def on_open(self, conn: Any, *args: Any) -> None:
        request = request_of(conn, args)
        refusal = self.check(conn, request)
        if refusal is not None:
            self.refuse(conn, refusal, request)
            return
        self._admitted.add(conn)
        self.component.on_open(conn, *args)

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
