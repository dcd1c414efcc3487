"""Router: hands each request to the component routed for its path (Ratchet's Router).

Routes are exact paths (``/chat``) or patterns with named parts
(``/room/{name}``, ``/files/{path:.*}``, ``/user/{id:\\d+}``).  The values a
pattern captures land in ``request.params``; query parameters are in
``request.query``.  The component then owns the connection as if it sat
directly under :class:`~ratchet_sel.http.HttpServer`.
"""

import inspect
import logging
import re
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Pattern, Tuple

from ..component import HttpServerInterface
from .request import HttpError, Request
from .server import refuse

__all__ = ["Router", "Route", "compile_pattern", "host_name"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DEFAULT_PART = "[^/]+"


def compile_pattern(pattern: str) -> Tuple[Pattern[str], List[str]]:
    """A regex for a route pattern and the names of its parts.

    ``{name}`` matches one path segment; ``{name:regex}`` matches ``regex``
    (which may contain braces, e.g. ``{year:\\d{4}}``).  Everything else
    matches literally.
    """
    regex, names, literal, i = [r"\A"], [], [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "}":
            raise ValueError("unbalanced '}' in route %r" % pattern)
        if char != "{":
            literal.append(char)
            i += 1
            continue
        depth, j = 1, i + 1
        while j < len(pattern) and depth:
            depth += {"{": 1, "}": -1}.get(pattern[j], 0)
            j += 1
        if depth:
            raise ValueError("unbalanced '{' in route %r" % pattern)
        name, colon, part = pattern[i + 1:j - 1].partition(":")
        if not _NAME.match(name) or name in names:
            raise ValueError("bad or repeated name %r in route %r" % (name, pattern))
        regex.append(re.escape("".join(literal)))
        literal = []
        regex.append("(?P<%s>%s)" % (name, part if colon else _DEFAULT_PART))
        names.append(name)
        i = j
    regex.append(re.escape("".join(literal)))
    regex.append(r"\Z")
    return re.compile("".join(regex)), names


def host_name(host_header: str) -> str:
    """The host of a Host header, without the port, lower-cased (``[::1]:80`` -> ``::1``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


def _takes_request(component: Any) -> bool:
    try:
        inspect.signature(component.on_open).bind(object(), object())
    except TypeError:
        return False
    except (ValueError, AttributeError):
        return True  # no signature to inspect: trust the caller
    return True


class Route:
    """One route: ``path`` (exact or pattern), ``component``, ``methods``, ``host``.

    ``methods`` ``None`` accepts every method (the component decides);
    ``GET`` brings ``HEAD`` along.  ``host`` ``None`` matches any Host header;
    otherwise the Host's name (port ignored) must equal it.
    """

    __slots__ = ("path", "component", "methods", "host", "regex", "names")

    def __init__(self, path: str, component: Any, methods: Optional[Iterable[str]] = None,
                 host: Optional[str] = None) -> None:
        if not path.startswith("/"):
            raise ValueError("route paths start with '/': %r" % path)
        self.path = path
        self.component = component
        self.methods: Optional[FrozenSet[str]] = None
        if methods is not None:
            upper = {method.upper() for method in methods}
            if "GET" in upper:
                upper.add("HEAD")
            self.methods = frozenset(upper)
        self.host = host_name(host) if host else None
        self.regex: Optional[Pattern[str]] = None
        self.names: List[str] = []
        if "{" in path or "}" in path:
            self.regex, self.names = compile_pattern(path)

    def match_path(self, path: str) -> Optional[Dict[str, str]]:
        """The captured values if ``path`` matches, else ``None``."""
        if self.regex is None:
            return {} if path == self.path else None
        match = self.regex.match(path)
        return match.groupdict() if match else None

    def allows(self, method: str) -> bool:
        """Whether ``method`` is accepted."""
        return self.methods is None or method in self.methods

    def serves_host(self, host_header: str) -> bool:
        """Whether a request with this Host header is for this route."""
        return self.host is None or host_name(host_header) == self.host

    def __repr__(self) -> str:
        return "<Route %s %s -> %r>" % ("|".join(sorted(self.methods or ["*"])), self.path, self.component)


class Router(HttpServerInterface):
    """Routes each request to a component by path, method and Host; 404 and 405 otherwise.

    Exact paths are tried before patterns; patterns in the order they were
    added.  A component must take ``on_open(conn, request)``: wrap a plain
    application in :class:`~ratchet_sel.WsServer` first (or let
    :class:`~ratchet_sel.App` do it).
    """

    def __init__(self) -> None:
        self._exact: Dict[str, List[Route]] = {}
        self._patterns: List[Route] = []
        self._owners: Dict[Any, Any] = {}

    def add(self, path: str, component: Any, *, methods: Optional[Iterable[str]] = None,
            host: Optional[str] = None) -> Route:
        """Route ``path`` to ``component``; returns the :class:`Route`."""
        if not _takes_request(component):
            raise TypeError("%r does not take on_open(conn, request): wrap it in WsServer" % (component,))
        route = Route(path, component, methods, host)
        if route.regex is None:
            self._exact.setdefault(path, []).append(route)
        else:
            self._patterns.append(route)
        return route

    @property
    def routes(self) -> List[Route]:
        """Every route, exact paths first."""
        return [route for routes in self._exact.values() for route in routes] + list(self._patterns)

    def match(self, request: Request) -> Tuple[Route, Dict[str, str]]:
        """The route for ``request`` and its captured values; raises HttpError 404/405."""
        allowed: List[str] = []
        hosts_served: List[str] = []
        for route in self._exact.get(request.path, []) + self._patterns:
            params = route.match_path(request.path)
            if params is None:
                continue
            if not route.serves_host(request.host):
                if route.host is not None and route.host not in hosts_served:
                    hosts_served.append(route.host)
                continue
            if route.allows(request.method):
                return route, params
            allowed.extend(method for method in sorted(route.methods or ()) if method not in allowed)
        if allowed:
            allow = ", ".join(allowed)
            raise HttpError(405, "Method %s not allowed for %s (allowed: %s)"
                            % (request.method, request.path, allow), {"Allow": allow})
        if hosts_served:
            # The usual cause is a client (or a proxy) that sends another name than the one the
            # routes were given, e.g. 127.0.0.1 for App("localhost"): say both.
            asked = host_name(request.host) or "(none)"
            raise HttpError(404, "No route for %s at host %r (the Host header); this path is served for "
                                 "host%s %s" % (request.path, asked[:100], "" if len(hosts_served) == 1 else "s",
                                                ", ".join(repr(host) for host in hosts_served)))
        raise HttpError(404, "No route for %s" % request.path)

    # -- the component -----------------------------------------------------------------
    def on_open(self, conn: Any, request: Any = None) -> None:
        if request is None:
            refuse(conn, 500, "Router needs HttpServer in front of it")
            return
        try:
            route, params = self.match(request)
        except HttpError as exc:
            refuse(conn, exc.status, exc.reason, exc.headers)
            return
        request.params.update(params)
        self._owners[conn] = route.component
        route.component.on_open(conn, request)

    def on_message(self, conn: Any, msg: Any) -> None:
        owner = self._owners.get(conn)
        if owner is not None:
            owner.on_message(conn, msg)

    def on_close(self, conn: Any) -> None:
        owner = self._owners.pop(conn, None)
        if owner is not None:
            owner.on_close(conn)

    def on_error(self, conn: Any, exc: BaseException) -> None:
        owner = self._owners.get(conn)
        if owner is not None:
            owner.on_error(conn, exc)
        else:
            log.error("%r: error before a route was chosen: %r", conn, exc)
            conn.close()

    def on_shutdown(self, conn: Any) -> None:
        """Pass a server shutdown to the connection's component, or just close."""
        handler = getattr(self._owners.get(conn), "on_shutdown", None)
        if handler is not None:
            handler(conn)
        else:
            conn.close()
