"""TrustedProxies: the client's address for connections that come through a reverse proxy.

Behind a proxy every connection comes from the proxy's address; the proxy
names the client in ``X-Forwarded-For`` (``client, proxy1, proxy2``, each
proxy appending the address it received the request from) or in RFC 7239's
``Forwarded`` (``for=client;proto=https, for=proxy1``).  Anyone can send
these headers, so they are believed only from listed proxies, and read from
the right: the right-most address that is not a trusted proxy is the first
hop nobody trusted vouches for, i.e. the client.  Addresses further left were
written by the client itself and may be forged.
"""

import logging
from typing import Any, Iterable, List, Optional

from .addresses import address_in, normalise_address, parse_networks
from ..component import ComponentDecorator
from .guard import request_of

__all__ = ["TrustedProxies", "forwarded_hops", "client_address", "parse_forwarded"]

log = logging.getLogger(__name__)

_HEADERS = {"x-forwarded-for": "X-Forwarded-For", "forwarded": "Forwarded"}


def _split_outside_quotes(text: str, separator: str) -> List[str]:
    parts: List[str] = []
    current: List[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out, escaped = [], False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


def parse_forwarded(value: str) -> List[dict]:
    """The elements of a ``Forwarded`` header (RFC 7239), each a dict of lower-cased names to values."""
    elements = []
    for element in _split_outside_quotes(value, ","):
        pairs = {}
        for pair in _split_outside_quotes(element, ";"):
            name, equals, raw = pair.partition("=")
            if equals and name.strip():
                pairs[name.strip().lower()] = _unquote(raw)
        elements.append(pairs)
    return elements


def _node_address(node: str) -> Optional[str]:
    """The IP address of a forwarded node (``1.2.3.4``, ``1.2.3.4:80``, ``[v6]:80``, ``v6``).

    ``None`` for ``unknown``, obfuscated identifiers (``_hidden``) and garbage.
    """
    node = node.strip()
    if node.startswith("["):
        host, bracket, _ = node[1:].partition("]")
        node = host if bracket else ""
    elif node.count(":") == 1:
        node = node.partition(":")[0]  # IPv4 with a port
    ip = normalise_address(node) if node else None
    return str(ip) if ip is not None else None


def forwarded_hops(headers: Any, header: str = "X-Forwarded-For") -> List[str]:
    """The addresses a request passed through, left (client) to right (last proxy), as sent."""
    hops: List[str] = []
    if header.lower() == "forwarded":
        for value in headers.get_all("Forwarded"):
            hops.extend(element.get("for", "") for element in parse_forwarded(value))
        return hops
    for value in headers.get_all(header):
        hops.extend(part.strip() for part in value.split(","))
    return hops


def client_address(peer: str, hops: List[str], trusted: Iterable[Any]) -> str:
    """The client's address: ``peer`` unless ``peer`` is a trusted proxy that names another.

    Walks ``hops`` from the right past trusted proxies; the first address that
    is not one is the client.  A hop that is no IP address (``unknown``,
    obfuscated, garbage) ends the walk and the peer's address is kept: nothing
    can be said of who is behind it.
    """
    trusted = list(trusted)
    if not address_in(peer, trusted):
        return peer
    client = peer
    for hop in reversed(hops):
        address = _node_address(hop)
        if address is None:
            log.debug("forwarded hop %r is no IP address; keeping %s", hop, client)
            return peer
        client = address
        if not address_in(address, trusted):
            break
    return client


class TrustedProxies(ComponentDecorator):
    """Sets ``conn.remote_address`` to the client's address for connections from trusted proxies.

    ``proxies`` lists the proxies' addresses or networks
    (``["127.0.0.1", "10.0.0.0/8"]``).  ``header`` names the header the
    proxies set: ``"X-Forwarded-For"`` (the default) or ``"Forwarded"``; read
    only the one your proxy writes, since the other arrives untouched from
    the client.  The socket's peer address stays available as
    ``conn.proxy_address`` when it was replaced.

    Place it under :class:`~ratchet_sel.http.HttpServer` (it needs the
    request) and below ``WsServer``, :class:`~ratchet_sel.IpBlackList` and
    anything else that reads ``remote_address``: ``WsServer`` copies the
    address into the WebSocket connection when the handshake completes.
    """

    def __init__(self, component: Any, proxies: Iterable[str], *, header: str = "X-Forwarded-For") -> None:
        super().__init__(component)
        if header.lower() not in _HEADERS:
            raise ValueError("header must be 'X-Forwarded-For' or 'Forwarded', not %r" % (header,))
        self.header = _HEADERS[header.lower()]
        self.proxies = parse_networks(proxies)

    def on_open(self, conn: Any, *args: Any) -> None:
        request = request_of(conn, args)
        if request is not None:
            peer = conn.remote_address
            client = client_address(peer, forwarded_hops(request.headers, self.header), self.proxies)
            if client != peer:
                log.debug("%r: client %s via proxy %s", conn, client, peer)
                conn.proxy_address = peer
                conn.remote_address = client
        self.component.on_open(conn, *args)
