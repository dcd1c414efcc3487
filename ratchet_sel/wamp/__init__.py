"""WAMP v1 (the WebSocket Application Messaging Protocol): RPC and PubSub, as Ratchet's WampServer.

::

    from ratchet_sel import IoServer, WsServer
    from ratchet_sel.wamp import WampServer, WampServerInterface

    class Calculator(WampServerInterface):
        def on_call(self, conn, call_id, topic, params):
            conn.call_result(call_id, sum(params))

    IoServer.factory(WsServer(WampServer(Calculator())), 8080).run()

WAMP topics live on a :class:`~ratchet_sel.pubsub.Topics` hub, so they span
processes and hosts when the hub has a backplane.  See docs/wamp.md.
"""

from .connection import WampConnection
from .protocol import WampProtocolError
from .server import (DEFAULT_MAX_PREFIXES, DEFAULT_MAX_TOPICS, DEFAULT_MAX_URI_LENGTH, ERROR_GENERIC,
                     ERROR_NO_SUCH_PROCEDURE, CallError, WampServer, WampServerInterface)
from .topic import Topic, TopicManager

__all__ = [
    "WampServer", "WampServerInterface", "WampConnection", "Topic", "TopicManager", "CallError",
    "WampProtocolError", "ERROR_GENERIC", "ERROR_NO_SUCH_PROCEDURE", "DEFAULT_MAX_TOPICS",
    "DEFAULT_MAX_PREFIXES", "DEFAULT_MAX_URI_LENGTH",
]
