"""RESP2, the Redis wire protocol: a sans-IO reply parser and the command encoder.

Bytes in, values out; no sockets here (:mod:`ratchet_sel.pubsub.redis` does the
I/O).  A reply becomes:

=====================  =================================================
``+OK``                ``str`` (a simple string)
``-ERR ...``           a :class:`RedisError` *value* (returned, not raised)
``:42``                ``int``
``$5 hello``           ``bytes``; ``$-1`` is ``None``
``*2 ...``             ``list`` of replies; ``*-1`` is ``None``
=====================  =================================================

Every size is bounded (:class:`RespParser` keywords); anything that is not
RESP2, or is larger than allowed, raises :class:`RespProtocolError`: the
caller drops the connection.
"""

from typing import Any, List, Optional, Sequence, Tuple, Union

__all__ = ["RespParser", "RespProtocolError", "RedisError", "encode_command", "Reply"]

Reply = Any  # str | bytes | int | None | RedisError | list of Reply


class RespProtocolError(ValueError):
    """The bytes are not a well-formed RESP2 reply, or exceed a limit."""


class RedisError:
    """An error reply from the server (``-ERR unknown command``), kept as a value."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    @property
    def kind(self) -> str:
        """The error's first word, such as ``ERR``, ``NOAUTH`` or ``WRONGPASS``."""
        return self.message.split(" ", 1)[0]

    def __repr__(self) -> str:
        return "RedisError(%r)" % self.message

    def __str__(self) -> str:
        return self.message

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, RedisError) and other.message == self.message


class _Incomplete(Exception):
    """More bytes are needed (internal to the parser)."""


_INCOMPLETE = _Incomplete()


def encode_command(*args: Union[str, bytes, int]) -> bytes:
    """One command as a RESP array of bulk strings (``str`` is sent as UTF-8)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode("utf-8")
        elif isinstance(arg, int):
            data = b"%d" % arg
        else:
            data = bytes(arg)
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


class RespParser:
    """Turns the bytes a Redis server sends into replies, in order.

    ``feed(data)`` returns the replies that ``data`` completed (maybe none).
    Limits (the defaults fit pub/sub traffic): ``max_bulk`` bytes in one bulk
    string, ``max_array`` elements in one array, ``max_depth`` levels of
    nested arrays, ``max_line`` bytes in a status, error or length line.
    """

    def __init__(self, *, max_bulk: int = 64 * 1024 * 1024, max_array: int = 65536,
                 max_depth: int = 8, max_line: int = 65536) -> None:
        self.max_bulk = max_bulk
        self.max_array = max_array
        self.max_depth = max_depth
        self.max_line = max_line
        self._buffer = bytearray()
        self._needed = 0  # a reply in progress is known to need at least this many bytes

    @property
    def buffered(self) -> int:
        """Bytes received that do not form a complete reply yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> List[Reply]:
        """Add ``data``; return the replies now complete.  Raises :class:`RespProtocolError`."""
        buffer = self._buffer
        buffer += data
        if len(buffer) < self._needed:
            return []
        replies: List[Reply] = []
        position = 0
        end = len(buffer)
        needed = 0
        while position < end:
            self._needed = 0
            try:
                reply, position_after = self._parse(buffer, position, 0)
            except _Incomplete:
                needed = self._needed
                break
            replies.append(reply)
            position = position_after
        if position:
            del buffer[:position]
        # A long bulk string arriving in pieces is not re-parsed until it can be complete.
        self._needed = max(0, needed - position)
        return replies

    def _line(self, buffer: bytearray, position: int) -> Tuple[bytes, int]:
        end = buffer.find(b"\r\n", position, position + self.max_line + 2)
        if end < 0:
            if len(buffer) - position > self.max_line + 1:
                raise RespProtocolError("line longer than %d bytes" % self.max_line)
            raise _INCOMPLETE
        return bytes(buffer[position:end]), end + 2

    def _length(self, buffer: bytearray, position: int, what: str) -> Tuple[int, int]:
        line, position = self._line(buffer, position)
        if not line or not (line.isdigit() or (line[:1] == b"-" and line[1:].isdigit())):
            raise RespProtocolError("bad %s length %r" % (what, line[:40]))
        return int(line), position

    def _parse(self, buffer: bytearray, position: int, depth: int) -> Tuple[Reply, int]:
        if position >= len(buffer):
            raise _INCOMPLETE
        kind = buffer[position]
        position += 1
        if kind == 0x24:  # '$' bulk string
            length, position = self._length(buffer, position, "bulk")
            if length == -1:
                return None, position
            if length < 0:
                raise RespProtocolError("negative bulk length %d" % length)
            if length > self.max_bulk:
                raise RespProtocolError("bulk string of %d bytes exceeds the limit of %d" % (length, self.max_bulk))
            end = position + length
            if len(buffer) < end + 2:
                self._needed = end + 2
                raise _INCOMPLETE
            if buffer[end:end + 2] != b"\r\n":
                raise RespProtocolError("bulk string not followed by CRLF")
            return bytes(buffer[position:end]), end + 2
        if kind == 0x2A:  # '*' array
            length, position = self._length(buffer, position, "array")
            if length == -1:
                return None, position
            if length < 0:
                raise RespProtocolError("negative array length %d" % length)
            if length > self.max_array:
                raise RespProtocolError("array of %d elements exceeds the limit of %d" % (length, self.max_array))
            if depth >= self.max_depth:
                raise RespProtocolError("arrays nested deeper than %d" % self.max_depth)
            items = []
            for _ in range(length):
                item, position = self._parse(buffer, position, depth + 1)
                items.append(item)
            return items, position
        if kind == 0x2B:  # '+' simple string
            line, position = self._line(buffer, position)
            return self._text(line), position
        if kind == 0x2D:  # '-' error
            line, position = self._line(buffer, position)
            return RedisError(self._text(line)), position
        if kind == 0x3A:  # ':' integer
            line, position = self._line(buffer, position)
            try:
                return int(line), position
            except ValueError:
                raise RespProtocolError("bad integer %r" % line[:40]) from None
        raise RespProtocolError("unknown reply type byte %r" % bytes((kind,)))

    @staticmethod
    def _text(line: bytes) -> str:
        if b"\r" in line or b"\n" in line:
            raise RespProtocolError("line break inside a simple reply")
        return line.decode("utf-8", "replace")


def split_message(reply: Reply) -> Optional[Tuple[bytes, Sequence[Reply]]]:
    """``(kind, rest)`` of a push on a subscribed connection (``[b"message", channel, data]``)."""
    if isinstance(reply, list) and reply and isinstance(reply[0], bytes):
        return reply[0].lower(), reply[1:]
    return None
