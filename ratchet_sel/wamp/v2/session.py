"""The router side of one WAMP v2 session, sans-IO: payloads in, messages out, a state machine.

:class:`SessionProtocol` decodes what the client sent (with the session's
serializer), validates it (:func:`~ratchet_sel.wamp.v2.messages.validate`),
checks that it is legal in the session's state, and encodes what the router
sends while moving the state on.  It never touches a socket; the router
hands its payloads to the WebSocket connection.

The states and what moves them (``<-`` the client sent, ``->`` the router sent)::

    ESTABLISHING  <- HELLO (the router answers)       -> CHALLENGE: CHALLENGING
                  -> WELCOME: ESTABLISHED             -> ABORT: CLOSED
    CHALLENGING   <- AUTHENTICATE (the router answers) -> WELCOME: ESTABLISHED, -> ABORT: CLOSED
    ESTABLISHED   <- the Basic Profile's client messages
                  <- GOODBYE (the client leaves) or -> GOODBYE (the router ends it): CLOSING
    CLOSING       the other side's GOODBYE: CLOSED; any other client message is ignored
    any state     <- ABORT: CLOSED

:data:`RECEIVABLE` and :data:`SEND_TRANSITIONS` are those rules as tables.
A message not in the table for the current state is a protocol violation.
"""

from typing import Any, Callable, Dict, FrozenSet, Optional, Tuple

from . import messages as m
from .serializers import SerializationError, Serializer

__all__ = ["SessionProtocol", "ESTABLISHING", "CHALLENGING", "ESTABLISHED", "CLOSING", "CLOSED", "RECEIVABLE",
           "SEND_TRANSITIONS", "ProtocolViolation"]

ProtocolViolation = m.ProtocolViolation

ESTABLISHING = "ESTABLISHING"
CHALLENGING = "CHALLENGING"
ESTABLISHED = "ESTABLISHED"
CLOSING = "CLOSING"
CLOSED = "CLOSED"

#: State -> the client message codes legal in it (ABORT is legal in every state but CLOSED).
RECEIVABLE: Dict[str, FrozenSet[int]] = {
    ESTABLISHING: frozenset((m.HELLO, m.ABORT)),
    CHALLENGING: frozenset((m.AUTHENTICATE, m.ABORT)),
    ESTABLISHED: frozenset((m.GOODBYE, m.ABORT, m.ERROR, m.PUBLISH, m.SUBSCRIBE, m.UNSUBSCRIBE, m.CALL, m.CANCEL,
                            m.REGISTER, m.UNREGISTER, m.YIELD)),
    CLOSING: frozenset(m.CLIENT_CODES),   # all read, all but GOODBYE and ABORT ignored
    CLOSED: frozenset(),
}

#: (state, code the router sends) -> the next state; a pair not listed leaves the state as it is.
SEND_TRANSITIONS: Dict[Tuple[str, int], str] = {
    (ESTABLISHING, m.CHALLENGE): CHALLENGING,
    (ESTABLISHING, m.WELCOME): ESTABLISHED,
    (CHALLENGING, m.WELCOME): ESTABLISHED,
    (ESTABLISHING, m.ABORT): CLOSED,
    (CHALLENGING, m.ABORT): CLOSED,
    (ESTABLISHED, m.ABORT): CLOSED,
    (CLOSING, m.ABORT): CLOSED,
    (ESTABLISHED, m.GOODBYE): CLOSING,
    (CLOSING, m.GOODBYE): CLOSED,
}

#: The router's messages legal in each state (WELCOME/CHALLENGE/ABORT early, the rest once established).
_SENDABLE: Dict[str, FrozenSet[int]] = {
    ESTABLISHING: frozenset((m.WELCOME, m.CHALLENGE, m.ABORT)),
    CHALLENGING: frozenset((m.WELCOME, m.ABORT)),
    ESTABLISHED: frozenset((m.ABORT, m.GOODBYE, m.ERROR, m.PUBLISHED, m.SUBSCRIBED, m.UNSUBSCRIBED, m.EVENT,
                            m.RESULT, m.REGISTERED, m.UNREGISTERED, m.INVOCATION, m.INTERRUPT)),
    CLOSING: frozenset((m.ABORT, m.GOODBYE)),
    CLOSED: frozenset(),
}


class SessionProtocol:
    """One session's WAMP state machine and codec (see the module documentation).

    ``serializer``: the session's :class:`~ratchet_sel.wamp.v2.serializers.Serializer`;
    ``uri_rule``: :func:`~ratchet_sel.wamp.v2.messages.is_loose_uri` (default) or
    :func:`~ratchet_sel.wamp.v2.messages.is_strict_uri`.
    """

    __slots__ = ("serializer", "state", "uri_rule", "_decode", "_encode")

    def __init__(self, serializer: Serializer, uri_rule: Callable[[Any], bool] = m.is_loose_uri) -> None:
        self.serializer = serializer
        self.state = ESTABLISHING
        self.uri_rule = uri_rule
        self._decode = serializer.decode
        self._encode = serializer.encode

    def __repr__(self) -> str:
        return "<SessionProtocol %s %s>" % (self.serializer.subprotocol, self.state)

    @property
    def is_established(self) -> bool:
        """True once WELCOME was sent and until the session closes."""
        return self.state == ESTABLISHED

    def receive(self, payload: Any) -> Optional[list]:
        """The validated client message in ``payload``, or ``None`` when the state says to ignore it.

        Raises :class:`ProtocolViolation` for a malformed payload, an invalid
        message, or a message not legal in the current state.  An ABORT from
        the client closes the session, its GOODBYE starts or ends CLOSING (both
        are returned, so the router can answer and clean up).
        """
        if type(payload) is str if self.serializer.binary else type(payload) is not str:
            raise ProtocolViolation("a %s message arrived in a %s frame" % (
                self.serializer.subprotocol, "text" if self.serializer.binary else "binary"))
        try:
            message = self._decode(payload)
        except SerializationError as exc:
            raise ProtocolViolation(str(exc)) from None
        code = m.validate(message, self.uri_rule)
        state = self.state
        if code not in RECEIVABLE[state]:
            raise ProtocolViolation("%s is not allowed in state %s" % (m.NAMES[code], state))
        if code == m.ABORT:
            self.state = CLOSED
        elif code == m.GOODBYE and state == ESTABLISHED:
            self.state = CLOSING
        elif state == CLOSING:
            if code != m.GOODBYE:
                return None
            self.state = CLOSED
        return message

    def send(self, message: list) -> Any:
        """The payload of a router message, moving the state on (:data:`SEND_TRANSITIONS`).

        Raises ``ValueError`` for a message not legal in the state
        (a router bug, not the client's fault) and
        :class:`~ratchet_sel.wamp.v2.serializers.SerializationError` for a
        message the serializer cannot carry.
        """
        code = message[0]
        state = self.state
        if code not in _SENDABLE[state]:
            raise ValueError("the router may not send %s in state %s" % (m.NAMES.get(code, code), state))
        payload = self._encode(message)
        self.state = SEND_TRANSITIONS.get((state, code), state)
        return payload

    def closed(self) -> None:
        """The transport closed: the session is over whatever its state."""
        self.state = CLOSED
