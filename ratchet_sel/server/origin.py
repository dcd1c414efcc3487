"""OriginCheck: refuse WebSocket connections from pages of other sites.

Browsers send the page's origin with every WebSocket handshake (RFC 6455's
``Origin``; HyBi-07 to -10 called it ``Sec-WebSocket-Origin``) and, unlike
with ``fetch``, do not ask the server's permission first.  Without this check
any page a user visits could open a connection that carries the user's
cookies (cross-site WebSocket hijacking).
"""

import logging
from typing import Any, Iterable, List, NamedTuple, Optional
from urllib.parse import urlsplit

from .guard import Guard, Refusal

__all__ = ["OriginCheck", "origin_of"]

log = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class _Origin(NamedTuple):
    scheme: str
    host: str
    port: Optional[int]


def _parse_origin(value: str) -> Optional[_Origin]:
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    return _Origin(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS.get(scheme))


def origin_of(request: Any) -> Optional[str]:
    """The origin a handshake request declares: ``Origin``, else HyBi's ``Sec-WebSocket-Origin``."""
    if request is None:
        return None
    headers = request.headers
    value = headers.get("Origin")
    if value is None:
        value = headers.get("Sec-WebSocket-Origin")
    return value


class _Rule:
    """One allowed origin: a host, a ``*.`` subdomain wildcard, or a full origin."""

    __slots__ = ("text", "origin", "host", "suffix")

    def __init__(self, text: str) -> None:
        self.text = text
        self.origin = _parse_origin(text) if "://" in text else None
        if "://" in text and self.origin is None:
            raise ValueError("not a valid origin: %r" % text)
        if "://" not in text and text.count(":") == 1:
            # "host:port" would never match: hosts match any port, origins need a scheme.
            raise ValueError("%r: give a host name, or a full origin such as 'http://%s'" % (text, text))
        host = text.strip().lower()
        self.suffix = host[1:] if host.startswith("*.") else None
        self.host = host

    def matches(self, origin: _Origin) -> bool:
        """Whether a parsed Origin satisfies this rule."""
        if self.origin is not None:
            return self.origin == origin
        if self.suffix is not None:
            return origin.host.endswith(self.suffix)
        return origin.host == self.host


class OriginCheck(Guard):
    """Admits a connection only when its Origin is in ``allowed_origins``; else 403.

    As in Ratchet, an entry is a host name (``"example.com"``) that matches
    the Origin's host whatever its scheme and port.  An entry may also be a
    full origin (``"https://example.com:8443"``: scheme, host and port must
    all match) or a subdomain wildcard (``"*.example.com"``).  ``"*"`` admits
    everything.  A handshake without an Origin is refused unless
    ``allow_missing`` is true (non-browser clients send none; browsers always
    do, so this does not weaken the protection against other sites' pages).

    Place it between the router and ``WsServer`` (it answers ``403`` with a
    reason); above ``WsServer`` it closes refused connections with 1008.
    """

    def __init__(self, component: Any, allowed_origins: Iterable[str] = (), *,
                 allow_missing: bool = False) -> None:
        super().__init__(component)
        self.allow_missing = allow_missing
        self._rules: List[_Rule] = []
        for allowed in allowed_origins:
            self.allow(allowed)

    @property
    def allowed_origins(self) -> List[str]:
        """The allowed origins, as given."""
        return [rule.text for rule in self._rules]

    def allow(self, origin: str) -> "OriginCheck":
        """Allow one more origin (a host, ``*.host``, a full origin, or ``"*"``)."""
        self._rules.append(_Rule(origin))
        return self

    def is_allowed(self, origin: Optional[str]) -> bool:
        """Whether a request with this Origin header value (or none) may connect."""
        if any(rule.text == "*" for rule in self._rules):
            return True
        if origin is None:
            return self.allow_missing
        parsed = _parse_origin(origin)
        return parsed is not None and any(rule.matches(parsed) for rule in self._rules)

    def check(self, conn: Any, request: Any) -> Optional[Refusal]:
        origin = origin_of(request)
        if self.is_allowed(origin):
            return None
        if origin is None:
            return Refusal(403, "Forbidden: an Origin header is required")
        return Refusal(403, "Forbidden: origin %s is not allowed" % origin[:200])
