"""Components that answer plain HTTP requests: a callable's response, a health check.

They sit where a router or :class:`~ratchet_sel.http.HttpServer` hands over
a parsed request, answer it, and close (one request per connection).
"""

import logging
from typing import Any, Callable, Iterable, Optional, Tuple, Union

from ..component import HttpServerInterface
from .response import Response, error_response
from .server import refuse, send_response

__all__ = ["Responder", "HealthCheck", "answer", "method_not_allowed"]

log = logging.getLogger(__name__)

#: What a responder function may return: a Response, a body, or (status, headers, body).
ResponderResult = Union[Response, str, bytes, Tuple[int, Any, Union[str, bytes]], None]


def answer(conn: Any, request: Any, response: Response) -> None:
    """Send ``response`` to ``request`` and close.

    A ``HEAD`` request gets the same status and headers, ``Content-Length``
    included, without the body (RFC 9110 9.3.2).
    """
    if request is not None and request.method == "HEAD" and response.body:
        if not any(name.lower() == "content-length" for name, _ in response.headers):
            response.headers.append(("Content-Length", str(len(response.body))))
        response.body = b""
    send_response(conn, response)


def method_not_allowed(conn: Any, request: Any, allowed: Iterable[str]) -> None:
    """Refuse ``request`` with 405, naming the methods that are allowed."""
    allow = ", ".join(allowed)
    refuse(conn, 405, "Method %s not allowed here (allowed: %s)" % (request.method, allow),
           {"Allow": allow})


def _as_response(result: ResponderResult) -> Response:
    if isinstance(result, Response):
        return result
    if result is None:
        return error_response(404, "Not Found")
    if isinstance(result, (str, bytes)):
        content_type = "text/plain; charset=utf-8" if isinstance(result, str) else "application/octet-stream"
        return Response(200, result, {"Content-Type": content_type})
    status, headers, body = result
    return Response(status, body, headers)


class Responder(HttpServerInterface):
    """Answers each request with what ``handler(request)`` returns.

    ``handler`` returns a :class:`~ratchet_sel.http.Response`, a ``str``
    (200, text/plain) or ``bytes`` (200, octet-stream), a tuple
    ``(status, headers, body)``, or ``None`` (404).  Only the methods in
    ``methods`` are accepted (405 otherwise; ``HEAD`` goes with ``GET``).  An
    exception in ``handler`` is logged and answered with 500.
    """

    def __init__(self, handler: Callable[[Any], ResponderResult],
                 methods: Iterable[str] = ("GET",)) -> None:
        self.handler = handler
        self.methods = tuple(method.upper() for method in methods)
        if "GET" in self.methods and "HEAD" not in self.methods:
            self.methods += ("HEAD",)

    def on_open(self, conn: Any, request: Any = None) -> None:
        if request is None:
            refuse(conn, 500, "Responder needs HttpServer in front of it")
            return
        if request.method not in self.methods:
            method_not_allowed(conn, request, self.methods)
            return
        try:
            response = _as_response(self.handler(request))
        except Exception:
            log.exception("%r: the handler for %s raised", conn, request.path)
            refuse(conn, 500, "Internal Server Error")
            return
        answer(conn, request, response)

    def on_error(self, conn: Any, exc: BaseException) -> None:
        conn.close()


class HealthCheck(Responder):
    """Answers ``200 ok`` (text/plain, not cached) while ``check()`` is true, else ``503``.

    ``check`` defaults to "always healthy": the loop answering at all is what
    a load balancer wants to know.
    """

    def __init__(self, check: Optional[Callable[[], bool]] = None, body: str = "ok\n") -> None:
        self.check = check
        self.body = body
        super().__init__(self._respond)

    def _respond(self, request: Any) -> Response:
        healthy = self.check is None or bool(self.check())
        return Response(200 if healthy else 503, self.body if healthy else "unhealthy\n",
                        {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"})
