"""WampRouter: a WAMP v2 router (broker and dealer) as a component under :class:`~ratchet_sel.WsServer`.

::

    from ratchet_sel import IoServer, WsServer
    from ratchet_sel.wamp.v2 import WampRouter

    router = WampRouter(["realm1"])
    router.register("com.example.add", lambda a, b: a + b)
    IoServer.factory(WsServer(router), 8080).run()

Each WebSocket connection that negotiated ``wamp.2.json`` or
``wamp.2.msgpack`` carries one session at a time (a session that said
GOODBYE may join again on the same connection).  The per-session rules
live in the sans-IO :class:`~ratchet_sel.wamp.v2.session.SessionProtocol`;
the realm's :class:`~ratchet_sel.wamp.v2.broker.Broker` and
:class:`~ratchet_sel.wamp.v2.dealer.Dealer` route the messages.  A protocol
violation ends that session alone: ABORT ``wamp.error.protocol_violation``
with the reason, then a WebSocket close 1002 with the reason.
"""

import logging
from typing import Any, Callable, Dict, Iterable, List, Optional

from ...component import ComponentInterface
from ...ops.ratelimit import RateLimitedLog
from ...pubsub import Topics
from . import messages as m
from .api import (CLOSE_GOODBYE_AND_OUT, CLOSE_SYSTEM_SHUTDOWN, ERROR_INVALID_ARGUMENT, ERROR_INVALID_URI,
                  ERROR_LIMIT_REACHED, ERROR_NO_SUCH_REALM, ERROR_NO_SUCH_REGISTRATION, ERROR_NO_SUCH_SUBSCRIPTION,
                  ERROR_NOT_AUTHORIZED, ERROR_PROCEDURE_ALREADY_EXISTS, ERROR_PROTOCOL_VIOLATION, ERROR_RUNTIME)
from .auth import Admission, Authenticator, Authorizer
from .broker import Broker, new_id
from .dealer import DEFAULT_MAX_OUTSTANDING_CALLS, Dealer
from .serializers import SerializationError, serializer_for
from .session import CLOSED, ProtocolViolation, SessionProtocol

__all__ = ["WampRouter", "ApplicationApi", "RouterSession", "Realm", "DEFAULT_MAX_SUBSCRIPTIONS", "DEFAULT_MAX_REGISTRATIONS",
           "WAMP2_SUBPROTOCOLS", "ROUTER_ROLES"]

log = logging.getLogger(__name__)

#: Default most subscriptions of one session.
DEFAULT_MAX_SUBSCRIPTIONS = 1000
#: Default most registrations of one session.
DEFAULT_MAX_REGISTRATIONS = 1000
#: The WebSocket subprotocols of WAMP v2, in the router's order of preference.
WAMP2_SUBPROTOCOLS = ("wamp.2.json", "wamp.2.msgpack")
#: The roles and feature flags announced in WELCOME: only what the router implements.
ROUTER_ROLES = {
    "broker": {"features": {"publisher_exclusion": True, "subscriber_blackwhite_listing": True}},
    "dealer": {"features": {"call_timeout": True, "call_canceling": True, "caller_identification": True}},
}


class RouterSession:
    """One WAMP v2 session: what applications see in hooks and ``CallDetails``.

    Public: ``session_id``, ``realm_name``, ``authid``, ``authrole``,
    ``authmethod``, ``connection`` (the :class:`~ratchet_sel.WsConnection`:
    ``remote_address``, ``request``...), ``roles`` (the client's HELLO roles).
    """

    def __init__(self, connection: Any, protocol: SessionProtocol, session_id: int) -> None:
        self.connection = connection
        self.protocol = protocol
        self.serializer = protocol.serializer
        self.session_id = session_id
        self.key = str(session_id)          # its key in hub publications' exclude/eligible sets
        self.realm: Optional["Realm"] = None
        self.realm_name = ""
        self.authid: Optional[str] = None
        self.authrole: Optional[str] = None
        self.authmethod: Optional[str] = None
        self.roles: Dict[str, Any] = {}
        self.subscriptions: Dict[int, Any] = {}
        self.registrations: Dict[int, Any] = {}
        self.calls: Dict[int, Any] = {}          # request id -> PendingCall, as caller
        self.invocations: Dict[int, Any] = {}    # invocation id -> PendingCall, as callee

    def __repr__(self) -> str:
        return "<RouterSession %d %s %s on %r>" % (self.session_id, self.realm_name or "-", self.protocol.state,
                                                  self.connection)

    @property
    def loop(self) -> Any:
        """The loop of the session's connection (for timers)."""
        return self.connection.loop

    def identity(self, options: Optional[dict] = None) -> Dict[str, Any]:
        """What caller identification discloses of this session (``options`` are not read)."""
        return {"caller": self.session_id, "caller_authid": self.authid, "caller_authrole": self.authrole}

    def supports(self, role: str, feature: str) -> bool:
        """True if the client announced ``feature`` for ``role`` in its HELLO."""
        features = self.roles.get(role)
        features = features.get("features") if isinstance(features, dict) else None
        return isinstance(features, dict) and features.get(feature) is True

    def send(self, message: list) -> bool:
        """Send a router message; False if the session is over or the serializer cannot carry it."""
        if self.protocol.state == CLOSED or not self.connection.is_open:
            return False
        try:
            payload = self.protocol.send(message)
        except SerializationError as exc:
            log.warning("%r: %s not sent: %s", self, m.NAMES.get(message[0]), exc)
            return False
        except ValueError as exc:
            log.debug("%r: %s", self, exc)
            return False
        try:
            self.connection.send(payload)
        except UnicodeEncodeError as exc:       # a lone surrogate from the application's own values
            log.warning("%r: %s not sent: %s", self, m.NAMES.get(message[0]), exc)
            return False
        return True

    def send_error(self, request_type: int, request_id: int, error: str, args: Optional[list] = None,
                   kwargs: Optional[dict] = None, details: Optional[dict] = None) -> bool:
        """ERROR for request ``request_id`` of type ``request_type``."""
        message: list = [m.ERROR, request_type, request_id, details or {}, error]
        if args or kwargs:
            message.append(list(args or ()))
            if kwargs:
                message.append(kwargs)
        return self.send(message)

    def send_result(self, request_id: int, args: Optional[list], kwargs: Optional[dict]) -> bool:
        """RESULT for CALL ``request_id``."""
        message: list = [m.RESULT, request_id, {}]
        if args or kwargs:
            message.append(list(args or ()))
            if kwargs:
                message.append(kwargs)
        return self.send(message)


class Realm:
    """A named routing domain: its sessions, its broker and its dealer."""

    def __init__(self, name: str, hub: Topics, hub_prefix: str, max_outstanding_calls: int) -> None:
        self.name = name
        self.sessions: Dict[int, RouterSession] = {}
        self.broker = Broker(name, hub, (lambda uri: uri) if not hub_prefix else (lambda uri: hub_prefix + uri))
        self.dealer = Dealer(name, max_outstanding_calls)

    def __repr__(self) -> str:
        return "<Realm %r: %d sessions>" % (self.name, len(self.sessions))


class ApplicationApi:
    """The application side of :class:`WampRouter`: server-side procedures, subscribers, publications.

    A base class of the router; it reads the router's ``realms``, ``uri_rule``
    and ``shared_realm``.
    """

    realms: Dict[str, Realm]
    shared_realm: Optional[str]
    uri_rule: Callable[[Any], bool]

    def _realms(self, realm: Optional[str]) -> List[Realm]:
        if realm is None:
            return list(self.realms.values())
        if realm not in self.realms:
            raise KeyError("no realm %r" % realm)
        return [self.realms[realm]]

    def register(self, uri: str, procedure: Callable[..., Any], realm: Optional[str] = None,
                 details: bool = False) -> None:
        """Serve procedure ``uri`` with ``procedure(*args, **kwargs)`` in ``realm`` (default: every realm).

        ``details=True`` also passes ``details=``:class:`~ratchet_sel.wamp.v2.api.CallDetails`.
        The function runs on the loop thread and returns the result (see
        :class:`~ratchet_sel.wamp.v2.api.Result`) or raises
        :class:`~ratchet_sel.wamp.v2.api.ApplicationError`.  ``ValueError``
        if ``uri`` is invalid or registered already.
        """
        if not self.uri_rule(uri):
            raise ValueError("not a valid procedure URI: %r" % uri)
        for each in self._realms(realm):
            each.dealer.add_procedure(uri, procedure, details)

    def unregister(self, uri: str, realm: Optional[str] = None) -> None:
        """Stop serving a procedure given to :meth:`register`."""
        for each in self._realms(realm):
            each.dealer.remove_procedure(uri)

    def subscribe(self, uri: str, handler: Callable[..., Any], realm: Optional[str] = None,
                  details: bool = False) -> None:
        """Call ``handler(*args, **kwargs)`` for every publication on ``uri`` (from any process).

        ``details=True`` also passes ``details=``:class:`~ratchet_sel.wamp.v2.api.EventDetails`.
        """
        if not self.uri_rule(uri):
            raise ValueError("not a valid topic URI: %r" % uri)
        for each in self._realms(realm):
            each.broker.add_handler(uri, handler, details)

    def unsubscribe(self, uri: str, handler: Callable[..., Any], realm: Optional[str] = None) -> None:
        """Stop calling a handler given to :meth:`subscribe`."""
        for each in self._realms(realm):
            each.broker.remove_handler(uri, handler)

    def publish(self, uri: str, args: Optional[list] = None, kwargs: Optional[dict] = None,
                realm: Optional[str] = None, exclude: Iterable[int] = (), eligible: Iterable[int] = ()) -> int:
        """Publish EVENT ``args``/``kwargs`` on ``uri`` in ``realm`` (default: the shared realm).

        Reaches subscribers in every process of the hub (and WAMP v1 ones in
        the shared realm).  Returns the publication id.  ``ValueError`` for
        a payload JSON cannot carry.
        """
        name = realm if realm is not None else self.shared_realm
        if name not in self.realms:
            raise KeyError("no realm %r" % name)
        return self.realms[name].broker.publish(uri, args, kwargs, exclude, eligible)

    def session_count(self) -> int:
        """How many sessions are joined to a realm now."""
        return sum(len(realm.sessions) for realm in self.realms.values())



class WampRouter(ApplicationApi, ComponentInterface):
    """A WAMP v2 router serving ``realms`` (see the module documentation and docs/wamp.md).

    - ``topics``: the :class:`~ratchet_sel.pubsub.Topics` hub publications go
      through (a new in-process one by default); share it with a
      :class:`~ratchet_sel.wamp.WampServer` and give it a backplane to span
      WAMP v1, workers and hosts.  Topics of ``shared_realm`` (default: the
      first realm) are hub topics of the same name, shared with WAMP v1;
      other realms' topics are ``wamp2:REALM:URI`` on the hub.
    - ``authenticator``, ``allow_anonymous``, ``authorize``: see
      :mod:`ratchet_sel.wamp.v2.auth`.
    - ``strict_uris``: the spec's strict URI rule instead of the loose one.
    - ``max_outstanding_calls``, ``max_subscriptions``, ``max_registrations``:
      per session; past them the request gets an ERROR.
    """

    def __init__(self, realms: Iterable[str] = ("realm1",), topics: Optional[Topics] = None, *,
                 authenticator: Optional[Authenticator] = None, allow_anonymous: Optional[bool] = None,
                 authorize: Optional[Authorizer] = None, strict_uris: bool = False,
                 max_outstanding_calls: int = DEFAULT_MAX_OUTSTANDING_CALLS,
                 max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS,
                 max_registrations: int = DEFAULT_MAX_REGISTRATIONS, shared_realm: Optional[str] = None) -> None:
        self.topics = topics if topics is not None else Topics()
        self.admission = Admission(authenticator, allow_anonymous, authorize)
        self.uri_rule = m.is_strict_uri if strict_uris else m.is_loose_uri
        self.max_outstanding_calls = max_outstanding_calls
        self.max_subscriptions = max_subscriptions
        self.max_registrations = max_registrations
        self.realms: Dict[str, Realm] = {}
        self.sessions: Dict[Any, RouterSession] = {}      # WsConnection -> its current session
        #: The :class:`~ratchet_sel.wamp.v2.cluster.WorkerLink` once :meth:`span_workers` was called.
        self.workers_link: Any = None
        #: Where protocol violations are logged: at most 10 lines a minute, the rest counted.
        self.violation_log = RateLimitedLog(log)
        names = list(realms)
        self.shared_realm = shared_realm if shared_realm is not None else (names[0] if names else None)
        for name in names:
            self.add_realm(name)
        self._handlers: Dict[int, Callable[[RouterSession, list], None]] = {
            m.HELLO: self._hello, m.AUTHENTICATE: self._authenticate, m.GOODBYE: self._goodbye,
            m.ABORT: self._aborted, m.SUBSCRIBE: self._subscribe, m.UNSUBSCRIBE: self._unsubscribe,
            m.PUBLISH: self._publish, m.REGISTER: self._register, m.UNREGISTER: self._unregister,
            m.CALL: self._call, m.YIELD: self._yield, m.ERROR: self._error, m.CANCEL: self._cancel,
        }

    subprotocols = WAMP2_SUBPROTOCOLS

    def add_realm(self, name: str) -> Realm:
        """Serve realm ``name`` too (``ValueError`` if it is not a valid URI); returns it."""
        if not m.is_loose_uri(name):
            raise ValueError("a realm name is a URI: %r" % name)
        realm = self.realms.get(name)
        if realm is None:
            prefix = "" if name == self.shared_realm else "wamp2:%s:" % name
            realm = self.realms[name] = Realm(name, self.topics, prefix, self.max_outstanding_calls)
            realm.dealer.remote = self.workers_link
        return realm

    def span_workers(self, worker: Any) -> None:
        """In a worker of :class:`~ratchet_sel.workers.Workers`: route calls between the workers.

        Clients' procedures are claimed at the master (one callee across the
        workers) and calls reach them from any worker; see
        :mod:`ratchet_sel.wamp.v2.cluster`.  Give the router ``worker.topics``
        too, so that publications span the workers.
        """
        from .cluster import WorkerLink

        self.workers_link = WorkerLink(self, worker.mailbox, worker.loop)
        for realm in self.realms.values():
            realm.dealer.remote = self.workers_link

    # -- WsServer calls these --------------------------------------------------------------
    def on_open(self, conn: Any) -> None:
        """A WebSocket opened: a session starts in ESTABLISHING (or a close if not WAMP v2)."""
        serializer = serializer_for(getattr(conn, "subprotocol", None))
        if serializer is None:
            log.info("%r: no WAMP v2 subprotocol; closing", conn)
            conn.close(1002, "WAMP v2 needs subprotocol wamp.2.json or wamp.2.msgpack")
            return
        self.sessions[conn] = RouterSession(conn, SessionProtocol(serializer, self.uri_rule), new_id())

    def on_message(self, conn: Any, payload: Any) -> None:
        """One WAMP message from ``conn``'s session."""
        session = self.sessions.get(conn)
        if session is None:
            return
        try:
            message = session.protocol.receive(payload)
            if message is not None:
                self._handlers[message[0]](session, message)
        except ProtocolViolation as exc:
            if session.protocol.state != CLOSED:     # what arrives after the end is dropped, unlogged
                self.violation(session, str(exc))

    def on_close(self, conn: Any) -> None:
        """The WebSocket closed: its session leaves its realm."""
        session = self.sessions.pop(conn, None)
        if session is not None:
            self._leave(session)
            session.protocol.closed()

    def on_error(self, conn: Any, exc: BaseException) -> None:
        """A handler raised (already logged by WsServer): end that session with ABORT and close."""
        session = self.sessions.get(conn)
        if session is not None:
            session.send([m.ABORT, {"message": "internal server error"}, ERROR_RUNTIME])
        conn.close(1011, "internal server error")

    def on_server_stopping(self, conn: Any) -> None:
        """The server stops: an established session gets GOODBYE ``wamp.close.system_shutdown``.

        WsServer closes the WebSocket (1001) right after; the client's GOODBYE
        in reply, if it comes in time, ends the session as usual.
        """
        session = self.sessions.get(conn)
        if session is not None and session.protocol.is_established:
            session.send([m.GOODBYE, {"message": "the server is shutting down"}, CLOSE_SYSTEM_SHUTDOWN])

    def violation(self, session: RouterSession, reason: str) -> None:
        """End ``session`` for a protocol violation: ABORT, then a WebSocket close 1002, both with ``reason``."""
        self.violation_log.info("violation", "%r: protocol violation: %s", session, reason)
        session.send([m.ABORT, {"message": reason}, ERROR_PROTOCOL_VIOLATION])
        self._leave(session)
        session.protocol.closed()
        reason_bytes = ("WAMP protocol violation: " + reason).encode("utf-8")[:120]
        session.connection.close(1002, reason_bytes.decode("utf-8", "ignore"))

    def _leave(self, session: RouterSession) -> None:
        realm = session.realm
        if realm is None:
            return
        session.realm = None
        realm.sessions.pop(session.session_id, None)
        realm.broker.unsubscribe_all(session)
        realm.dealer.session_left(session)

    # -- session establishment ------------------------------------------------------------
    def _hello(self, session: RouterSession, message: list) -> None:
        realm_name, details = message[1], message[2]
        roles = details.get("roles")
        if not isinstance(roles, dict) or not roles:
            raise ProtocolViolation("HELLO without roles")
        session.roles = roles
        session.realm_name = realm_name
        if realm_name not in self.realms:
            self._abort(session, ERROR_NO_SUCH_REALM, "no realm %s" % realm_name)
            return
        self._decided(session, self.admission.hello(session, details))

    def _authenticate(self, session: RouterSession, message: list) -> None:
        self._decided(session, self.admission.authenticate(session, message[1]))

    def _decided(self, session: RouterSession, decision: Any) -> None:
        verdict, abort = decision
        if verdict == "challenge":
            session.send([m.CHALLENGE, "ticket", {}])
        elif verdict == "abort":
            self._abort(session, abort[0], abort[1])
        else:
            self._welcome(session)

    def _welcome(self, session: RouterSession) -> None:
        realm = self.realms.get(session.realm_name)
        if realm is None:    # removed while the client authenticated
            self._abort(session, ERROR_NO_SUCH_REALM, "no realm %s" % session.realm_name)
            return
        while session.session_id in realm.sessions:
            session.session_id = new_id()
            session.key = str(session.session_id)
        session.realm = realm
        realm.sessions[session.session_id] = session
        from ... import __version__
        session.send([m.WELCOME, session.session_id, {
            "roles": ROUTER_ROLES, "realm": realm.name, "authid": session.authid, "authrole": session.authrole,
            "authmethod": session.authmethod, "authprovider": "static", "agent": "ratchet_sel-%s" % __version__}])

    def _abort(self, session: RouterSession, uri: str, text: str) -> None:
        log.info("%r: ABORT %s: %s", session, uri, text)
        session.send([m.ABORT, {"message": text}, uri])
        session.connection.close(1000, text[:100])

    def _goodbye(self, session: RouterSession, message: list) -> None:
        self._leave(session)
        if session.protocol.state == CLOSED:
            return      # the answer to a GOODBYE of ours
        session.send([m.GOODBYE, {}, CLOSE_GOODBYE_AND_OUT])
        # The connection stays open: the client may join again with a new HELLO.
        conn = session.connection
        self.sessions[conn] = RouterSession(conn, SessionProtocol(session.serializer, self.uri_rule), new_id())

    def _aborted(self, session: RouterSession, message: list) -> None:
        self._leave(session)
        session.connection.close(1000, "")

    # -- broker ---------------------------------------------------------------------------------
    def _subscribe(self, session: RouterSession, message: list) -> None:
        request_id, options, uri = message[1], message[2], message[3]
        realm = session.realm
        if options.get("match", "exact") != "exact":
            session.send_error(m.SUBSCRIBE, request_id, ERROR_INVALID_ARGUMENT,
                               ["only exact-match subscriptions are implemented"])
        elif not self.admission.allows(session, "subscribe", uri):
            session.send_error(m.SUBSCRIBE, request_id, ERROR_NOT_AUTHORIZED, ["not authorized to subscribe"])
        elif len(session.subscriptions) >= self.max_subscriptions and \
                realm.broker.by_uri.get(uri) not in session.subscriptions.values():  # type: ignore[union-attr]
            session.send_error(m.SUBSCRIBE, request_id, ERROR_LIMIT_REACHED,
                               ["more than %d subscriptions" % self.max_subscriptions])
        else:
            subscription = realm.broker.subscribe(session, uri)  # type: ignore[union-attr]
            session.send([m.SUBSCRIBED, request_id, subscription.id])

    def _unsubscribe(self, session: RouterSession, message: list) -> None:
        if session.realm.broker.unsubscribe(session, message[2]):  # type: ignore[union-attr]
            session.send([m.UNSUBSCRIBED, message[1]])
        else:
            session.send_error(m.UNSUBSCRIBE, message[1], ERROR_NO_SUCH_SUBSCRIPTION, ["no subscription %d" % message[2]])

    def _publish(self, session: RouterSession, message: list) -> None:
        request_id, options, uri = message[1], message[2], message[3]
        args = message[4] if len(message) > 4 else None
        kwargs = message[5] if len(message) > 5 else None
        acknowledge = options.get("acknowledge") is True
        exclude = options.get("exclude", ())
        eligible = options.get("eligible", ())
        if not _ids(exclude) or not _ids(eligible):
            if acknowledge:
                session.send_error(m.PUBLISH, request_id, ERROR_INVALID_ARGUMENT,
                                   ["exclude and eligible are lists of session ids"])
            return
        if not self.admission.allows(session, "publish", uri):
            if acknowledge:
                session.send_error(m.PUBLISH, request_id, ERROR_NOT_AUTHORIZED, ["not authorized to publish"])
            return
        if options.get("exclude_me", True) is not False:
            exclude = list(exclude) + [session.session_id]
        try:
            publication_id = session.realm.broker.publish(  # type: ignore[union-attr]
                uri, args, kwargs, exclude, eligible, session.session_id)
        except SerializationError as exc:
            if acknowledge:
                session.send_error(m.PUBLISH, request_id, ERROR_INVALID_ARGUMENT, [str(exc)])
            return
        if acknowledge:
            session.send([m.PUBLISHED, request_id, publication_id])

    # -- dealer -----------------------------------------------------------------------------------
    def _register(self, session: RouterSession, message: list) -> None:
        request_id, options, uri = message[1], message[2], message[3]
        if uri.startswith("wamp."):
            session.send_error(m.REGISTER, request_id, ERROR_INVALID_URI, ["wamp. procedures are the router's"])
        elif options.get("match", "exact") != "exact" or options.get("invoke", "single") != "single":
            session.send_error(m.REGISTER, request_id, ERROR_INVALID_ARGUMENT,
                               ["only exact-match, single-callee registrations are implemented"])
        elif not self.admission.allows(session, "register", uri):
            session.send_error(m.REGISTER, request_id, ERROR_NOT_AUTHORIZED, ["not authorized to register"])
        elif len(session.registrations) >= self.max_registrations:
            session.send_error(m.REGISTER, request_id, ERROR_LIMIT_REACHED,
                               ["more than %d registrations" % self.max_registrations])
        else:
            registration = session.realm.dealer.register(  # type: ignore[union-attr]
                session, uri, options.get("disclose_caller") is True)
            if registration is None:
                session.send_error(m.REGISTER, request_id, ERROR_PROCEDURE_ALREADY_EXISTS,
                                   ["procedure %s exists already" % uri])
            elif self.workers_link is not None:
                self.workers_link.claim(session, request_id, registration)   # REGISTERED when granted
            else:
                session.send([m.REGISTERED, request_id, registration.id])

    def _unregister(self, session: RouterSession, message: list) -> None:
        if session.realm.dealer.unregister(session, message[2]):  # type: ignore[union-attr]
            session.send([m.UNREGISTERED, message[1]])
        else:
            session.send_error(m.UNREGISTER, message[1], ERROR_NO_SUCH_REGISTRATION, ["no registration %d" % message[2]])

    def _call(self, session: RouterSession, message: list) -> None:
        request_id, options, uri = message[1], message[2], message[3]
        if request_id in session.calls:
            raise ProtocolViolation("CALL request id %d is already in progress" % request_id)
        if not self.admission.allows(session, "call", uri):
            session.send_error(m.CALL, request_id, ERROR_NOT_AUTHORIZED, ["not authorized to call %s" % uri])
            return
        session.realm.dealer.call(session, request_id, options, uri,  # type: ignore[union-attr]
                                  message[4] if len(message) > 4 else [], message[5] if len(message) > 5 else None)

    def _yield(self, session: RouterSession, message: list) -> None:
        session.realm.dealer.yielded(session, message[1],  # type: ignore[union-attr]
                                     message[3] if len(message) > 3 else None, message[4] if len(message) > 4 else None)

    def _error(self, session: RouterSession, message: list) -> None:
        if message[1] != m.INVOCATION:
            raise ProtocolViolation("a client sends ERROR only for INVOCATION, not for type %r" % message[1])
        session.realm.dealer.failed(session, message[2], message[3], message[4],  # type: ignore[union-attr]
                                    message[5] if len(message) > 5 else None, message[6] if len(message) > 6 else None)

    def _cancel(self, session: RouterSession, message: list) -> None:
        mode = message[2].get("mode", "kill")
        if mode not in ("skip", "kill", "killnowait"):
            raise ProtocolViolation("CANCEL mode %r is not skip, kill or killnowait" % (mode,))
        session.realm.dealer.cancel(session, message[1], message[2])  # type: ignore[union-attr]


def _ids(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(m.is_id(item) for item in value)

