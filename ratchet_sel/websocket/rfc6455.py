"""RFC 6455 framing (also HyBi-07/08/10, which frame the same way), sans-IO.

:class:`FrameParser` takes the bytes the peer sent (a client's, on a server;
a server's, on a client) and returns events: :class:`Message` (``str`` for
text, ``bytes`` for binary), :class:`Ping`, :class:`Pong`, :class:`Close`,
and :class:`Failure` when the peer broke the protocol (with the close code to
fail the connection with).  It validates
while bytes arrive: UTF-8 of a text message is checked piece by piece, so an
invalid sequence fails the connection before the frame is complete.

:func:`encode_frame` and friends build frames (masked with a key given by a
client).  What a connection does with the events (the closing handshake,
answering pings) is :mod:`ratchet_sel.websocket.protocol`'s.  Nothing here
touches a socket.
"""

import codecs
import struct
import threading
from typing import Any, Callable, List, Optional, Union

from ..ops import accelerator

__all__ = [
    "OP_CONTINUATION", "OP_TEXT", "OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG",
    "Message", "Ping", "Pong", "Close", "Failure", "FrameParser",
    "encode_frame", "encode_message", "encode_close_payload", "apply_mask", "apply_mask_inplace",
    "apply_mask_python", "apply_mask_inplace_python",
    "is_valid_close_code", "is_sendable_close_code", "CloseCode", "ProtocolViolation", "frame_header",
    "SMALL_FRAME_HEADERS", "DIRECT_READ_MIN",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_DATA_OPCODES = (OP_CONTINUATION, OP_TEXT, OP_BINARY)
_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)
_MAX_CONTROL_PAYLOAD = 125


class CloseCode:
    """Named close codes (RFC 6455 section 7.4.1, and 1012-1014 from the IANA registry)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005          # never sent: "the close frame had no code"
    ABNORMAL = 1006           # never sent: "the TCP connection dropped"
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014


def is_valid_close_code(code: int) -> bool:
    """May a peer send ``code`` in a close frame?

    1000-1003 and 1007-1011 are defined by RFC 6455, 1012-1014 (service
    restart, try again later, bad gateway) were registered with IANA after
    it; 3000-3999 are registered and 4000-4999 private.  1004-1006 and 1015
    must never be sent, and the rest of 0-2999 is reserved.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def is_sendable_close_code(code: int) -> bool:
    """May we put ``code`` in a close frame we send?  The same codes a peer may send.

    1005, 1006 and 1015 mean "no code" and are never sent.
    """
    return is_valid_close_code(code)


# -- events -----------------------------------------------------------------
class Message:
    """A complete data message: ``data`` is ``str`` (text) or ``bytes`` (binary)."""

    __slots__ = ("data",)

    def __init__(self, data: Union[str, bytes]) -> None:
        self.data = data

    def __repr__(self) -> str:
        return "Message(%r)" % (self.data if len(self.data) <= 40 else self.data[:40],)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and type(other.data) is type(self.data) and other.data == self.data


class Ping:
    """A ping with its payload (answer with a pong carrying the same bytes)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __repr__(self) -> str:
        return "Ping(%r)" % (self.payload,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ping) and other.payload == self.payload


class Pong:
    """A pong with its payload."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __repr__(self) -> str:
        return "Pong(%r)" % (self.payload,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pong) and other.payload == self.payload


class Close:
    """The peer's close frame: ``code`` is ``None`` when it carried no code."""

    __slots__ = ("code", "reason")

    def __init__(self, code: Optional[int], reason: str = "") -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return "Close(%r, %r)" % (self.code, self.reason)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Close) and (other.code, other.reason) == (self.code, self.reason)


class Failure:
    """The peer broke the protocol: fail the connection with ``code`` and ``reason``.

    It is always the last event; the parser ignores everything after it.
    """

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return "Failure(%r, %r)" % (self.code, self.reason)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Failure) and (other.code, other.reason) == (self.code, self.reason)


class ProtocolViolation(Exception):
    """Raised inside the codec (and by extensions) to fail the connection with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# -- masking ------------------------------------------------------------------
# Pure Python's fastest wide XOR is on big integers, and it is fastest on
# pieces that stay in the CPU cache: 16 KiB at a time, measured here at about
# 50 times a per-byte loop (scripts/bench.py --only unmask).  This is the
# reference; the optional C accelerator (ratchet_sel.accelerator) replaces it
# when it is built, with the same results.
_MASK_CHUNK = 16 * 1024
_from_bytes = int.from_bytes


def apply_mask_python(data: Any, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (masking and unmasking alike), in pure Python."""
    size = len(data)
    if size <= _MASK_CHUNK:
        if not size:
            return b""
        key = _from_bytes((mask * ((size >> 2) + 1))[:size], "little")
        return (_from_bytes(data, "little") ^ key).to_bytes(size, "little")
    view = memoryview(data)
    key = _from_bytes(mask * (_MASK_CHUNK >> 2), "little")
    whole = size - size % _MASK_CHUNK
    parts = [(_from_bytes(view[i:i + _MASK_CHUNK], "little") ^ key).to_bytes(_MASK_CHUNK, "little")
             for i in range(0, whole, _MASK_CHUNK)]
    if whole < size:  # the tail starts on a multiple of 4, so the mask lines up
        parts.append(apply_mask_python(view[whole:], mask))
    return b"".join(parts)


def apply_mask_inplace_python(buffer: Any, mask: bytes) -> None:
    """XOR a writable buffer (``bytearray``, writable memoryview) with ``mask`` repeated, in place."""
    buffer[:] = apply_mask_python(buffer, mask)


_speedups = accelerator.speedups
if _speedups is not None:
    apply_mask: Callable[[Any, bytes], bytes] = _speedups.apply_mask
    apply_mask_inplace: Callable[[Any, bytes], None] = _speedups.apply_mask_inplace
else:
    apply_mask = apply_mask_python
    apply_mask_inplace = apply_mask_inplace_python


# -- encoding -----------------------------------------------------------------
_pack_short = struct.Struct("!BB").pack
_pack_medium = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack


#: Headers of unmasked final text/binary frames under 126 bytes, the most
#: common frames a server sends: ``SMALL_FRAME_HEADERS[opcode][length]``.
SMALL_FRAME_HEADERS = {opcode: [bytes((0x80 | opcode, n)) for n in range(126)] for opcode in (OP_TEXT, OP_BINARY)}
_SMALL_HEADERS = SMALL_FRAME_HEADERS


def frame_header(opcode: int, length: int, fin: bool = True, rsv1: bool = False,
                 masked: bool = False) -> bytes:
    """The 2-10 byte header of a frame (without the masking key)."""
    if length < 126 and fin and not rsv1 and not masked and opcode in _SMALL_HEADERS:
        return _SMALL_HEADERS[opcode][length]
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mask_bit = 0x80 if masked else 0
    if length < 126:
        return _pack_short(first, mask_bit | length)
    if length < 0x10000:
        return _pack_medium(first, mask_bit | 126, length)
    return _pack_long(first, mask_bit | 127, length)


def encode_frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv1: bool = False,
                 mask: Optional[bytes] = None) -> bytes:
    """One whole frame.  Servers send unmasked frames; pass ``mask`` to act as a client."""
    if mask is None:
        return frame_header(opcode, len(payload), fin, rsv1) + payload
    return frame_header(opcode, len(payload), fin, rsv1, True) + mask + apply_mask(payload, mask)


def encode_message(data: Union[str, bytes], fragment_size: int = 0,
                   mask_source: Optional[Callable[[], bytes]] = None) -> List[bytes]:
    """The frames of one data message: text for ``str``, binary for bytes.

    ``fragment_size`` > 0 splits the payload into frames of at most that many
    bytes.  ``mask_source`` (a function returning 4 random bytes) makes
    client-side masked frames.
    """
    if isinstance(data, str):
        opcode, payload = OP_TEXT, data.encode("utf-8")
    else:
        opcode, payload = OP_BINARY, bytes(data)
    if fragment_size <= 0 or len(payload) <= fragment_size:
        chunks = [payload]
    else:
        chunks = [payload[i:i + fragment_size] for i in range(0, len(payload), fragment_size)]
    frames = []
    for index, chunk in enumerate(chunks):
        frames.append(encode_frame(opcode if index == 0 else OP_CONTINUATION, chunk,
                                   fin=index == len(chunks) - 1,
                                   mask=mask_source() if mask_source else None))
    return frames


def encode_close_payload(code: Optional[int] = CloseCode.NORMAL, reason: str = "") -> bytes:
    """The payload of a close frame; the reason is cut to fit 125 bytes on a character boundary."""
    if code is None:
        return b""
    raw = reason.encode("utf-8")
    if len(raw) > _MAX_CONTROL_PAYLOAD - 2:
        raw = raw[:_MAX_CONTROL_PAYLOAD - 2].decode("utf-8", "ignore").encode("utf-8")
    return struct.pack("!H", code) + raw


# -- decoding -----------------------------------------------------------------
# One reason for every invalid text message, wherever the fault is found:
# the answer must not depend on how the bytes were split.
_INVALID_TEXT = "invalid UTF-8 in text message"
_unpack_medium = struct.Struct("!H").unpack_from
_unpack_long = struct.Struct("!Q").unpack_from
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class _GatherPool:
    """A few gathering buffers kept between messages, shared by the parsers of a process.

    A fresh megabyte per large message costs the allocator system calls and
    the kernel a page fault per 4 KiB page, every message.  A buffer is only
    ever reused, never allocated ahead of the bytes that fill it, so a client
    announcing a large frame it never sends costs nothing.
    """

    __slots__ = ("kept", "max_kept", "max_size", "_lock")

    def __init__(self, max_kept: int = 4, max_size: int = 4 * 1024 * 1024) -> None:
        self.kept: List[bytearray] = []
        self.max_kept = max_kept
        self.max_size = max_size
        self._lock = threading.Lock()  # loops in several threads may share the pool

    def take(self, size: int) -> bytearray:
        """A kept buffer of at least ``size`` bytes (contents undefined), or a new empty one."""
        with self._lock:
            kept = self.kept
            for index in range(len(kept)):
                if len(kept[index]) >= size:
                    return kept.pop(index)
        return bytearray()

    def give_back(self, buffer: bytearray) -> None:
        """Keep ``buffer`` for a later message, if there is room for it."""
        with self._lock:
            self._keep(buffer)

    def _keep(self, buffer: bytearray) -> None:
        kept = self.kept
        if len(buffer) <= self.max_size:
            if len(kept) < self.max_kept:
                kept.append(buffer)
            elif kept:
                smallest = min(range(len(kept)), key=lambda i: len(kept[i]))
                if len(kept[smallest]) < len(buffer):
                    kept[smallest] = buffer


_gather_pool = _GatherPool()

#: Frames of at least this many bytes may have their payload read straight
#: into their buffer (FrameParser.payload_buffer), once that many bytes of it
#: have arrived; smaller ones are not worth the extra read that stopping at
#: the frame's end costs.
DIRECT_READ_MIN = 64 * 1024


class FrameParser:
    """Turns the peer's bytes into events; see the module docstring.

    The class and its :meth:`feed` are longer than the project's other units
    on purpose: ``feed`` runs for every read of every connection, and one
    function with its state in locals is measurably faster than the same
    steps split into calls (scripts/profile_calls.py counts them).

    ``max_message_size`` bounds a whole (decompressed) message and
    ``max_frame_size`` a single frame; both answer 1009.  ``require_mask``
    enforces the client-to-server masking rule (RFC 6455 5.1), and
    ``forbid_mask`` its server-to-client side: a client parsing a server's
    frames passes ``require_mask=False, forbid_mask=True``.
    ``extension``, when set, owns RSV1 (permessage-deflate): it must have
    ``start_message()``, ``decompress(data, limit) -> bytes`` and
    ``end_message(limit) -> bytes``.
    """

    __slots__ = ("max_message_size", "max_frame_size", "require_mask", "forbid_mask", "extension",
                 "_single_frame_limit", "_masked_fast_path",
                 "_buffer", "_done", "_frame_opcode", "_frame_fin", "_frame_left", "_frame_mask",
                 "_message_opcode", "_message_compressed", "_message_size", "_received",
                 "_message_data", "_decoder", "_frame_buffer", "_frame_filled", "large_frame_pending")

    def __init__(self, *, max_message_size: int = 1024 * 1024, max_frame_size: Optional[int] = None,
                 require_mask: bool = True, forbid_mask: bool = False, extension: Any = None) -> None:
        if require_mask and forbid_mask:
            raise ValueError("frames cannot be both required to be masked and forbidden to be")
        self.max_message_size = max_message_size
        self.max_frame_size = max_frame_size if max_frame_size is not None else max_message_size
        self.require_mask = require_mask
        self.forbid_mask = forbid_mask
        self._masked_fast_path = not forbid_mask
        self.extension = extension
        self._single_frame_limit = min(self.max_frame_size, max_message_size)
        self._buffer: Any = b""          # bytes of an incomplete frame header or control frame
        self._done = False               # after a Close or a Failure
        # the frame whose payload is being read (None: expecting a header)
        self._frame_opcode: Optional[int] = None
        self._frame_fin = False
        self._frame_left = 0
        self._frame_mask = b""
        # the data message being assembled (None: no message in progress)
        self._message_opcode: Optional[int] = None
        self._message_compressed = False
        self._message_size = 0           # wire bytes of the message so far
        self._received = 0               # payload bytes after decompression
        # One buffer per message: a list of pieces would cost an object per
        # fragment, many times the size limit for a client sending tiny frames.
        self._message_data: Any = None
        self._decoder: Any = None
        # A whole binary message in one frame that did not arrive in one piece:
        # its masked bytes gather in one buffer, unmasked once at the end
        # straight into the message's bytes.  The buffer grows with what has
        # arrived, never with what a header announces, so that a client
        # cannot make the server allocate memory it never sends.
        self._frame_buffer: Any = None
        self._frame_filled = 0
        #: True while the payload of a large binary frame (DIRECT_READ_MIN
        #: bytes or more) is still to come: the transport may then read it
        #: straight into :meth:`payload_buffer` instead of calling :meth:`feed`.
        self.large_frame_pending = False

    def feed(self, data: bytes) -> List[Any]:
        """Add bytes; returns the events they complete (possibly none)."""
        events: List[Any] = []
        if self._done:
            return events
        if self._buffer:
            self._buffer += data
            buf: Any = self._buffer
        else:
            buf = data
        # (one function for the whole parse: this runs for every read)
        try:
            pos = 0
            end = len(buf)
            while not self._done:
                if self._frame_opcode is not None:
                    # Inside a data frame's payload: take what has arrived.
                    take = min(self._frame_left, end - pos)
                    gather = self._frame_buffer
                    if gather is not None:
                        if take:
                            filled = self._frame_filled
                            if len(gather) >= filled + take:
                                # Room already there (a kept buffer): written through a
                                # memoryview, as a bytearray slice assignment would copy twice.
                                with memoryview(gather) as into:
                                    into[filled:filled + take] = memoryview(buf)[pos:pos + take]
                            else:  # grows with what arrives, one copy
                                del gather[filled:]
                                gather += memoryview(buf)[pos:pos + take]
                            self._frame_filled = filled + take
                            self._frame_left -= take
                            pos += take
                        if self._frame_left:
                            break
                        events.append(self._finish_frame_buffer())
                        continue
                    if take:
                        self._consume_partial(buf[pos:pos + take])
                        pos += take
                    if self._frame_left:
                        break
                    fin = self._frame_fin
                    self._frame_opcode = None
                    if fin:
                        events.append(self._finish_message())
                    continue

                if end - pos < 2:
                    break
                first = buf[pos]
                second = buf[pos + 1]
                fin = first & 0x80
                opcode = first & 0x0F
                length = second & 0x7F
                header = 2
                if length == 126:
                    header = 4
                    if end - pos < header:
                        break
                    length = _unpack_medium(buf, pos + 2)[0]
                elif length == 127:
                    header = 10
                    if end - pos < header:
                        break
                    length = _unpack_long(buf, pos + 2)[0]
                    if length >> 63:
                        raise ProtocolViolation(CloseCode.PROTOCOL_ERROR,
                                                "frame length has the most significant bit set")
                masked = second & 0x80
                if masked:
                    header += 4
                    if end - pos < header:
                        break
                payload_start = pos + header
                if (fin and masked and self._masked_fast_path and not first & 0x70
                        and (opcode == OP_TEXT or opcode == OP_BINARY)
                        and end - payload_start >= length and length <= self._single_frame_limit
                        and self._message_opcode is None):
                    # The common case, already valid by the checks above: a whole
                    # unfragmented, uncompressed, masked message within the limits.
                    payload = apply_mask(buf[payload_start:payload_start + length],
                                         bytes(buf[payload_start - 4:payload_start]))
                    pos = payload_start + length
                    if opcode == OP_TEXT:
                        try:
                            events.append(Message(codecs.utf_8_decode(payload, "strict", True)[0]))
                        except UnicodeDecodeError:
                            raise ProtocolViolation(CloseCode.INVALID_DATA, _INVALID_TEXT) from None
                    else:
                        events.append(Message(payload))
                    continue

                self._check_header(first, opcode, fin, masked, length)
                if opcode >= OP_CLOSE:
                    if end - payload_start < length:
                        break  # control frames are small: wait for all of it
                    payload = buf[payload_start:payload_start + length]
                    if masked:
                        payload = apply_mask(payload, bytes(buf[payload_start - 4:payload_start]))
                    pos = payload_start + length
                    events.append(self._control_event(opcode, bytes(payload)))
                    continue

                if opcode != OP_CONTINUATION:
                    self._start_message(opcode, bool(first & 0x40))
                    if fin and masked and opcode == OP_BINARY and not self._message_compressed:
                        self._frame_buffer = _gather_pool.take(length)
                        self._frame_filled = 0
                        self.large_frame_pending = length >= DIRECT_READ_MIN
                self._message_size += length
                self._frame_opcode = opcode
                self._frame_fin = bool(fin)
                self._frame_left = length
                self._frame_mask = bytes(buf[payload_start - 4:payload_start]) if masked else b""
                pos = payload_start
        except ProtocolViolation as exc:
            self._done = True
            self._buffer = b""
            events.append(Failure(exc.code, exc.reason))
            return events
        if self._done or pos >= len(buf):
            self._buffer = b""
        elif buf is self._buffer:
            del self._buffer[:pos]
        else:
            self._buffer = bytearray(buf[pos:])
        return events

    def _check_header(self, first: int, opcode: int, fin: int, masked: int, length: int) -> None:
        if first & 0x30 or (first & 0x40 and (self.extension is None or opcode in _CONTROL_OPCODES)):
            raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, "reserved bits set without a negotiated extension")
        if opcode >= OP_CLOSE:
            if opcode not in _CONTROL_OPCODES:
                raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, "reserved control opcode %d" % opcode)
            if not fin:
                raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, "fragmented control frame")
            if length > _MAX_CONTROL_PAYLOAD:
                raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, "control frame payload over 125 bytes")
        elif opcode not in _DATA_OPCODES:
            raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, "reserved data opcode %d" % opcode)
        elif opcode == OP_CONTINUATION:
            if self._message_opcode is None:
                raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, "continuation frame without a message to continue")
            if first & 0x40:
                raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, "RSV1 set on a continuation frame")
        elif self._message_opcode is not None:
            raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, "new data frame before the last message ended")
        if self.require_mask and not masked:
            raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, "client frame not masked")
        if self.forbid_mask and masked:
            raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, "server frame masked")
        if opcode < OP_CLOSE:
            if length > self.max_frame_size:
                raise ProtocolViolation(CloseCode.MESSAGE_TOO_BIG, "frame of %d bytes exceeds the limit of %d"
                            % (length, self.max_frame_size))
            if self._message_size + length > self.max_message_size:
                raise ProtocolViolation(CloseCode.MESSAGE_TOO_BIG, "message exceeds the limit of %d bytes"
                            % self.max_message_size)

    def _control_event(self, opcode: int, payload: bytes) -> Any:
        if opcode == OP_PING:
            return Ping(payload)
        if opcode == OP_PONG:
            return Pong(payload)
        self._done = True
        if not payload:
            return Close(None, "")
        if len(payload) == 1:
            raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, "close frame payload of 1 byte")
        code = _unpack_medium(payload)[0]
        if not is_valid_close_code(code):
            raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, "invalid close code %d" % code)
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation(CloseCode.INVALID_DATA, "invalid UTF-8 in close reason") from None
        return Close(code, reason)

    # -- reading a large frame's payload without feed() -----------------------
    def payload_buffer(self) -> Optional[memoryview]:
        """A writable view to read the current large frame's next payload bytes into, or None.

        While :attr:`large_frame_pending` is true, a transport can skip one
        copy per read: ``recv_into`` this view, release it, then report the
        count with :meth:`payload_written`.  The view never reaches past the
        frame, so the bytes after it are left for :meth:`feed`.  The buffer
        grows with what has arrived, at most doubling, never to the length a
        header merely announces: until ``DIRECT_READ_MIN`` bytes of the
        payload are in, and whenever the buffer is full with fewer, this
        returns None and the next read goes through :meth:`feed`.
        """
        gather = self._frame_buffer
        left = self._frame_left
        if not self.large_frame_pending or not left or self._done:
            return None
        filled = self._frame_filled
        room = len(gather) - filled
        if room < left and room < DIRECT_READ_MIN:
            if filled < DIRECT_READ_MIN:
                return None
            gather += bytes(min(left, filled) - room)
            room = len(gather) - filled
        return memoryview(gather)[filled:filled + min(room, left)]

    def payload_written(self, size: int) -> List[Any]:
        """Count ``size`` bytes written into the (released) view of :meth:`payload_buffer`.

        Returns the events they complete (the frame's message, when its last byte came)."""
        if not 0 < size <= self._frame_left or not self.large_frame_pending:
            raise ValueError("%d bytes written where %d were expected" % (size, self._frame_left))
        self._frame_filled += size
        self._frame_left -= size
        if self._frame_left:
            return []
        return [self._finish_frame_buffer()]

    # -- message assembly ----------------------------------------------------
    def _finish_frame_buffer(self) -> Message:
        gather = self._frame_buffer
        self.large_frame_pending = False
        with memoryview(gather) as view:  # released before the buffer may be resized again
            message = Message(apply_mask(view[:self._frame_filled], self._frame_mask))
        _gather_pool.give_back(gather)
        self._frame_buffer = None
        self._frame_opcode = None
        self._message_opcode = None
        self._message_data = None
        self._message_size = 0
        self._received = 0
        return message

    def _start_message(self, opcode: int, compressed: bool) -> None:
        self._message_opcode = opcode
        self._message_compressed = compressed
        self._message_size = 0
        self._message_data = bytearray()
        # Compressed text is checked once whole: where a fault in the inflated
        # bytes would be seen first depends on how the input was split, and
        # a size or deflate fault found later must not win one time and lose
        # another.  (Inflated messages are bounded by max_message_size.)
        self._decoder = _utf8_decoder() if opcode == OP_TEXT and not compressed else None
        if compressed:
            self.extension.start_message()

    def _consume_partial(self, chunk: Any) -> None:
        mask = self._frame_mask
        if mask:
            data = apply_mask(chunk, mask)
            shift = len(chunk) & 3
            if shift:  # the next byte of this frame lines up with mask[shift]
                self._frame_mask = mask[shift:] + mask[:shift]
        else:
            data = bytes(chunk)
        self._frame_left -= len(chunk)
        if self._message_compressed:
            data = self._inflate(self.extension.decompress, data)
        self._add_part(data)

    def _inflate(self, step: Callable[..., bytes], data: Any) -> bytes:
        # Ask for one byte more than the limit allows, so that a zip bomb is
        # caught before more than the limit is ever inflated.
        limit = self.max_message_size - self._received + 1
        out = step(data, limit) if data is not None else step(limit)
        if len(out) >= limit:
            raise ProtocolViolation(CloseCode.MESSAGE_TOO_BIG, "decompressed message exceeds the limit of %d bytes"
                        % self.max_message_size)
        return out

    def _add_part(self, data: bytes) -> None:
        if not data:
            return
        if self._decoder is not None:
            # Validate as the bytes arrive (fail fast); the text is decoded once, at the end.
            try:
                self._decoder.decode(data, False)
            except UnicodeDecodeError:
                raise ProtocolViolation(CloseCode.INVALID_DATA, _INVALID_TEXT) from None
        self._message_data += data
        self._received += len(data)

    def _finish_message(self) -> Message:
        if self._message_compressed:
            self._add_part(self._inflate(self.extension.end_message, None))
        data = self._message_data
        if self._message_opcode == OP_TEXT:
            try:
                message = Message(data.decode("utf-8"))
            except UnicodeDecodeError:
                raise ProtocolViolation(CloseCode.INVALID_DATA, _INVALID_TEXT) from None
        else:
            message = Message(bytes(data))
        self._message_opcode = None
        self._message_data = None
        self._decoder = None
        self._message_size = 0
        self._received = 0
        return message
