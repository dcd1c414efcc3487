"""WampConnection: what a WAMP application gets instead of the WebSocket connection."""

import logging
import secrets
from typing import Any, Dict, FrozenSet

from . import protocol

__all__ = ["WampConnection", "new_session_id"]

log = logging.getLogger(__name__)


def new_session_id() -> str:
    """A session id: 128 random bits from :mod:`secrets`, unique across processes and hosts."""
    return secrets.token_hex(16)


class WampConnection:
    """One WAMP session over one WebSocket connection (Ratchet's WampConnection).

    - ``session_id``: sent in WELCOME; what ``exclude``/``eligible`` name.
    - ``prefixes``: CURIE prefix -> URI, as set by PREFIX (either side).
    - ``topics``: the topics this session is subscribed to.
    - ``ws``: the underlying :class:`~ratchet_sel.WsConnection`; its
      attributes (``request``, ``remote_address``, ``resource_id``,
      ``subprotocol``, ``is_open``, ...) are readable here too.

    User attributes may be added freely.  Sending on a closed connection
    does nothing, as for the WebSocket connection.
    """

    def __init__(self, ws: Any, server: Any, session_id: str) -> None:
        self.ws = ws
        self.session_id = session_id
        #: Keeps this session's id when the application publishes on the hub with the connection itself.
        self.pubsub_key = session_id
        self.prefixes: Dict[str, str] = {}
        self._server = server
        #: The topics this session is subscribed to, by topic id (kept by the TopicManager).
        self.subscribed_topics: Dict[str, Any] = {}

    def __repr__(self) -> str:
        return "<WampConnection #%s session %s>" % (getattr(self.ws, "resource_id", "?"), self.session_id[:8])

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found here: the WebSocket connection's attributes.
        if name.startswith("__") or name == "ws":
            raise AttributeError(name)
        return getattr(self.ws, name)

    @property
    def topics(self) -> FrozenSet[Any]:
        """The :class:`~ratchet_sel.wamp.Topic` objects this session is subscribed to."""
        return frozenset(self.subscribed_topics.values())

    # -- WAMP messages to the client ------------------------------------------------
    def call_result(self, call_id: str, result: Any = None) -> "WampConnection":
        """Answer CALL ``call_id`` with ``result`` (anything JSON-serialisable)."""
        return self.send(protocol.encode_call_result(call_id, result))

    def call_error(self, call_id: str, error_uri: Any, desc: str = "", details: Any = None) -> "WampConnection":
        """Answer CALL ``call_id`` with an error: its URI (a string or a Topic), a
        description for developers, and optional JSON-serialisable details."""
        return self.send(protocol.encode_call_error(call_id, str(error_uri), desc, details))

    def event(self, topic: Any, payload: Any) -> "WampConnection":
        """Send EVENT ``payload`` on ``topic`` (a URI or a Topic) to this client only."""
        return self.send(protocol.encode_event(str(topic), payload))

    def prefix(self, curie: str, uri: Any) -> "WampConnection":
        """Tell the client that ``curie`` stands for ``uri``; it also expands the client's CURIEs here.

        Raises ``ValueError`` past the server's prefix limit.
        """
        self._server.check_prefix_room(self, curie)
        self.prefixes[curie] = str(uri)
        return self.send(protocol.encode_prefix(curie, str(uri)))

    def get_uri(self, uri: str) -> str:
        """``uri`` with a CURIE of a known prefix expanded (see :func:`~ratchet_sel.wamp.protocol.expand_curie`)."""
        return protocol.expand_curie(uri, self.prefixes)

    # -- plain WebSocket --------------------------------------------------------------
    def send(self, text: str) -> "WampConnection":
        """Send a raw WAMP message (JSON text)."""
        self.ws.send(text)
        return self

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket connection."""
        self.ws.close(code, reason)
