"""WAMP v2 message codes, their shapes, and the validation of what a client sends.

A WAMP message is a list whose first item is its type code.  :func:`validate`
checks one decoded client message against the shape of its type (the
positions, the types of each position, the optional ``args`` list and
``kwargs`` dict) and raises :class:`ProtocolViolation` with a readable reason
otherwise.  URIs are checked with the spec's loose rules by default
(:func:`is_loose_uri`), or the strict ones (:func:`is_strict_uri`).
"""

import re
from typing import Any, Callable, Dict, Tuple

__all__ = ["HELLO", "WELCOME", "ABORT", "CHALLENGE", "AUTHENTICATE", "GOODBYE", "ERROR", "PUBLISH", "PUBLISHED",
           "SUBSCRIBE", "SUBSCRIBED", "UNSUBSCRIBE", "UNSUBSCRIBED", "EVENT", "CALL", "CANCEL", "RESULT",
           "REGISTER", "REGISTERED", "UNREGISTER", "UNREGISTERED", "INVOCATION", "INTERRUPT", "YIELD",
           "NAMES", "MAX_ID", "ProtocolViolation", "validate", "is_loose_uri", "is_strict_uri", "is_id"]

HELLO, WELCOME, ABORT, CHALLENGE, AUTHENTICATE, GOODBYE = 1, 2, 3, 4, 5, 6
ERROR = 8
PUBLISH, PUBLISHED = 16, 17
SUBSCRIBE, SUBSCRIBED, UNSUBSCRIBE, UNSUBSCRIBED, EVENT = 32, 33, 34, 35, 36
CALL, CANCEL, RESULT = 48, 49, 50
REGISTER, REGISTERED, UNREGISTER, UNREGISTERED, INVOCATION, INTERRUPT, YIELD = 64, 65, 66, 67, 68, 69, 70

#: Code -> message name, for log lines and errors.
NAMES: Dict[int, str] = {
    HELLO: "HELLO", WELCOME: "WELCOME", ABORT: "ABORT", CHALLENGE: "CHALLENGE", AUTHENTICATE: "AUTHENTICATE",
    GOODBYE: "GOODBYE", ERROR: "ERROR", PUBLISH: "PUBLISH", PUBLISHED: "PUBLISHED", SUBSCRIBE: "SUBSCRIBE",
    SUBSCRIBED: "SUBSCRIBED", UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBSCRIBED: "UNSUBSCRIBED", EVENT: "EVENT",
    CALL: "CALL", CANCEL: "CANCEL", RESULT: "RESULT", REGISTER: "REGISTER", REGISTERED: "REGISTERED",
    UNREGISTER: "UNREGISTER", UNREGISTERED: "UNREGISTERED", INVOCATION: "INVOCATION", INTERRUPT: "INTERRUPT",
    YIELD: "YIELD",
}

#: Largest id (session, request, subscription, registration, publication): 2**53, exact in a double.
MAX_ID = 2 ** 53


class ProtocolViolation(Exception):
    """A client message that breaks WAMP: the session ends with ABORT ``wamp.error.protocol_violation``."""


def is_id(value: Any) -> bool:
    """True for a WAMP id: an integer (not a bool) from 0 to 2**53."""
    return type(value) is int and 0 <= value <= MAX_ID


_LOOSE = re.compile(r"[^\s.#]+(?:\.[^\s.#]+)*\Z")
_STRICT = re.compile(r"([0-9a-z_]+\.)*[0-9a-z_]+\Z")


def is_loose_uri(value: Any) -> bool:
    """The spec's loose URI rule: dot-separated non-empty components without whitespace or ``#``."""
    return type(value) is str and _LOOSE.match(value) is not None


def is_strict_uri(value: Any) -> bool:
    """The spec's strict URI rule: components of lower-case letters, digits and ``_`` only."""
    return type(value) is str and _STRICT.match(value) is not None


def _is_dict(value: Any) -> bool:
    return type(value) is dict


def _is_str(value: Any) -> bool:
    return type(value) is str


def _is_uri(value: Any) -> bool:
    return True  # replaced by the URI rule in force; see validate()


# The fixed positions after the code: (name, check) each; then optional args (list) and kwargs (dict)
# when the message type carries a payload.
_ID, _DICT, _STR, _URI = ("id", is_id), ("dict", _is_dict), ("string", _is_str), ("URI", _is_uri)
_SHAPES: Dict[int, Tuple[Tuple[Tuple[str, Callable[[Any], bool]], ...], bool]] = {
    HELLO: ((_URI, _DICT), False),
    AUTHENTICATE: ((_STR, _DICT), False),
    ABORT: ((_DICT, _URI), False),
    GOODBYE: ((_DICT, _URI), False),
    ERROR: ((_ID, _ID, _DICT, _URI), True),
    PUBLISH: ((_ID, _DICT, _URI), True),
    SUBSCRIBE: ((_ID, _DICT, _URI), False),
    UNSUBSCRIBE: ((_ID, _ID), False),
    CALL: ((_ID, _DICT, _URI), True),
    CANCEL: ((_ID, _DICT), False),
    REGISTER: ((_ID, _DICT, _URI), False),
    UNREGISTER: ((_ID, _ID), False),
    YIELD: ((_ID, _DICT), True),
}

#: The codes a router accepts from a client.
CLIENT_CODES = frozenset(_SHAPES)


def validate(message: Any, uri_rule: Callable[[Any], bool] = is_loose_uri) -> int:
    """Check a decoded client message; returns its code or raises :class:`ProtocolViolation`."""
    if type(message) is not list or not message:
        raise ProtocolViolation("a WAMP message is a non-empty array")
    code = message[0]
    shape = _SHAPES.get(code) if type(code) is int else None
    if shape is None:
        raise ProtocolViolation("%r is not a message type a client may send" % (code,))
    fields, payload = shape
    count = len(message) - 1
    most = len(fields) + (2 if payload else 0)
    if not len(fields) <= count <= most:
        raise ProtocolViolation("%s has %d fields, expected %s" % (
            NAMES[code], count, len(fields) if most == len(fields) else "%d to %d" % (len(fields), most)))
    for position, (kind, check) in enumerate(fields, 1):
        value = message[position]
        good = uri_rule(value) if check is _is_uri else check(value)
        if not good:
            raise ProtocolViolation("%s field %d is not a valid %s: %.60r" % (NAMES[code], position, kind, value))
    if count > len(fields) and type(message[len(fields) + 1]) is not list:
        raise ProtocolViolation("%s arguments are not an array" % NAMES[code])
    if count == most and payload:
        kwargs = message[most]
        if type(kwargs) is not dict:
            raise ProtocolViolation("%s keyword arguments are not an object" % NAMES[code])
        for key in kwargs:
            if type(key) is not str:      # possible in MessagePack; a keyword is a string
                raise ProtocolViolation("%s keyword argument name %.40r is not a string" % (NAMES[code], key))
    return code
