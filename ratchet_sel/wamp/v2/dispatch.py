"""WampVersions: WAMP v1 and v2 on one WebSocket server, chosen per connection by subprotocol."""

from typing import Any, Dict, List

from ...component import ComponentInterface
from .serializers import serializer_for

__all__ = ["WampVersions"]


class WampVersions(ComponentInterface):
    """Serve a :class:`~ratchet_sel.wamp.v2.WampRouter` and a :class:`~ratchet_sel.wamp.WampServer` together::

        topics = Topics()
        router = WampRouter(["realm1"], topics)
        v1 = WampServer(MyV1App(), topics)
        IoServer.factory(WsServer(WampVersions(router, v1)), 8080).run()

    A connection that negotiated ``wamp.2.json`` or ``wamp.2.msgpack`` goes to
    the router; any other (``wamp``, or no subprotocol, as WAMP v1 clients
    may do) to the v1 server.  Give both the same
    :class:`~ratchet_sel.pubsub.Topics` hub and their topics are shared (see
    docs/wamp.md for how publications map between the versions).
    """

    def __init__(self, router: Any, v1: Any) -> None:
        self.router = router
        self.v1 = v1
        self._routes: Dict[Any, Any] = {}

    @property
    def subprotocols(self) -> List[str]:
        """The v2 subprotocols, then the v1 server's (the client's order decides)."""
        return list(self.router.subprotocols) + [name for name in self.v1.subprotocols
                                                 if name not in self.router.subprotocols]

    @property
    def topics(self) -> Any:
        """The router's hub (the one the health endpoint reports)."""
        return self.router.topics

    def on_open(self, conn: Any) -> None:
        """Hand the connection to the version its subprotocol names."""
        target = self.router if serializer_for(getattr(conn, "subprotocol", None)) is not None else self.v1
        self._routes[conn] = target
        target.on_open(conn)

    def on_message(self, conn: Any, message: Any) -> None:
        """Pass the message to the connection's version."""
        target = self._routes.get(conn)
        if target is not None:
            target.on_message(conn, message)

    def on_close(self, conn: Any) -> None:
        """Pass the close on, and forget the connection."""
        target = self._routes.pop(conn, None)
        if target is not None:
            target.on_close(conn)

    def on_server_stopping(self, conn: Any) -> None:
        """The server stops: let the connection's version say goodbye (WAMP v2 sends GOODBYE)."""
        last_word = getattr(self._routes.get(conn), "on_server_stopping", None)
        if last_word is not None:
            last_word(conn)

    def on_error(self, conn: Any, exc: BaseException) -> None:
        """Pass the error to the connection's version (which closes by default)."""
        target = self._routes.get(conn)
        if target is not None:
            target.on_error(conn, exc)
        else:
            conn.close()
