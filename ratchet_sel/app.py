"""App: the one-line facade for a routed WebSocket server, as Ratchet's App.

::

    app = App("localhost", 8080)
    app.route("/chat", Chat())                          # WsServer + OriginCheck(["localhost"])
    app.route("/echo", Echo(), allowed_origins="*")     # no origin check
    app.route("/static/{path:.*}", StaticFiles("public", prefix="/static/"), allowed_origins="*")
    app.run()

The stack is ``IoServer(HttpServer([TrustedProxies](Router)))``, and each
route is ``[OriginCheck](component)``, the component being wrapped in
``WsServer`` unless it already speaks HTTP.
"""

import logging
from typing import Any, Iterable, List, Optional, Union

from .component import ComponentDecorator, HttpServerInterface
from .server.flash import FlashPolicy
from .http.router import Route, Router
from .http.server import HttpServer
from .io.loop import Loop
from .server.origin import OriginCheck
from .server.proxy import TrustedProxies
from .io.listener import IoServer
from .websocket.server import WsServer

__all__ = ["App", "speaks_http"]


def _tls_context(certfile: Optional[str], keyfile: Optional[str]) -> Any:
    if certfile is None:
        if keyfile is not None:
            raise ValueError("keyfile needs certfile")
        return None
    import ssl  # only when asked for: a Python without OpenSSL still serves plain HTTP

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context

log = logging.getLogger(__name__)

#: The methods App routes accept, as in Ratchet (``HEAD`` comes with ``GET``).
ROUTE_METHODS = ("GET",)


def speaks_http(component: Any) -> bool:
    """Whether ``component`` takes HTTP requests itself: an HttpServerInterface
    (WsServer, StaticFiles, Responder, Router, ...) or a decorator around one."""
    seen = set()
    while id(component) not in seen:
        seen.add(id(component))
        if isinstance(component, (HttpServerInterface, HttpServer)):
            return True
        if not isinstance(component, ComponentDecorator):
            return False
        component = component.component
    return False


class App:
    """A server on ``address:port`` whose routes answer for ``http_host`` (Ratchet's App).

    ``route()`` matches the request path and the Host header's name (port
    ignored) against ``http_host``, or the route's own ``http_host``.  The
    server socket is bound here; ``run()`` serves until SIGINT/SIGTERM.

    Health checks: a load balancer sends the backend's IP address as the Host
    (``10.0.0.5:8080``), which matches no name, so a health route says
    ``http_host="*"`` (any Host header, or none) and ``allowed_origins="*"``
    (probes send no Origin)::

        app.route("/healthz", HealthCheck(), allowed_origins="*", http_host="*")

    Authentication: ``app.route("/ws", TokenAuth(Chat(), check=user_for_token))``
    refuses with 401/403 before the upgrade and gives ``Chat`` the user as
    ``conn.user``; wrapping the ``WsServer`` instead works the same (see
    :class:`~ratchet_sel.TokenAuth`).

    As in Ratchet, each ``WsServer`` that ``route()`` creates pings its
    connections every ``keepalive`` seconds (30; ``None`` turns it off) and
    closes those that stay silent.

    Keywords beyond Ratchet's: ``trusted_proxies`` (addresses or networks of
    reverse proxies whose ``proxy_header`` names the client, see
    :class:`~ratchet_sel.proxy.TrustedProxies`); ``flash_port`` (Ratchet
    always serves the Flash policy on 843, or 8843 when not on port 80; here
    it is off unless a port is given, since only legacy Flash shims use it;
    :attr:`flash_policy` is kept up to date either way); and ``http_options``
    for :class:`~ratchet_sel.http.HttpServer` (limits, timeouts); ``certfile``
    and ``keyfile`` (PEM) to serve ``https://``/``wss://`` directly.
    """

    def __init__(self, http_host: str = "localhost", port: int = 8080, address: str = "127.0.0.1",
                 loop: Optional[Loop] = None, *, trusted_proxies: Optional[Iterable[str]] = None,
                 proxy_header: str = "X-Forwarded-For", flash_port: Optional[int] = None,
                 keepalive: Optional[float] = 30.0, certfile: Optional[str] = None,
                 keyfile: Optional[str] = None, **http_options: Any) -> None:
        self.http_host = http_host
        self.keepalive = keepalive
        self.router = Router()
        stack: Any = self.router
        if trusted_proxies:
            stack = TrustedProxies(stack, trusted_proxies, header=proxy_header)
        self.http = HttpServer(stack, **http_options)
        self.server = IoServer(self.http, address, port, loop, ssl_context=_tls_context(certfile, keyfile))
        self.is_secure = certfile is not None
        self.loop = self.server.loop
        self.port = self.server.port
        self.flash_policy = FlashPolicy()
        self.flash_policy.add_allowed_access(http_host, 80)
        self.flash_policy.add_allowed_access(http_host, self.port)
        self.flash_server: Optional[IoServer] = None
        if flash_port is not None:
            self.flash_server = IoServer(self.flash_policy, address, flash_port, self.loop)

    def route(self, path: str, component: Any,
              allowed_origins: Union[str, Iterable[str], None] = None,
              http_host: Optional[str] = None) -> Any:
        """Serve ``component`` at ``path`` (exact, or a pattern such as ``/room/{name}``).

        A component that does not speak HTTP itself is wrapped in
        :class:`~ratchet_sel.WsServer` (with keepalive pings).  ``allowed_origins`` defaults to
        ``[http_host]``; unless it is ``"*"`` the component is wrapped in
        :class:`~ratchet_sel.OriginCheck` (which refuses requests without an
        Origin: pass ``"*"`` for pages that browsers navigate to).  Returns
        the decorated component, as Ratchet does.  ``http_host="*"`` serves the
        route whatever the Host header says (an IP address, another name, none):
        what a health route needs.
        """
        decorated = component if speaks_http(component) else self._websocket(component)
        host = http_host if http_host is not None else self.http_host
        origins = self._origins(allowed_origins, host)
        if origins != ["*"]:
            decorated = OriginCheck(decorated, origins)
        for origin in origins:
            self._allow_flash(origin)
        self.router.add(path, decorated, methods=ROUTE_METHODS, host=None if host == "*" else host)
        log.debug("route %s (host %s) -> %r", path, host, decorated)
        return decorated

    @property
    def routes(self) -> List[Route]:
        """The routes added so far."""
        return self.router.routes

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (open WebSocket connections get close 1001)."""
        log.info("listening on %s://%s:%d/ for host %s", "https" if self.is_secure else "http",
                 self.server.address, self.port, self.http_host)
        try:
            self.server.run()
        finally:
            if self.flash_server is not None:
                self.flash_server.close()

    def _websocket(self, component: Any) -> WsServer:
        server = WsServer(component)
        if self.keepalive:
            server.enable_keepalive(self.keepalive)
        return server

    @staticmethod
    def _origins(allowed: Union[str, Iterable[str], None], host: str) -> List[str]:
        if isinstance(allowed, str):
            return [allowed]
        origins = list(allowed or ())
        if not origins:
            return [host]
        return ["*"] if origins[0] == "*" else origins

    def _allow_flash(self, origin: str) -> None:
        try:
            self.flash_policy.add_allowed_access(origin, self.port)
        except ValueError:
            # A full origin ("https://host:443") is no Flash domain: use its host.
            host = origin.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
            try:
                self.flash_policy.add_allowed_access(host, self.port)
            except ValueError:
                log.debug("origin %r cannot be expressed in the Flash policy", origin)
