"""A WebSocket client (RFC 6455), standard library only.

``connect(url)`` is a blocking client for scripts, tests and probes;
``connect_async(loop, url, component)`` runs on the same :class:`~ratchet_sel.Loop`
as a server and calls a server-style component's ``on_open``, ``on_message``,
``on_close`` and ``on_error``.  ``python -m ratchet_sel client URL`` is a
wscat-like command line on top of it.
"""

from ..websocket.deflate import DeflateOffer
from .blocking import ClientConnection, connect
from .loop import AsyncClientConnection, connect_async
from .handshake import HandshakeError, WebSocketClientError, parse_url
from .protocol import ConnectionClosed, ProtocolError

__all__ = ["connect", "ClientConnection", "connect_async", "AsyncClientConnection", "ConnectionClosed", "ProtocolError",
           "HandshakeError", "WebSocketClientError", "DeflateOffer", "parse_url"]
