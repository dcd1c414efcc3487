"""The WAMP v2 serializers: JSON (``wamp.2.json``) and MessagePack (``wamp.2.msgpack``).

A serializer turns one WAMP message (a list) into the payload of one
WebSocket message and back.  ``serializer.subprotocol`` names it in the
handshake, ``serializer.binary`` says whether its messages travel in binary
frames.  ``decode`` raises :class:`SerializationError` for anything that is
not exactly one well-formed value.

JSON follows the WAMP spec's binary convention: ``bytes`` travel as a string
made of a NUL character followed by the base64 of the bytes, and such a
string is turned back into ``bytes`` when decoded.  JSON output is compact
UTF-8 (no ASCII escaping); ``NaN`` and the infinities are refused both ways,
since they are not JSON.
"""

import base64
import binascii
import json
from typing import Any, Dict, Optional

from . import msgpack

__all__ = ["Serializer", "JsonSerializer", "MsgpackSerializer", "SerializationError", "SERIALIZERS",
           "serializer_for", "DEFAULT_MAX_DEPTH"]

#: Deepest nesting accepted in a MessagePack message, and in a JSON message carrying bytes
#: (other JSON is bounded by the interpreter's recursion limit, caught as malformed).
DEFAULT_MAX_DEPTH = 64


class SerializationError(ValueError):
    """A payload that cannot be decoded, or a message that cannot be encoded."""


class Serializer:
    """The interface of a WAMP serializer (see the module documentation)."""

    #: The WebSocket subprotocol that selects it.
    subprotocol = ""
    #: True when its payloads are binary frames (``bytes``), False for text (``str``).
    binary = False

    def encode(self, message: Any) -> Any:
        """The payload of ``message``: ``bytes`` if :attr:`binary`, else ``str``."""
        raise NotImplementedError

    def decode(self, payload: Any) -> Any:
        """The value ``payload`` holds; :class:`SerializationError` if it is malformed."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return "<%s %s>" % (type(self).__name__, self.subprotocol)


def _bytes_to_json(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\x00" + base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError("%s is not JSON serialisable" % type(value).__name__)


def _refuse_constant(name: str) -> Any:
    raise SerializationError("%s is not JSON" % name)


def _unpack_binary(value: Any, depth: int) -> Any:
    """``value`` with every NUL-led string replaced by the bytes its base64 carries."""
    if depth <= 0:
        raise SerializationError("nested deeper than %d" % DEFAULT_MAX_DEPTH)
    if isinstance(value, str):
        if value[:1] == "\x00":
            try:
                return base64.b64decode(value[1:].encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError):
                raise SerializationError("a string starting with NUL is not base64 bytes") from None
        return value
    if isinstance(value, list):
        return [_unpack_binary(item, depth - 1) for item in value]
    if isinstance(value, dict):
        return {key: _unpack_binary(item, depth - 1) for key, item in value.items()}
    return value


def _check_surrogates(value: Any, depth: int) -> None:
    """Refuse strings with a lone surrogate (``\\ud800`` alone): they cannot be sent as UTF-8."""
    if depth <= 0:
        raise SerializationError("nested deeper than %d" % DEFAULT_MAX_DEPTH)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise SerializationError("a string holds a lone surrogate (not Unicode text)") from None
    elif isinstance(value, list):
        for item in value:
            _check_surrogates(item, depth - 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_surrogates(key, depth - 1)
            _check_surrogates(item, depth - 1)


class JsonSerializer(Serializer):
    """``wamp.2.json``: compact UTF-8 JSON in text frames, bytes as NUL + base64."""

    subprotocol = "wamp.2.json"
    binary = False

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                                         default=_bytes_to_json)
        self._decoder = json.JSONDecoder(parse_constant=_refuse_constant)

    def encode(self, message: Any) -> str:
        """``message`` as JSON text; :class:`SerializationError` for what JSON cannot carry."""
        try:
            return self._encoder.encode(message)
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError("cannot encode as JSON: %s" % exc) from None

    def decode(self, payload: Any) -> Any:
        """The value of JSON ``payload`` (``str``, or UTF-8 ``bytes``)."""
        try:
            if not isinstance(payload, str):
                payload = bytes(payload).decode("utf-8")
            value = self._decoder.decode(payload)
        except SerializationError:
            raise
        except UnicodeDecodeError:
            raise SerializationError("JSON payload is not UTF-8") from None
        except (ValueError, RecursionError) as exc:
            raise SerializationError("malformed JSON: %s" % exc) from None
        if "\\ud" in payload or "\\uD" in payload:
            # An escaped surrogate: a lone one makes a string no UTF-8 peer can receive.
            _check_surrogates(value, DEFAULT_MAX_DEPTH + 1)
        # JSON escapes NUL as \u0000 (a raw control character is invalid): no such
        # escape, no binary value, and the usual message needs no walk at all.
        if "\\u0000" in payload:
            return _unpack_binary(value, DEFAULT_MAX_DEPTH + 1)
        return value


class MsgpackSerializer(Serializer):
    """``wamp.2.msgpack``: MessagePack in binary frames (see :mod:`ratchet_sel.wamp.v2.msgpack`)."""

    subprotocol = "wamp.2.msgpack"
    binary = True

    def encode(self, message: Any) -> bytes:
        """``message`` as MessagePack bytes."""
        try:
            return msgpack.packb(message)
        except (msgpack.MsgpackError, RecursionError, UnicodeEncodeError) as exc:
            raise SerializationError("cannot encode as MessagePack: %s" % exc) from None

    def decode(self, payload: Any) -> Any:
        """The value of MessagePack ``payload``."""
        if isinstance(payload, str):
            raise SerializationError("a MessagePack payload arrived in a text frame")
        try:
            return msgpack.unpackb(payload, DEFAULT_MAX_DEPTH)
        except msgpack.MsgpackError as exc:
            raise SerializationError("malformed MessagePack: %s" % exc) from None


#: Subprotocol -> serializer instance (serializers keep no per-session state).
SERIALIZERS: Dict[str, Serializer] = {s.subprotocol: s for s in (JsonSerializer(), MsgpackSerializer())}


def serializer_for(subprotocol: Optional[str]) -> Optional[Serializer]:
    """The serializer of a negotiated subprotocol, or ``None`` if it is not a WAMP v2 one."""
    return SERIALIZERS.get(subprotocol or "")
