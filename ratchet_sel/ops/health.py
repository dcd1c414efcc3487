"""A health URL for load balancers: ``GET PATH`` answers 200 with a small JSON status, on any Host.

Load balancers and orchestrators probe each backend with a plain ``GET``, and
usually send the backend's IP address as the Host header (``10.0.0.5:8000``),
or no Host at all (HTTP/1.0).  :class:`HealthEndpoint` answers before any
routing or origin check, so neither can turn the probe into a 404 or a 403::

    IoServer(HttpServer(HealthEndpoint(WsServer(app), "/healthz")), "0.0.0.0", 8000)

The command line's ``--health PATH`` (``chat``, ``echo``) puts it in front of
the server, in every worker of ``--workers``.
"""

import json
import logging
import os
import time
from typing import Any, Callable, Dict, Optional

from ..http.response import Response
from ..http.server import refuse, send_response
from ..server.endpoint import Endpoint
from .stats import STATS

__all__ = ["HealthEndpoint", "health_status"]

log = logging.getLogger(__name__)

#: When this process started serving (``uptime_s`` counts from here).
_STARTED = time.monotonic()


def health_status(topics: Any = None, worker: Optional[int] = None) -> Dict[str, Any]:
    """The JSON object a health probe gets.

    ``status`` ``"ok"``; ``connections``: open WebSocket connections in this
    process; ``uptime_s``: seconds since the process loaded the library;
    ``pid``; ``redis``: ``"connected"``/``"disconnected"`` when ``topics`` is
    a Redis hub (anything with a ``connected`` attribute), else ``None``;
    ``worker``: the worker's index under ``--workers``, else ``None``.
    """
    connected = getattr(topics, "connected", None) if topics is not None else None
    return {
        "status": "ok",
        "connections": sum(STATS.websockets_open.values()),
        "uptime_s": round(time.monotonic() - _STARTED, 3),
        "pid": os.getpid(),
        "redis": None if connected is None else ("connected" if connected else "disconnected"),
        "worker": worker,
    }


class HealthEndpoint(Endpoint):
    """Answers ``GET path`` with 200 and :func:`health_status` as JSON, on any Host.

    Every other request goes on to ``component``.  Place it right under
    :class:`~ratchet_sel.http.HttpServer`, above routers, origin checks and
    guards: ``IoServer(HttpServer(HealthEndpoint(stack, "/healthz")))``.
    A Redis link that is down does not make the answer 503 (local clients are
    still served; the body says ``"redis": "disconnected"``); pass ``check``
    (returning ``False`` for unhealthy) to answer 503 in such cases.
    Another method on ``path`` gets 405.  ``status`` replaces the function
    that builds the body (default: :func:`health_status` of ``topics`` and
    ``worker``).
    """

    def __init__(self, component: Any, path: str = "/healthz", *, topics: Any = None,
                 worker: Optional[int] = None, check: Optional[Callable[[], bool]] = None,
                 status: Optional[Callable[[], Dict[str, Any]]] = None) -> None:
        if not path.startswith("/"):
            raise ValueError("a health path starts with '/', not %r" % path)
        super().__init__(component, path)
        self.check = check
        self.status = status or (lambda: health_status(topics, worker))

    def answer(self, conn: Any, request: Any) -> None:
        """200 (or 503 when ``check`` says unhealthy) with the status as JSON; 405 to a method but GET."""
        if request.method != "GET":
            log.info("%r: %s %s refused: the health URL answers GET", conn, request.method, self.path)
            refuse(conn, 405, "The health URL answers GET", {"Allow": "GET"})
            return
        body = self.status()
        healthy = self.check is None or bool(self.check())
        if not healthy:
            body["status"] = "unhealthy"
        send_response(conn, Response(200 if healthy else 503, json.dumps(body) + "\n",
                                     {"Content-Type": "application/json", "Cache-Control": "no-store"}))
