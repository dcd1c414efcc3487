"""HttpServer: reads one HTTP request per connection, then hands the connection on."""

import logging
from typing import Any, Callable, Dict, Optional, Set

from ..component import MessageComponent
from ..ops.ratelimit import RateLimitedLog
from ..ops.stats import STATS
from .request import HttpError, Request, RequestParser
from .response import Response, error_response

__all__ = ["HttpServer", "RequestReader", "refuse", "refuse_over_capacity", "send_response"]

log = logging.getLogger(__name__)

# Refusals come in bursts (a flood of bad handshakes, a full server): one line per status per 10 s.
_refusals_log = RateLimitedLog(log)


def send_response(conn: Any, response: Response) -> None:
    """Write ``response`` and close the connection once it is sent."""
    conn.send(response.to_bytes())
    conn.close()


def refuse(conn: Any, status: int, reason: str, headers: Optional[Dict[str, str]] = None, *,
           logged: bool = False) -> None:
    """Answer ``conn`` with an error status and a reason, log it (unless the caller
    ``logged`` it already; repeats are rate-limited), and close."""
    if not logged:
        _refusals_log.info(("refused", status), "%r: refused with %d: %s", conn, status, reason)
    STATS.refused[status] = STATS.refused.get(status, 0) + 1
    send_response(conn, error_response(status, reason, headers))


def refuse_over_capacity(conn: Any) -> None:
    """503 for a connection past the server's connection limit."""
    refuse(conn, 503, "Server at capacity; try again later", {"Retry-After": "5"})


class _Pending:
    __slots__ = ("parser", "timer", "continued")

    def __init__(self, parser: RequestParser, timer: Any) -> None:
        self.parser = parser
        self.timer = timer
        self.continued = False


class RequestReader:
    """Reads the request of many connections, each within a time limit.

    ``on_request(conn, request, rest)`` is called once a request is complete,
    ``rest`` being the bytes that followed it.  Bad, oversized or late requests
    are refused (4xx with a reason) and closed.
    """

    def __init__(self, on_request: Callable[[Any, Request, bytes], None], *,
                 request_timeout: float = 10.0, **limits: int) -> None:
        self.on_request = on_request
        self.request_timeout = request_timeout
        self.limits = limits
        self._pending: Dict[Any, _Pending] = {}

    def start(self, conn: Any) -> None:
        """Begin reading a request from ``conn``."""
        timer = conn.loop.call_later(self.request_timeout, self._on_timeout, conn)
        self._pending[conn] = _Pending(RequestParser(**self.limits), timer)

    def feed(self, conn: Any, data: bytes) -> bool:
        """Give ``conn``'s bytes to its parser; False if its request was read already."""
        pending = self._pending.get(conn)
        if pending is None:
            return False
        try:
            request = pending.parser.feed(data)
        except HttpError as exc:
            self.forget(conn)
            refuse(conn, exc.status, exc.reason, exc.headers)
            return True
        if request is not None:
            self.forget(conn)
            self.on_request(conn, request, pending.parser.remaining)
        elif pending.parser.awaits_continue and not pending.continued:
            # curl and PHP's curl wait a second for this before sending a body past 1 KiB
            pending.continued = True
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def forget(self, conn: Any) -> bool:
        """Stop reading ``conn``; True if it was being read."""
        pending = self._pending.pop(conn, None)
        if pending is None:
            return False
        pending.timer.cancel()
        return True

    def __contains__(self, conn: Any) -> bool:
        return conn in self._pending

    def _on_timeout(self, conn: Any) -> None:
        if self.forget(conn):
            refuse(conn, 408, "Request not complete within %g s" % self.request_timeout)


class HttpServer(MessageComponent):
    """Parses the request of each connection, then calls ``component.on_open(conn, request)``.

    ``component`` is an :class:`~ratchet_sel.component.HttpServerInterface`.
    Bytes that arrive after the request (an upgraded protocol's first frames)
    and everything after that go to ``component.on_message(conn, data)``.
    A malformed or oversized request is answered with 4xx/5xx and a reason; a
    request not complete within ``request_timeout`` seconds gets 408.
    """

    def __init__(self, component: Any, *, request_timeout: float = 10.0, max_line: int = 8192,
                 max_header_bytes: int = 65536, max_headers: int = 100,
                 max_body: int = 1024 * 1024) -> None:
        self.component = component
        self._reader = RequestReader(self._on_request, request_timeout=request_timeout,
                                     max_line=max_line, max_header_bytes=max_header_bytes,
                                     max_headers=max_headers, max_body=max_body)
        self._opened: Set[Any] = set()

    @property
    def subprotocols(self) -> Any:
        """The subprotocols of the wrapped component."""
        return getattr(self.component, "subprotocols", ())

    def on_open(self, conn: Any, request: Any = None) -> None:
        if request is None:
            self._reader.start(conn)
        else:
            # Already parsed by an outer component: hand on directly.
            self._on_request(conn, request, b"")

    def _on_request(self, conn: Any, request: Request, rest: bytes) -> None:
        self._opened.add(conn)
        self.component.on_open(conn, request)
        if rest and conn in self._opened and not conn.closed:
            self.component.on_message(conn, rest)

    def on_message(self, conn: Any, data: Any) -> None:
        if not self._reader.feed(conn, data) and conn in self._opened:
            self.component.on_message(conn, data)

    def on_close(self, conn: Any) -> None:
        if not self._reader.forget(conn) and conn in self._opened:
            self._opened.discard(conn)
            self.component.on_close(conn)

    def on_error(self, conn: Any, exc: BaseException) -> None:
        if conn in self._opened:
            self.component.on_error(conn, exc)
        else:
            log.error("%r: error before the request was complete: %r", conn, exc)
            self._reader.forget(conn)
            refuse(conn, 500, "Internal Server Error")

    def on_refuse(self, conn: Any) -> None:
        """Answer a connection the server has no room for."""
        refuse_over_capacity(conn)

    def on_shutdown(self, conn: Any) -> None:
        """Pass a server shutdown on to the component, or just close."""
        handler = getattr(self.component, "on_shutdown", None)
        if conn in self._opened:
            if handler is not None:
                handler(conn)
            else:
                conn.close()
        elif self._reader.forget(conn):
            refuse(conn, 503, "Server shutting down")
        else:
            conn.close()
