"""WAMP topics on top of a :class:`~ratchet_sel.pubsub.Topics` hub.

A :class:`Topic` is the WAMP face of one hub topic of the same name.  While it
has local subscribers it listens to the hub (``add_listener``), so it sees
every publication on that name: from :meth:`Topic.broadcast` in this process,
from other workers and hosts when the hub has a backplane, and from other
programs (``PUBLISH ratchet_sel:<topic> '{"title": "..."}'`` on Redis).

What travels through the hub is the event payload as JSON text (a string
event ``"hi"`` travels as ``"\\"hi\\""``), with the excluded and eligible WAMP
session ids as the publication's keys.  A publication whose text is not JSON
(a raw one from another program, or a plain chat line) becomes an EVENT whose
payload is that string.
"""

import logging
from typing import Any, Dict, FrozenSet, Iterable, Iterator, Optional, Set

from ..pubsub import Publication, Topics
from ..websocket.connection import broadcast
from . import protocol

__all__ = ["Topic", "TopicManager"]

log = logging.getLogger(__name__)


def session_ids(who: Any) -> Set[str]:
    """Session ids named by ``exclude``/``eligible``: ids or WAMP connections, one or many."""
    if not who:
        return set()
    if isinstance(who, str) or not isinstance(who, Iterable):
        who = (who,)
    return {item if isinstance(item, str) else item.session_id for item in who}


class Topic:
    """A WAMP topic: its ``id`` (the full topic URI) and its local subscribers.

    ``str(topic)`` is its id, ``len(topic)`` the number of local subscribers,
    and iterating yields them (WAMP connections), as Ratchet's Topic.
    """

    def __init__(self, topic_id: str, manager: "TopicManager") -> None:
        self.id = topic_id
        self._manager = manager
        self._members: Dict[Any, None] = {}

    def __repr__(self) -> str:
        return "<Topic %r, %d local subscribers>" % (self.id, len(self._members))

    def __str__(self) -> str:
        return self.id

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._members))

    @property
    def subscribers(self) -> FrozenSet[Any]:
        """The WAMP connections of this process subscribed to the topic."""
        return frozenset(self._members)

    def has(self, conn: Any) -> bool:
        """True if ``conn`` is subscribed here."""
        return conn in self._members

    def broadcast(self, event: Any, exclude: Any = (), eligible: Any = ()) -> "Topic":
        """Send EVENT ``event`` to the topic's subscribers, in every process of the hub.

        ``exclude``: session ids (or WAMP connections) that must not get it.
        ``eligible``: when not empty, the only session ids that may get it.
        ``event`` must be JSON-serialisable (``TypeError``/``ValueError`` if
        not).  Returns the topic, for chaining.
        """
        self._manager.publish(self.id, protocol.dumps(event), exclude, eligible)
        return self

    # -- called by the manager --------------------------------------------------
    def add_member(self, conn: Any) -> bool:
        """Subscribe ``conn`` here (the manager does); False if it already was."""
        if conn in self._members:
            return False
        self._members[conn] = None
        return True

    def remove_member(self, conn: Any) -> bool:
        """Unsubscribe ``conn`` here (the manager does); False if it was not subscribed."""
        if conn not in self._members:
            return False
        del self._members[conn]
        return True

    def deliver(self, publication: Publication, event_json: str) -> int:
        """Send a publication's EVENT to the local subscribers it is meant for; returns how many got it."""
        members = self._members
        exclude, eligible = publication.exclude, publication.eligible
        if exclude or eligible:
            targets = [conn for conn in members
                       if conn.session_id not in exclude and (not eligible or conn.session_id in eligible)]
        else:
            targets = list(members)
        if not targets:
            return 0
        # One EVENT text and (with broadcast) one frame encoding for all of them.
        return broadcast([conn.ws for conn in targets], protocol.event_from_json(self.id, event_json))


class TopicManager:
    """The WAMP topics of one server, kept while they have local subscribers (Ratchet's TopicManager).

    ``hub`` is the :class:`~ratchet_sel.pubsub.Topics` the topics live on;
    give the same hub a backplane and WAMP topics span workers and hosts.
    """

    def __init__(self, hub: Optional[Topics] = None) -> None:
        self.hub = hub if hub is not None else Topics()
        self._topics: Dict[str, Topic] = {}
        self._own_json: Optional[str] = None  # the text being published right now by broadcast()

    def __contains__(self, topic_id: str) -> bool:
        return topic_id in self._topics

    def __iter__(self) -> Iterator[Topic]:
        return iter(list(self._topics.values()))

    def __len__(self) -> int:
        return len(self._topics)

    def get_topic(self, topic_id: str) -> Topic:
        """The topic named ``topic_id`` (a fresh one if nobody here is subscribed)."""
        topic = self._topics.get(topic_id)
        return topic if topic is not None else Topic(topic_id, self)

    def subscribe(self, conn: Any, topic_id: str) -> Optional[Topic]:
        """Add ``conn`` to the topic; returns it, or ``None`` if ``conn`` was already there."""
        topic = self._topics.get(topic_id)
        if topic is None:
            topic = self._topics[topic_id] = Topic(topic_id, self)
            self.hub.add_listener(topic_id, self._listener)
        if not topic.add_member(conn):
            return None
        conn.subscribed_topics[topic_id] = topic
        return topic

    def unsubscribe(self, conn: Any, topic_id: str) -> Optional[Topic]:
        """Remove ``conn`` from the topic; returns it, or ``None`` if ``conn`` was not there."""
        topic = self._topics.get(topic_id)
        if topic is None or not topic.remove_member(conn):
            return None
        conn.subscribed_topics.pop(topic_id, None)
        if not len(topic):
            del self._topics[topic_id]
            self.hub.remove_listener(topic_id, self._listener)
        return topic

    def unsubscribe_all(self, conn: Any) -> None:
        """Remove ``conn`` from every topic (done when it closes)."""
        for topic_id in list(conn.subscribed_topics):
            self.unsubscribe(conn, topic_id)

    def publish(self, topic_id: str, event_json: str, exclude: Any = (), eligible: Any = ()) -> None:
        """Publish an event, given as JSON text, on the hub (locally and through its backplane)."""
        self._own_json = event_json
        try:
            self.hub.publish(topic_id, event_json, exclude=session_ids(exclude), eligible=session_ids(eligible))
        finally:
            self._own_json = None

    def _listener(self, publication: Publication) -> None:
        topic = self._topics.get(publication.topic)
        if topic is None:
            return
        event_json = self._event_json(publication)
        if event_json is not None:
            topic.deliver(publication, event_json)

    def _event_json(self, publication: Publication) -> Optional[str]:
        message = publication.message
        if message is self._own_json:
            return message  # made by broadcast() a moment ago: JSON already
        if isinstance(message, bytes):
            try:
                message = message.decode("utf-8")
            except UnicodeDecodeError:
                log.warning("binary publication on %r dropped: WAMP events are text", publication.topic)
                return None
        try:
            return protocol.dumps(protocol.loads(message))
        except (ValueError, RecursionError):
            return protocol.dumps(message)  # not JSON: the event is the string itself
