"""The broker of one realm: subscriptions, publications and EVENTs, on a :class:`~ratchet_sel.pubsub.Topics` hub.

Every publication goes through the hub, so it reaches subscribers in other
workers and on other hosts when the hub has a backplane, and WAMP v1
clients of the same topic (see docs/wamp.md, "v1 and v2 together").  What
travels on the hub is WAMP-JSON text (bytes as NUL + base64):

- a publication with exactly one positional argument and no keyword
  arguments travels as that argument: ``"hi"`` for ``args=["hi"]``, which is
  what a WAMP v1 PUBLISH of event ``"hi"`` puts on the hub too;
- any other shape travels as ``{"args": [...], "kwargs": {...}}``.

A hub message that is a JSON object with exactly the keys ``args`` (an
array) and ``kwargs`` (an object) becomes EVENT ``args``/``kwargs``; any
other JSON value ``v`` becomes EVENT ``args=[v]``; text that is not JSON
(from another program) becomes ``args=[text]``.

Subscription ids are per topic, shared by every subscriber of it (as the
spec has it), so one EVENT payload is encoded once per serializer and written
to all subscribers with that serializer.
"""

import logging
import secrets
from typing import Any, Callable, Dict, List, Optional, Tuple

from ...pubsub import Publication, Topics
from ...websocket.connection import broadcast
from . import messages as m
from .api import EventDetails
from .serializers import SERIALIZERS, JsonSerializer, SerializationError

__all__ = ["Broker", "Subscription", "hub_text", "hub_payload"]

log = logging.getLogger(__name__)

_JSON = JsonSerializer()
_JSON_SESSIONS = SERIALIZERS["wamp.2.json"]


def new_id() -> int:
    """A random id in [1, 2**53] (publications, subscriptions, registrations, sessions)."""
    return secrets.randbelow(m.MAX_ID) + 1


def hub_text(args: Optional[list], kwargs: Optional[dict]) -> Tuple[str, bool]:
    """The hub's text for a publication of ``args`` and ``kwargs`` (see the module documentation),
    and whether it is the JSON of the single argument.

    Raises :class:`~ratchet_sel.wamp.v2.serializers.SerializationError` for
    values JSON cannot carry.
    """
    if args is not None and len(args) == 1 and not kwargs:
        only = args[0]
        if not (type(only) is dict and _is_envelope(only)):
            return _JSON.encode(only), True
    return _JSON.encode({"args": list(args or ()), "kwargs": kwargs or {}}), False


def _is_envelope(value: dict) -> bool:
    return (len(value) == 2 and type(value.get("args")) is list and type(value.get("kwargs")) is dict)


def hub_payload(message: Any) -> Tuple[list, Optional[dict], bool]:
    """``(args, kwargs, single)`` of a hub message: ours, a v1 event, or raw text from another program.

    ``single`` is True when ``message`` is the JSON text of the one argument.
    """
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError:
            return [message], None, False
    try:
        value = _JSON.decode(message)
    except SerializationError:
        return [message], None, False
    if type(value) is dict and _is_envelope(value):
        return value["args"], value["kwargs"] or None, False
    return [value], None, True


class Subscription:
    """The subscription of one realm to one topic: its id, its sessions, its server-side handlers."""

    __slots__ = ("id", "uri", "hub_topic", "sessions", "handlers")

    def __init__(self, uri: str, hub_topic: str) -> None:
        self.id = new_id()
        self.uri = uri
        self.hub_topic = hub_topic
        self.sessions: Dict[Any, None] = {}        # RouterSession -> None, in subscription order
        self.handlers: List[Tuple[Callable[..., Any], bool]] = []   # (fn, wants details)

    def __repr__(self) -> str:
        return "<Subscription %d %r: %d sessions>" % (self.id, self.uri, len(self.sessions))

    @property
    def is_empty(self) -> bool:
        """True when neither a session nor a handler is subscribed any more."""
        return not self.sessions and not self.handlers


class Broker:
    """The subscriptions of one realm, delivering what its hub topics carry.

    ``hub_topic(uri)`` names the hub topic of a URI (the realm shared with
    WAMP v1 uses the URI itself).  ``max_subscriptions`` bounds the
    subscriptions of one session.
    """

    def __init__(self, realm: str, hub: Topics, hub_topic: Callable[[str], str]) -> None:
        self.realm = realm
        self.hub = hub
        self.hub_topic = hub_topic
        self.by_uri: Dict[str, Subscription] = {}
        self.by_id: Dict[int, Subscription] = {}
        self._by_hub_topic: Dict[str, Subscription] = {}
        # The publication being made right now by publish(): its text and its payload, so
        # that the hub's synchronous local delivery needs no JSON parse.
        self._own: Optional[Tuple[str, bool, list, Optional[dict], int, Optional[int]]] = None

    # -- membership ----------------------------------------------------------------------
    def _subscription(self, uri: str) -> Subscription:
        subscription = self.by_uri.get(uri)
        if subscription is None:
            subscription = Subscription(uri, self.hub_topic(uri))
            self.by_uri[uri] = subscription
            self.by_id[subscription.id] = subscription
            self._by_hub_topic[subscription.hub_topic] = subscription
            self.hub.add_listener(subscription.hub_topic, self._deliver)
        return subscription

    def _drop_if_empty(self, subscription: Subscription) -> None:
        if subscription.is_empty:
            del self.by_uri[subscription.uri]
            del self.by_id[subscription.id]
            del self._by_hub_topic[subscription.hub_topic]
            self.hub.remove_listener(subscription.hub_topic, self._deliver)

    def subscribe(self, session: Any, uri: str) -> Subscription:
        """Subscribe ``session`` to ``uri`` (again: the same subscription); returns it."""
        subscription = self._subscription(uri)
        subscription.sessions[session] = None
        session.subscriptions[subscription.id] = subscription
        return subscription

    def unsubscribe(self, session: Any, subscription_id: int) -> bool:
        """Remove ``session`` from a subscription; False if it was not subscribed to it."""
        subscription = session.subscriptions.pop(subscription_id, None)
        if subscription is None:
            return False
        subscription.sessions.pop(session, None)
        self._drop_if_empty(subscription)
        return True

    def unsubscribe_all(self, session: Any) -> None:
        """Remove ``session`` from every subscription (it left)."""
        for subscription_id in list(session.subscriptions):
            self.unsubscribe(session, subscription_id)

    def add_handler(self, uri: str, handler: Callable[..., Any], details: bool = False) -> None:
        """Call ``handler(*args, **kwargs)`` (plus ``details=`` if asked) for every publication on ``uri``."""
        self._subscription(uri).handlers.append((handler, details))

    def remove_handler(self, uri: str, handler: Callable[..., Any]) -> bool:
        """Stop calling a handler given to :meth:`add_handler`; False if it was not there."""
        subscription = self.by_uri.get(uri)
        if subscription is None:
            return False
        kept = [pair for pair in subscription.handlers if pair[0] is not handler]
        if len(kept) == len(subscription.handlers):
            return False
        subscription.handlers[:] = kept
        self._drop_if_empty(subscription)
        return True

    # -- publishing ------------------------------------------------------------------------
    def publish(self, uri: str, args: Optional[list], kwargs: Optional[dict], exclude: Any = (),
                eligible: Any = (), publisher: Optional[int] = None) -> int:
        """Publish on ``uri`` in every process of the hub; returns the publication id.

        ``exclude``/``eligible``: session ids (``eligible`` empty: everybody).
        Raises :class:`~ratchet_sel.wamp.v2.serializers.SerializationError` for
        a payload JSON cannot carry.
        """
        text, single = hub_text(args, kwargs)
        publication_id = new_id()
        self._own = (text, single, list(args or ()), kwargs or None, publication_id, publisher)
        try:
            self.hub.publish(self.hub_topic(uri), text, exclude=[str(key) for key in exclude],
                             eligible=[str(key) for key in eligible])
        finally:
            self._own = None
        return publication_id

    def _deliver(self, publication: Publication) -> None:
        subscription = self._by_hub_topic.get(publication.topic)
        if subscription is None:
            return
        own = self._own
        if own is not None and publication.message is own[0]:
            text, single, args, kwargs, publication_id, publisher = own
        else:
            message = publication.message
            text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
            publisher, publication_id = None, new_id()
            args, kwargs, single = hub_payload(text)
        if subscription.sessions:
            self._send_events(subscription, publication, text if single else None, args, kwargs, publication_id)
        for handler, wants_details in list(subscription.handlers):
            self._call_handler(handler, wants_details, subscription.uri, args, kwargs, publisher)

    def _send_events(self, subscription: Subscription, publication: Publication, single_json: Optional[str],
                     args: list, kwargs: Optional[dict], publication_id: int) -> None:
        """EVENT to the sessions the publication may reach, encoded once per serializer.

        ``single_json``: the JSON text of the one argument when the
        publication is that shape, spliced into JSON EVENTs as it is.
        """
        exclude, eligible = publication.exclude, publication.eligible
        if exclude or eligible:
            targets = [s for s in subscription.sessions
                       if s.key not in exclude and (not eligible or s.key in eligible)]
        else:
            targets = list(subscription.sessions)
        groups: Dict[Any, List[Any]] = {}
        for session in targets:
            group = groups.get(session.serializer)
            if group is None:
                groups[session.serializer] = [session.connection]
            else:
                group.append(session.connection)
        event = [m.EVENT, subscription.id, publication_id, {}, args] if kwargs is None else \
            [m.EVENT, subscription.id, publication_id, {}, args, kwargs]
        for serializer, connections in groups.items():
            try:
                if single_json is not None and serializer is _JSON_SESSIONS:
                    # The hub text is the one argument in JSON already: splice it in.
                    payload: Any = "[36,%d,%d,{},[%s]]" % (subscription.id, publication_id, single_json)
                else:
                    payload = serializer.encode(event)
                broadcast(connections, payload)
            except (SerializationError, UnicodeEncodeError) as exc:
                log.warning("EVENT on %r not sent to %d %s subscribers: %s", subscription.uri,
                            len(connections), serializer.subprotocol, exc)

    def _call_handler(self, handler: Callable[..., Any], wants_details: bool, uri: str, args: list,
                      kwargs: Optional[dict], publisher: Optional[int]) -> None:
        try:
            if wants_details:
                handler(*args, details=EventDetails(uri, publisher, self.realm), **(kwargs or {}))
            else:
                handler(*args, **(kwargs or {}))
        except Exception:
            log.exception("the server-side subscriber %r of %r raised", handler, uri)

