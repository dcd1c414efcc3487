"""The WAMP v1 wire format, sans-IO: JSON text in, checked messages out, and back.

Every WAMP v1 message is a JSON array whose first element is the message type:

======  ===========  ================  ==============================================
type    name         direction         form
======  ===========  ================  ==============================================
0       WELCOME      server to client  ``[0, sessionId, protocolVersion, serverIdent]``
1       PREFIX       both              ``[1, prefix, URI]``
2       CALL         client to server  ``[2, callID, procURI, arg, ...]``
3       CALLRESULT   server to client  ``[3, callID, result]``
4       CALLERROR    server to client  ``[4, callID, errorURI, errorDesc(, errorDetails)]``
5       SUBSCRIBE    client to server  ``[5, topicURI]``
6       UNSUBSCRIBE  client to server  ``[6, topicURI]``
7       PUBLISH      client to server  ``[7, topicURI, event(, excludeMe | exclude(, eligible))]``
8       EVENT        server to client  ``[8, topicURI, event]``
======  ===========  ================  ==============================================

:func:`parse` turns a client's text into one of the message classes below or
raises :class:`WampProtocolError` carrying the WebSocket close code and reason
the server answers with.  The ``encode_*`` functions build the server's
messages.  Nothing here knows about sockets.
"""

import json
import math
from typing import Any, List, Mapping, NamedTuple, Optional, Tuple, Union

__all__ = [
    "PROTOCOL_VERSION", "WELCOME", "PREFIX", "CALL", "CALL_RESULT", "CALL_ERROR", "SUBSCRIBE",
    "UNSUBSCRIBE", "PUBLISH", "EVENT", "WampProtocolError", "Prefix", "Call", "Subscribe",
    "Unsubscribe", "Publish", "Message", "parse", "expand_curie", "encode", "encode_welcome",
    "encode_prefix", "encode_call_result", "encode_call_error", "encode_event", "event_from_json",
    "loads", "dumps",
]

#: The protocol version announced in WELCOME.
PROTOCOL_VERSION = 1

WELCOME, PREFIX, CALL, CALL_RESULT, CALL_ERROR, SUBSCRIBE, UNSUBSCRIBE, PUBLISH, EVENT = range(9)

_NAMES = ("WELCOME", "PREFIX", "CALL", "CALLRESULT", "CALLERROR", "SUBSCRIBE", "UNSUBSCRIBE",
          "PUBLISH", "EVENT")
_SERVER_TO_CLIENT = frozenset((WELCOME, CALL_RESULT, CALL_ERROR, EVENT))

# WebSocket close codes (RFC 6455 7.4.1) for the two kinds of bad input.
_PROTOCOL_ERROR = 1002
_INVALID_PAYLOAD = 1007
_POLICY = 1008


class WampProtocolError(ValueError):
    """A client message that breaks WAMP v1; ``code`` and ``reason`` are the close frame's."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Prefix(NamedTuple):
    """PREFIX: ``prefix`` stands for ``uri`` in CURIEs from now on."""
    prefix: str
    uri: str


class Call(NamedTuple):
    """CALL: ``params`` are the arguments after the procedure URI, as the client sent them."""
    call_id: str
    proc_uri: str
    params: List[Any]


class Subscribe(NamedTuple):
    """SUBSCRIBE to ``topic_uri``."""
    topic_uri: str


class Unsubscribe(NamedTuple):
    """UNSUBSCRIBE from ``topic_uri``."""
    topic_uri: str


class Publish(NamedTuple):
    """PUBLISH ``event`` on ``topic_uri``.

    ``exclude_me`` is the publisher's own wish (``None`` when the message
    did not say); ``exclude``/``eligible`` are session-id lists (``None``
    when absent).  :meth:`recipients` turns them into the lists the
    application gets.
    """
    topic_uri: str
    event: Any
    exclude_me: Optional[bool]
    exclude: Optional[List[str]]
    eligible: Optional[List[str]]

    def recipients(self, session_id: str) -> Tuple[List[str], List[str]]:
        """``(exclude, eligible)`` as session-id lists, for the publisher ``session_id``.

        As in WAMP v1 and its reference implementation (AutobahnPython 0.8),
        the publisher is left out unless it sent ``excludeMe`` false or gave
        an explicit ``exclude`` list.
        """
        if self.exclude is not None:
            exclude = list(self.exclude)
        elif self.exclude_me is False:
            exclude = []
        else:
            exclude = [session_id]
        return exclude, list(self.eligible or ())


Message = Union[Prefix, Call, Subscribe, Unsubscribe, Publish]


def _reject_constant(name: str) -> Any:
    raise ValueError("%s is not JSON" % name)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError("number %s out of range" % text[:20])
    return value


def loads(text: str) -> Any:
    """Strict JSON: no NaN, no Infinity, no number that overflows a float
    (none of them could be sent on to another JSON peer)."""
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


def dumps(value: Any) -> str:
    """Compact JSON text; raises ``TypeError``/``ValueError`` for what JSON cannot carry."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _fail(reason: str) -> WampProtocolError:
    return WampProtocolError(_PROTOCOL_ERROR, reason)


def _uri(value: Any, what: str, max_length: int) -> str:
    if not isinstance(value, str) or not value:
        raise _fail("%s must be a non-empty string" % what)
    if len(value) > max_length:
        raise WampProtocolError(_POLICY, "%s longer than %d characters" % (what, max_length))
    return value


def _session_ids(value: Any, what: str) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _fail("PUBLISH %s must be a list of session id strings" % what)
    return value


def _arity(message: list, name: str, low: int, high: Optional[int] = None) -> None:
    high = low if high is None else high
    if not low <= len(message) <= high:
        expected = str(low) if low == high else ("%d to %d" % (low, high) if high < 1 << 30
                                                 else "at least %d" % low)
        raise _fail("%s has %d elements; expected %s" % (name, len(message), expected))


def parse(text: Union[str, bytes], max_uri_length: int = 2048) -> Message:
    """Check one client message and return it as a message object.

    Raises :class:`WampProtocolError`: close code 1007 for text that is not
    JSON, 1002 for JSON that is not a WAMP v1 client message (not an array,
    unknown or server-only type id, wrong element count or types), 1008
    for a URI or call id longer than ``max_uri_length``, 1003 for a binary
    message.
    """
    if not isinstance(text, str):
        raise WampProtocolError(1003, "WAMP v1 messages are text, not binary")
    try:
        message = loads(text)
    except (ValueError, RecursionError) as exc:
        raise WampProtocolError(_INVALID_PAYLOAD, "message is not valid JSON: %s" % str(exc)[:60]) from None
    if not isinstance(message, list) or not message:
        raise _fail("a WAMP message is a non-empty JSON array")
    kind = message[0]
    if kind.__class__ is not int:  # bool is an int too: reject true/false here
        raise _fail("the message type must be an integer")
    if kind in _SERVER_TO_CLIENT:
        raise _fail("%s is sent by servers, not clients" % _NAMES[kind])
    if kind == PREFIX:
        _arity(message, "PREFIX", 3)
        prefix = _uri(message[1], "PREFIX prefix", max_uri_length)
        if ":" in prefix:
            raise _fail("PREFIX prefix must not contain ':'")
        return Prefix(prefix, _uri(message[2], "PREFIX URI", max_uri_length))
    if kind == CALL:
        _arity(message, "CALL", 3, 1 << 30)
        call_id = message[1]
        if not isinstance(call_id, str) or not call_id:
            raise _fail("CALL callID must be a non-empty string")
        if len(call_id) > max_uri_length:
            raise WampProtocolError(_POLICY, "CALL callID longer than %d characters" % max_uri_length)
        return Call(call_id, _uri(message[2], "CALL procURI", max_uri_length), message[3:])
    if kind == SUBSCRIBE:
        _arity(message, "SUBSCRIBE", 2)
        return Subscribe(_uri(message[1], "SUBSCRIBE topicURI", max_uri_length))
    if kind == UNSUBSCRIBE:
        _arity(message, "UNSUBSCRIBE", 2)
        return Unsubscribe(_uri(message[1], "UNSUBSCRIBE topicURI", max_uri_length))
    if kind == PUBLISH:
        _arity(message, "PUBLISH", 3, 5)
        topic = _uri(message[1], "PUBLISH topicURI", max_uri_length)
        exclude_me: Optional[bool] = None
        exclude: Optional[List[str]] = None
        eligible: Optional[List[str]] = None
        if len(message) == 4:
            option = message[3]
            if isinstance(option, bool):
                exclude_me = option
            elif isinstance(option, list):
                exclude = _session_ids(option, "exclude")
            elif option is not None:  # AutobahnPython sends null for "not said"
                raise _fail("PUBLISH 4th element must be excludeMe (boolean) or exclude (list)")
        elif len(message) == 5:
            exclude = _session_ids(message[3], "exclude")
            eligible = _session_ids(message[4], "eligible")
        return Publish(topic, message[2], exclude_me, exclude, eligible)
    raise _fail("unknown message type %d" % kind)


def expand_curie(uri: str, prefixes: Mapping[str, str]) -> str:
    """``prefix:suffix`` with a known prefix becomes the prefix's URI followed by the suffix.

    Anything else (a full URI, an unknown prefix) is returned as it is.  As
    the WAMP v1 spec says, nothing is inserted between the two parts
    (Ratchet inserts ``#``).
    """
    prefix, colon, suffix = uri.partition(":")
    if colon:
        base = prefixes.get(prefix)
        if base is not None:
            return base + suffix
    return uri


def encode(*elements: Any) -> str:
    """One server message from its elements (``TypeError``/``ValueError`` if not JSON-able)."""
    return dumps(list(elements))


def encode_welcome(session_id: str, server_ident: str) -> str:
    """WELCOME: the session id, protocol version 1, and who the server is."""
    return encode(WELCOME, session_id, PROTOCOL_VERSION, server_ident)


def encode_prefix(prefix: str, uri: str) -> str:
    """PREFIX sent by the server."""
    return encode(PREFIX, prefix, uri)


def encode_call_result(call_id: str, result: Any) -> str:
    """CALLRESULT for ``call_id``."""
    return encode(CALL_RESULT, call_id, result)


def encode_call_error(call_id: str, error_uri: str, desc: str = "", details: Any = None) -> str:
    """CALLERROR for ``call_id``; ``details`` is sent only when not ``None``."""
    if details is None:
        return encode(CALL_ERROR, call_id, error_uri, desc)
    return encode(CALL_ERROR, call_id, error_uri, desc, details)


def encode_event(topic_uri: str, event: Any) -> str:
    """EVENT on ``topic_uri``."""
    return encode(EVENT, topic_uri, event)


def event_from_json(topic_uri: str, event_json: str) -> str:
    """EVENT whose payload is already JSON text (spliced in without decoding it again)."""
    return "[%d,%s,%s]" % (EVENT, dumps(topic_uri), event_json)
