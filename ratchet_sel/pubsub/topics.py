"""Topics: named groups of connections that a message is published to.

A :class:`Topics` hub replaces the hand-kept ``set()`` of connections that every
chat-like application writes::

    topics = Topics()

    class Chat(MessageComponent):
        def on_open(self, conn):
            topics.subscribe(conn, "chat")
        def on_message(self, conn, msg):
            topics.publish("chat", msg, exclude=conn)

A connection that closes leaves all its topics by itself.  Publishing encodes
the frame once per topic and kind of connection (:func:`broadcast`).

The same hub spans processes and hosts when it is given a :class:`Backplane`
(the worker master's hub, Redis): a publication is delivered to the local
subscribers at once, then handed to the backplane, which carries it to every
other process; what arrives from the backplane is delivered to the local
subscribers only.  The application sees no difference.

Exclusion across processes works by *keys*: every subscriber has one
(:func:`subscriber_key`), a string unique across processes, and ``exclude`` /
``eligible`` may name connections or keys.
"""

import logging
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Union

from ..websocket.connection import broadcast
from . import envelope
from .envelope import Publication, renew_node_id

__all__ = ["Topics", "Backplane", "subscriber_key", "renew_node_id"]

log = logging.getLogger(__name__)

Message = Union[str, bytes]
Listener = Callable[[Publication], Any]


def subscriber_key(conn: Any) -> str:
    """The key that names ``conn`` in ``exclude``/``eligible`` across processes.

    A connection's ``pubsub_key`` attribute when it has one (WAMP sets its
    session id there), otherwise one made from this process's node id and the
    connection's identity, remembered on the connection.
    """
    key = getattr(conn, "pubsub_key", None)
    if key is None:
        key = "%s.%x" % (envelope.NODE_ID, id(conn))
        try:
            conn.pubsub_key = key
        except AttributeError:  # an object without room for attributes: still unique while alive
            pass
    return key


class Backplane:
    """What carries publications between processes; the base class carries nothing.

    A backplane is attached to one :class:`Topics` hub, which calls:

    - :meth:`attach` once, with the hub;
    - :meth:`channel_added` when a topic gets its first local subscriber or
      listener, :meth:`channel_removed` when it loses its last;
    - :meth:`publish` for every local publication, after local delivery;
    - :meth:`close` when the hub is closed.

    The backplane hands what it receives from other processes to
    ``hub.deliver_remote(publication)``; it must drop its own publications
    (``publication.origin == envelope.NODE_ID``) if its transport echoes them back.
    Every method must return quickly and never raise into the application:
    a backplane that is down logs, counts and keeps trying on its own.
    """

    def attach(self, hub: "Topics") -> None:
        """Remember the hub whose remote publications this backplane delivers."""
        self.hub = hub

    def channel_added(self, topic: str) -> None:
        """``topic`` has its first local subscriber: start receiving it."""

    def channel_removed(self, topic: str) -> None:
        """``topic`` has no local subscriber left: stop receiving it."""

    def publish(self, publication: Publication) -> None:
        """Carry a local publication to the other processes."""

    def close(self) -> None:
        """Release the backplane's sockets and timers."""


def _keys(who: Any) -> Set[str]:
    """Keys named by ``exclude``/``eligible``: one connection or key, or an iterable of them."""
    if who is None:
        return set()
    if isinstance(who, str) or not isinstance(who, Iterable):
        who = (who,)
    return {item if isinstance(item, str) else subscriber_key(item) for item in who}


class Topics:
    """An in-process publish/subscribe hub for WebSocket connections.

    ``backplane`` (optional) spans the hub across processes; see the module
    documentation.  Every method is meant to be called on the loop thread.
    """

    def __init__(self, backplane: Optional[Backplane] = None) -> None:
        # topic -> {connection: its subscriber key}, in subscription order; the key is
        # taken once here, not on every publication that excludes someone.
        self._subscribers: Dict[str, Dict[Any, str]] = {}
        self._topics_of: Dict[Any, Set[str]] = {}            # connection -> its topics
        self._listeners: Dict[str, List[Listener]] = {}
        self.backplane = backplane
        if backplane is not None:
            backplane.attach(self)

    # -- membership -------------------------------------------------------------
    def subscribe(self, conn: Any, topic: str) -> bool:
        """Add ``conn`` to ``topic``; False if it was already there.

        The connection leaves every topic by itself when it closes.  Its
        :func:`subscriber_key` is taken now: set ``pubsub_key`` before subscribing.
        """
        members = self._subscribers.get(topic)
        if members is None:
            members = self._subscribers[topic] = {}
            self._topic_started(topic)
        elif conn in members:
            return False
        members[conn] = subscriber_key(conn)
        mine = self._topics_of.get(conn)
        if mine is None:
            mine = self._topics_of[conn] = set()
            add_listener = getattr(conn, "add_close_listener", None)
            if add_listener is not None:
                add_listener(self.unsubscribe_all)
        mine.add(topic)
        return True

    def unsubscribe(self, conn: Any, topic: str) -> bool:
        """Remove ``conn`` from ``topic``; False if it was not there."""
        members = self._subscribers.get(topic)
        if members is None or conn not in members:
            return False
        del members[conn]
        if not members:
            del self._subscribers[topic]
            self._topic_maybe_ended(topic)
        mine = self._topics_of.get(conn)
        if mine is not None:
            mine.discard(topic)
            if not mine:
                self._forget(conn)
        return True

    def unsubscribe_all(self, conn: Any) -> None:
        """Remove ``conn`` from every topic (done by itself when the connection closes)."""
        for topic in list(self._topics_of.get(conn, ())):
            self.unsubscribe(conn, topic)
        self._forget(conn)

    def _forget(self, conn: Any) -> None:
        if self._topics_of.pop(conn, None) is not None:
            remove_listener = getattr(conn, "remove_close_listener", None)
            if remove_listener is not None:
                remove_listener(self.unsubscribe_all)

    def subscribers(self, topic: str) -> FrozenSet[Any]:
        """The local connections subscribed to ``topic``."""
        return frozenset(self._subscribers.get(topic, ()))

    def topics_of(self, conn: Any) -> FrozenSet[str]:
        """The topics ``conn`` is subscribed to."""
        return frozenset(self._topics_of.get(conn, ()))

    def topic_names(self) -> FrozenSet[str]:
        """Every topic with at least one local subscriber or listener."""
        return frozenset(self._subscribers) | frozenset(self._listeners)

    def __contains__(self, topic: str) -> bool:
        return topic in self._subscribers or topic in self._listeners

    # -- listeners: code that consumes a topic instead of a connection ----------------
    def add_listener(self, topic: str, callback: Listener) -> None:
        """Call ``callback(publication)`` for every publication on ``topic``, local or remote.

        For layers that render a publication themselves (WAMP wraps it in an
        EVENT) or relay it.  A listener keeps the topic subscribed on the
        backplane like a connection does.
        """
        callbacks = self._listeners.get(topic)
        if callbacks is None:
            started = topic not in self._subscribers
            self._listeners[topic] = [callback]
            if started:
                self._topic_started(topic)
        elif callback not in callbacks:
            callbacks.append(callback)

    def remove_listener(self, topic: str, callback: Listener) -> None:
        """Stop calling a listener given to :meth:`add_listener` (no error if absent)."""
        callbacks = self._listeners.get(topic)
        if callbacks is None or callback not in callbacks:
            return
        callbacks.remove(callback)
        if not callbacks:
            del self._listeners[topic]
            self._topic_maybe_ended(topic)

    def _topic_started(self, topic: str) -> None:
        if self.backplane is not None:
            self.backplane.channel_added(topic)

    def _topic_maybe_ended(self, topic: str) -> None:
        if self.backplane is not None and topic not in self._subscribers and topic not in self._listeners:
            self.backplane.channel_removed(topic)

    # -- publishing --------------------------------------------------------------------
    def publish(self, topic: str, message: Message, exclude: Any = None, eligible: Any = None) -> int:
        """Send ``message`` (``str`` for text, bytes for binary) to every subscriber of ``topic``.

        ``exclude``: a connection or key, or an iterable of them, that must not
        get it.  ``eligible``: when given and not empty, only these may get it.
        Returns how many local connections got it; subscribers in other
        processes get it through the backplane.
        """
        if isinstance(message, (bytearray, memoryview)):
            message = bytes(message)
        publication = Publication(topic, message, _keys(exclude), _keys(eligible))
        count = self._deliver(publication)
        if self.backplane is not None:
            try:
                self.backplane.publish(publication)
            except Exception:
                log.exception("the backplane failed to take a publication on %r", topic)
        return count

    def deliver_remote(self, publication: Publication) -> int:
        """Deliver a publication that came from another process (called by the backplane)."""
        if publication.origin == envelope.NODE_ID:
            return 0
        return self._deliver(publication)

    def _deliver(self, publication: Publication) -> int:
        topic = publication.topic
        count = 0
        members = self._subscribers.get(topic)
        if members:
            exclude, eligible = publication.exclude, publication.eligible
            if exclude or eligible:
                targets = [conn for conn, key in members.items()
                           if key not in exclude and (not eligible or key in eligible)]
            else:
                targets = list(members)
            count = broadcast(targets, publication.message)
        for callback in list(self._listeners.get(topic, ())):
            try:
                callback(publication)
            except Exception:
                log.exception("a listener of topic %r raised", topic)
        return count

    def close(self) -> None:
        """Close the backplane (local topics keep working)."""
        if self.backplane is not None:
            self.backplane.close()
