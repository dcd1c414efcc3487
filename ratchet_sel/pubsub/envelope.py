"""A publication, and how it travels between processes as one byte string.

The wire form is what goes into a Redis channel and over the worker hub's
socketpairs.  It has two shapes:

- **Raw**: anything that does not start with :data:`MAGIC`.  This is what
  other programs publish (``PUBLISH ratchet_sel:news "hello"``): valid UTF-8
  is delivered as a text message, anything else as a binary message, with no
  exclusions.
- **Enveloped**: what ratchet_sel itself publishes, so that a binary message
  stays binary, exclusions travel, and a process recognises its own
  publications when Redis echoes them back::

      MAGIC  header-JSON  b"\\n"  payload

  where the header is a JSON object: ``"o"`` the origin node id, ``"b"`` true
  for a binary payload, ``"x"`` the excluded subscriber keys and ``"e"`` the
  eligible ones (both optional lists of strings).

ratchet_sel always envelopes what it publishes, so only a raw publication
from another program that begins with the magic bytes (a NUL, then
``rsel1``) can be misread; such a program should not start with NUL.
"""

import json
import secrets
from typing import Any, FrozenSet, Iterable, Optional, Union

__all__ = ["Publication", "MAGIC", "encode", "decode", "EnvelopeError", "NODE_ID", "renew_node_id"]

#: The first bytes of an enveloped publication.
MAGIC = b"\x00rsel1"

#: Largest envelope header accepted from the wire (exclusion lists included).
MAX_HEADER = 1 << 20


class EnvelopeError(ValueError):
    """An enveloped publication whose header cannot be read."""


#: This process's identity on a backplane, stamped on every publication it
#: makes: what it sent comes back from Redis (it is subscribed too) and is
#: recognised by it.  Made anew in each forked worker by :func:`renew_node_id`.
NODE_ID = secrets.token_hex(8)


def renew_node_id() -> str:
    """Give this process a new node identity (called in a child after ``fork``)."""
    global NODE_ID
    NODE_ID = secrets.token_hex(8)
    return NODE_ID


class Publication:
    """One message published to a topic.

    ``message`` is ``str`` (a text message) or ``bytes`` (binary);
    ``exclude``/``eligible`` are sets of subscriber keys; ``origin`` is the
    node id of the process that published it (``None`` for a raw publication
    from another program).
    """

    __slots__ = ("topic", "message", "exclude", "eligible", "origin")

    def __init__(self, topic: str, message: Union[str, bytes], exclude: Iterable[str] = (),
                 eligible: Iterable[str] = (), origin: Optional[str] = None) -> None:
        self.topic = topic
        self.message = message
        self.exclude: FrozenSet[str] = frozenset(exclude)
        self.eligible: FrozenSet[str] = frozenset(eligible)
        self.origin = NODE_ID if origin is None else origin  # read now: a forked worker renews it

    @property
    def is_text(self) -> bool:
        """True for a text message."""
        return isinstance(self.message, str)

    def __repr__(self) -> str:
        return "<Publication %r %s %d %s from %s>" % (
            self.topic, "text" if self.is_text else "binary", len(self.message),
            "chars" if self.is_text else "bytes", self.origin)

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, Publication):
            return NotImplemented
        return (self.topic, self.message, self.exclude, self.eligible, self.origin) == (
            other.topic, other.message, other.exclude, other.eligible, other.origin)


def encode(publication: Publication) -> bytes:
    """The wire form of a publication made by this library (always enveloped)."""
    header: dict = {"o": publication.origin}
    if publication.is_text:
        payload = publication.message.encode("utf-8")  # type: ignore[union-attr]
    else:
        header["b"] = True
        payload = bytes(publication.message)  # type: ignore[arg-type]
    if publication.exclude:
        header["x"] = sorted(publication.exclude)
    if publication.eligible:
        header["e"] = sorted(publication.eligible)
    return MAGIC + json.dumps(header, separators=(",", ":")).encode("utf-8") + b"\n" + payload


def decode(topic: str, data: bytes) -> Publication:
    """A publication from its wire form: enveloped, or raw from another program.

    Raises :class:`EnvelopeError` for an envelope whose header is broken.
    """
    if not data.startswith(MAGIC):
        try:
            return Publication(topic, data.decode("utf-8"), origin="")
        except UnicodeDecodeError:
            return Publication(topic, bytes(data), origin="")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER)
    if end < 0:
        raise EnvelopeError("envelope header not terminated")
    try:
        header = json.loads(data[len(MAGIC):end].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise EnvelopeError("envelope header is not JSON: %s" % exc) from None
    if not isinstance(header, dict):
        raise EnvelopeError("envelope header is not an object")
    origin = header.get("o")
    exclude = header.get("x", [])
    eligible = header.get("e", [])
    if not isinstance(origin, str) or not _strings(exclude) or not _strings(eligible):
        raise EnvelopeError("envelope header has fields of the wrong type")
    payload = data[end + 1:]
    if header.get("b"):
        message: Union[str, bytes] = bytes(payload)
    else:
        try:
            message = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise EnvelopeError("text payload is not UTF-8") from None
    return Publication(topic, message, exclude, eligible, origin)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
