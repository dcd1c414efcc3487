"""The master/worker channel's wire format, sans-IO: length-prefixed frames.

Each frame is::

    length (4 bytes, big-endian: what follows)  kind (1 byte)
    topic length (2 bytes)  topic (UTF-8)  payload

where the payload of a ``PUBLISH`` frame is the wire envelope of
:mod:`ratchet_sel.pubsub.envelope`.  Nothing here touches a socket.

The mailbox kinds carry messages addressed to one worker rather than to the
subscribers of a topic (WAMP calls between workers use them): a worker
``CLAIM``s a key (the master answers ``CLAIM_ANSWER``, payload ``b"1"`` or
``b"0"`` then the claim's token) and ``RELEASE``s it; ``TO_OWNER`` goes to
the worker that claimed the frame's key (or comes back as ``UNROUTED``);
``TO_WORKER`` goes to the worker whose index is the frame's topic; both
arrive as ``DELIVERED`` with the sender's index as the topic.  When a worker
is gone the master tells the others with ``WORKER_GONE`` (its index as the
topic, the keys it held as the payload, one per line).
"""

import struct
from typing import List, Tuple

__all__ = ["ChannelError", "FrameReader", "encode_channel_frame", "DEFAULT_MAX_FRAME", "DEFAULT_CHANNEL_BUFFER",
           "SUBSCRIBE", "UNSUBSCRIBE", "PUBLISH", "READY", "METRICS", "CLAIM", "CLAIM_ANSWER", "RELEASE",
           "TO_OWNER", "TO_WORKER", "DELIVERED", "UNROUTED", "WORKER_GONE", "MAILBOX_KINDS"]

#: Frame kinds on a master/worker channel.  METRICS carries a worker's
#: metrics snapshot (JSON; the topic names the worker; empty: it is gone).
SUBSCRIBE, UNSUBSCRIBE, PUBLISH, READY, METRICS = 1, 2, 3, 4, 5
#: The mailbox frame kinds (see the module documentation).
CLAIM, CLAIM_ANSWER, RELEASE, TO_OWNER, TO_WORKER, DELIVERED, UNROUTED, WORKER_GONE = 6, 7, 8, 9, 10, 11, 12, 13
MAILBOX_KINDS = frozenset((CLAIM, CLAIM_ANSWER, RELEASE, TO_OWNER, TO_WORKER, DELIVERED, UNROUTED, WORKER_GONE))
_KINDS = {SUBSCRIBE, UNSUBSCRIBE, PUBLISH, READY, METRICS} | MAILBOX_KINDS

_HEADER = struct.Struct("!IBH")  # length of the rest, kind, topic length
_MAX_TOPIC = 0xFFFF

#: Largest frame (after its length field) a channel accepts: a bigger
#: publication is refused at the publisher with a log line.
DEFAULT_MAX_FRAME = 16 * 1024 * 1024 + 64 * 1024
#: Most bytes a channel end buffers for a peer that does not read.
DEFAULT_CHANNEL_BUFFER = 16 * 1024 * 1024


class ChannelError(ValueError):
    """A frame on a master/worker channel that breaks the format or its limits."""


def encode_channel_frame(kind: int, topic: str = "", payload: bytes = b"") -> bytes:
    """One channel frame; raises :class:`ChannelError` for a topic longer than 65,535 bytes."""
    name = topic.encode("utf-8")
    if len(name) > _MAX_TOPIC:
        raise ChannelError("topic name longer than %d bytes" % _MAX_TOPIC)
    return _HEADER.pack(3 + len(name) + len(payload), kind, len(name)) + name + payload


class FrameReader:
    """Cuts a channel's byte stream into ``(kind, topic, payload)`` frames.

    Raises :class:`ChannelError` for a frame longer than ``max_frame``, of an
    unknown kind, or whose topic is not UTF-8; the channel is then unusable.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> List[Tuple[int, str, bytes]]:
        """The frames completed by ``data``, in order."""
        buffer = self._buffer
        buffer += data
        frames = []
        offset = 0
        end = len(buffer)
        while end - offset >= 4:
            length = int.from_bytes(buffer[offset:offset + 4], "big")
            if length > self.max_frame:
                raise ChannelError("frame of %d bytes is over the %d-byte limit" % (length, self.max_frame))
            if length < 3:
                raise ChannelError("frame of %d bytes is too short" % length)
            if end - offset - 4 < length:
                break
            _, kind, topic_length = _HEADER.unpack_from(buffer, offset)
            if kind not in _KINDS:
                raise ChannelError("unknown frame kind %d" % kind)
            if topic_length > length - 3:
                raise ChannelError("topic length %d overruns its frame" % topic_length)
            start = offset + _HEADER.size
            try:
                topic = buffer[start:start + topic_length].decode("utf-8")
            except UnicodeDecodeError:
                raise ChannelError("topic is not UTF-8") from None
            frames.append((kind, topic, bytes(buffer[start + topic_length:offset + 4 + length])))
            offset += 4 + length
        if offset:
            del buffer[:offset]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame waiting for the rest."""
        return len(self._buffer)
