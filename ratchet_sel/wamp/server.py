"""WampServer: the WAMP v1 subprotocol between WsServer and a WAMP application."""

import logging
from typing import Any, Dict, Iterable, List, Optional

from ..component import ComponentInterface
from ..pubsub import Topics
from ..websocket.rfc6455 import CloseCode
from . import protocol
from .connection import WampConnection, new_session_id
from .topic import Topic, TopicManager

__all__ = ["WampServer", "WampServerInterface", "CallError", "ERROR_URI_BASE", "ERROR_GENERIC",
           "ERROR_NO_SUCH_PROCEDURE", "DEFAULT_MAX_TOPICS", "DEFAULT_MAX_PREFIXES", "DEFAULT_MAX_URI_LENGTH"]

log = logging.getLogger(__name__)

#: Error URIs of the server itself (``.invalid``: a name, not a place to look up).
ERROR_URI_BASE = "http://ratchet-sel.invalid/error#"
#: The CALLERROR URI when the application's ``on_call`` raised.
ERROR_GENERIC = ERROR_URI_BASE + "generic"
#: The CALLERROR URI of :class:`WampServerInterface`'s default ``on_call``.
ERROR_NO_SUCH_PROCEDURE = ERROR_URI_BASE + "no-such-procedure"

#: Default most topics one connection may be subscribed to.
DEFAULT_MAX_TOPICS = 1000
#: Default most CURIE prefixes one connection may define.
DEFAULT_MAX_PREFIXES = 100
#: Default longest URI, CURIE or call id accepted from a client, in characters.
DEFAULT_MAX_URI_LENGTH = 2048


class CallError(Exception):
    """Raise it in ``on_call`` to answer with CALLERROR ``uri``, ``desc`` and ``details``.

    Any other exception is answered with :data:`ERROR_GENERIC` and logged.
    """

    def __init__(self, uri: str, desc: str = "", details: Any = None) -> None:
        super().__init__(desc or uri)
        self.uri = uri
        self.desc = desc
        self.details = details


class WampServerInterface(ComponentInterface):
    """What a WAMP application implements (Ratchet's WampServerInterface).

    ``conn`` is a :class:`~ratchet_sel.wamp.WampConnection`; ``topic`` is a
    :class:`~ratchet_sel.wamp.Topic` whose ``id`` is the full URI (CURIEs
    already expanded).  Every method has a working default, so an
    application overrides only what it needs.
    """

    def on_call(self, conn: Any, call_id: str, topic: Topic, params: List[Any]) -> None:
        """CALL of procedure ``topic`` with ``params`` (the arguments as sent).

        Answer with ``conn.call_result(call_id, result)`` or
        ``conn.call_error(call_id, uri, desc)`` now or later, or raise
        :class:`CallError`.  The default answers "no such procedure".
        """
        conn.call_error(call_id, ERROR_NO_SUCH_PROCEDURE, "no procedure %s" % topic.id)

    def on_subscribe(self, conn: Any, topic: Topic) -> None:
        """``conn`` has just been added to ``topic`` (it was not subscribed before)."""

    def on_unsubscribe(self, conn: Any, topic: Topic) -> None:
        """``conn`` has just left ``topic`` on its request."""

    def on_publish(self, conn: Any, topic: Topic, event: Any, exclude: List[str], eligible: List[str]) -> None:
        """PUBLISH of ``event`` on ``topic``.

        ``exclude`` already holds the publisher's session id when it asked to
        be left out (the WAMP v1 default); ``eligible``, when not empty, lists
        the only session ids to reach.  The default delivers it:
        ``topic.broadcast(event, exclude, eligible)``.
        """
        topic.broadcast(event, exclude, eligible)


class WampServer(ComponentInterface):
    """Serves a WAMP v1 application under :class:`~ratchet_sel.WsServer`, as Ratchet's WampServer::

        IoServer.factory(WsServer(WampServer(MyApp())), 8080).run()

    It speaks subprotocol ``wamp`` (after the application's own, if it lists
    any) and also serves clients that offer no subprotocol.  Each connection
    gets WELCOME with a fresh session id, protocol version 1 and
    ``server_ident``.

    - ``topics``: the :class:`~ratchet_sel.pubsub.Topics` hub the WAMP
      topics live on (a new in-process one by default); give it a backplane
      to span workers and hosts.
    - ``max_topics_per_connection`` (:data:`DEFAULT_MAX_TOPICS`) and
      ``max_prefixes_per_connection`` (:data:`DEFAULT_MAX_PREFIXES`): past
      them the connection is closed with 1008 and a reason.
    - ``max_uri_length`` (:data:`DEFAULT_MAX_URI_LENGTH`): longer URIs and
      call ids close with 1008.

    A message that breaks WAMP closes the connection with 1007 (not JSON) or
    1002 (not a WAMP client message), 1003 for binary, with the reason; it is
    logged and never reaches the application.
    """

    def __init__(self, component: Any, topics: Optional[Topics] = None, *,
                 max_topics_per_connection: int = DEFAULT_MAX_TOPICS,
                 max_prefixes_per_connection: int = DEFAULT_MAX_PREFIXES,
                 max_uri_length: int = DEFAULT_MAX_URI_LENGTH,
                 server_ident: Optional[str] = None) -> None:
        self.component = component
        self.topic_manager = TopicManager(topics)
        self.max_topics_per_connection = max_topics_per_connection
        self.max_prefixes_per_connection = max_prefixes_per_connection
        self.max_uri_length = max_uri_length
        if server_ident is None:
            from .. import __version__
            server_ident = "ratchet_sel/%s" % __version__
        self.server_ident = server_ident
        self.connections: Dict[Any, WampConnection] = {}   # WsConnection -> its WAMP session

    @property
    def topics(self) -> Topics:
        """The pub/sub hub under the WAMP topics."""
        return self.topic_manager.hub

    @property
    def subprotocols(self) -> Iterable[str]:
        """The application's subprotocols, then ``wamp`` (Ratchet's getSubProtocols)."""
        own = [name for name in getattr(self.component, "subprotocols", ()) or () if name != "wamp"]
        return own + ["wamp"]

    def get_topic(self, topic_id: str) -> Topic:
        """The topic named ``topic_id`` (to broadcast from server-side code)."""
        return self.topic_manager.get_topic(topic_id)

    def broadcast(self, topic_id: str, event: Any, exclude: Any = (), eligible: Any = ()) -> None:
        """Send EVENT ``event`` on ``topic_id`` to its subscribers in every process."""
        self.get_topic(topic_id).broadcast(event, exclude, eligible)

    # -- WsServer calls these ------------------------------------------------------
    def on_open(self, ws: Any) -> None:
        conn = WampConnection(ws, self, new_session_id())
        self.connections[ws] = conn
        conn.send(protocol.encode_welcome(conn.session_id, self.server_ident))
        self.component.on_open(conn)

    def on_message(self, ws: Any, message: Any) -> None:
        conn = self.connections.get(ws)
        if conn is None:
            return
        try:
            parsed = protocol.parse(message, self.max_uri_length)
        except protocol.WampProtocolError as exc:
            self._refuse(conn, exc.code, exc.reason)
            return
        if isinstance(parsed, protocol.Call):
            self._call(conn, parsed)
        elif isinstance(parsed, protocol.Publish):
            topic = self.topic_manager.get_topic(conn.get_uri(parsed.topic_uri))
            exclude, eligible = parsed.recipients(conn.session_id)
            self.component.on_publish(conn, topic, parsed.event, exclude, eligible)
        elif isinstance(parsed, protocol.Subscribe):
            self._subscribe(conn, conn.get_uri(parsed.topic_uri))
        elif isinstance(parsed, protocol.Unsubscribe):
            left = self.topic_manager.unsubscribe(conn, conn.get_uri(parsed.topic_uri))
            if left is not None:
                self.component.on_unsubscribe(conn, left)
        elif not self._prefix_room(conn, parsed.prefix):
            self._refuse(conn, CloseCode.POLICY_VIOLATION, "more than %d prefixes" % self.max_prefixes_per_connection)
        else:
            conn.prefixes[parsed.prefix] = parsed.uri

    def on_close(self, ws: Any) -> None:
        conn = self.connections.pop(ws, None)
        if conn is None:
            return
        try:
            self.component.on_close(conn)
        finally:
            self.topic_manager.unsubscribe_all(conn)

    def on_error(self, ws: Any, exc: BaseException) -> None:
        conn = self.connections.get(ws)
        self.component.on_error(conn if conn is not None else ws, exc)

    # -- the messages ----------------------------------------------------------------
    def _call(self, conn: WampConnection, call: protocol.Call) -> None:
        topic = self.topic_manager.get_topic(conn.get_uri(call.proc_uri))
        try:
            self.component.on_call(conn, call.call_id, topic, call.params)
        except CallError as exc:
            log.info("%r: CALL %s answered with error %s", conn, topic.id, exc.uri)
            self._send_call_error(conn, call.call_id, exc.uri, exc.desc, exc.details)
        except Exception:
            log.exception("%r: on_call for %s raised; answering with %s", conn, topic.id, ERROR_GENERIC)
            self._send_call_error(conn, call.call_id, ERROR_GENERIC, "internal server error")

    def _send_call_error(self, conn: WampConnection, call_id: str, uri: str, desc: str, details: Any = None) -> None:
        try:
            conn.call_error(call_id, uri, desc, details)
        except (TypeError, ValueError):
            log.exception("%r: CALLERROR details not JSON-serialisable; sent without them", conn)
            conn.call_error(call_id, uri, desc)

    def _subscribe(self, conn: WampConnection, topic_id: str) -> None:
        if topic_id in conn.subscribed_topics:
            return
        if len(conn.subscribed_topics) >= self.max_topics_per_connection:
            self._refuse(conn, CloseCode.POLICY_VIOLATION,
                         "more than %d topics" % self.max_topics_per_connection)
            return
        topic = self.topic_manager.subscribe(conn, topic_id)
        if topic is not None:
            self.component.on_subscribe(conn, topic)

    def _prefix_room(self, conn: WampConnection, prefix: str) -> bool:
        return prefix in conn.prefixes or len(conn.prefixes) < self.max_prefixes_per_connection

    def check_prefix_room(self, conn: WampConnection, prefix: str) -> None:
        """Raise ``ValueError`` if ``conn`` may not define one more prefix (``max_prefixes_per_connection``)."""
        if not self._prefix_room(conn, prefix):
            raise ValueError("more than %d prefixes on %r" % (self.max_prefixes_per_connection, conn))

    def _refuse(self, conn: WampConnection, code: int, reason: str) -> None:
        log.info("%r: closing with %d: %s", conn, code, reason)
        conn.close(code, reason)
