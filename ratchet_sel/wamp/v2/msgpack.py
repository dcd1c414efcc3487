"""A strict MessagePack codec (the subset WAMP needs), standard library only.

Encodes ``None``, ``bool``, ``int`` (-2**63 to 2**64-1), ``float`` (always
float 64), ``str``, ``bytes``/``bytearray``/``memoryview``, ``list``/``tuple``
and ``dict`` in the smallest MessagePack form.  Decodes every MessagePack
type but the extension types (fixext/ext, including the timestamp), which
are refused: WAMP has no use for them.

The decoder is strict: it refuses truncated input, trailing bytes, strings
that are not UTF-8, map keys that cannot be Python dict keys (arrays, maps),
nesting deeper than ``max_depth`` and containers that announce more items
than the input could hold.  Every refusal is a :class:`MsgpackError` with a
message saying what and where.
"""

import struct
from typing import Any, List

__all__ = ["packb", "unpackb", "MsgpackError", "DEFAULT_MAX_DEPTH"]

#: Default deepest nesting of arrays and maps accepted by :func:`unpackb`.
DEFAULT_MAX_DEPTH = 64


class MsgpackError(ValueError):
    """Input that is not (supported) MessagePack, or a value MessagePack cannot carry."""


_pack_float = struct.Struct(">Bd").pack
_b16 = struct.Struct(">BH").pack
_b32 = struct.Struct(">BI").pack
_b64 = struct.Struct(">BQ").pack
_s8 = struct.Struct(">Bb").pack
_s16 = struct.Struct(">Bh").pack
_s32 = struct.Struct(">Bi").pack
_s64 = struct.Struct(">Bq").pack


def _pack_int(value: int, out: List[bytes]) -> None:
    if 0 <= value < 0x80:
        out.append(bytes((value,)))
    elif -32 <= value < 0:
        out.append(bytes((value & 0xFF,)))
    elif value >= 0:
        if value <= 0xFF:
            out.append(bytes((0xCC, value)))
        elif value <= 0xFFFF:
            out.append(_b16(0xCD, value))
        elif value <= 0xFFFFFFFF:
            out.append(_b32(0xCE, value))
        elif value <= 0xFFFFFFFFFFFFFFFF:
            out.append(_b64(0xCF, value))
        else:
            raise MsgpackError("integer too large for MessagePack: %d" % value)
    elif value >= -0x80:
        out.append(_s8(0xD0, value))
    elif value >= -0x8000:
        out.append(_s16(0xD1, value))
    elif value >= -0x80000000:
        out.append(_s32(0xD2, value))
    elif value >= -0x8000000000000000:
        out.append(_s64(0xD3, value))
    else:
        raise MsgpackError("integer too small for MessagePack: %d" % value)


def _pack_head(length: int, fix_base: int, fix_limit: int, code8: int, code16: int, out: List[bytes]) -> None:
    """The header of a str/bin/array/map of ``length`` items (code8 0 when there is no 8-bit form)."""
    if length < fix_limit:
        out.append(bytes((fix_base | length,)))
    elif code8 and length <= 0xFF:
        out.append(bytes((code8, length)))
    elif length <= 0xFFFF:
        out.append(_b16(code16, length))
    elif length <= 0xFFFFFFFF:
        out.append(_b32(code16 + 1, length))
    else:
        raise MsgpackError("container or string too long for MessagePack: %d" % length)


def _pack(value: Any, out: List[bytes], depth: int) -> None:
    kind = type(value)
    if kind is str:
        data = value.encode("utf-8")
        _pack_head(len(data), 0xA0, 32, 0xD9, 0xDA, out)
        out.append(data)
    elif kind is int:
        _pack_int(value, out)
    elif kind is list or kind is tuple:
        if depth <= 0:
            raise MsgpackError("value nested too deeply")
        _pack_head(len(value), 0x90, 16, 0, 0xDC, out)
        for item in value:
            _pack(item, out, depth - 1)
    elif kind is dict:
        if depth <= 0:
            raise MsgpackError("value nested too deeply")
        _pack_head(len(value), 0x80, 16, 0, 0xDE, out)
        for key, item in value.items():
            _pack(key, out, depth - 1)
            _pack(item, out, depth - 1)
    elif value is None:
        out.append(b"\xc0")
    elif value is True:
        out.append(b"\xc3")
    elif value is False:
        out.append(b"\xc2")
    elif kind is float:
        out.append(_pack_float(0xCB, value))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if len(data) <= 0xFF:
            out.append(bytes((0xC4, len(data))))
        elif len(data) <= 0xFFFF:
            out.append(_b16(0xC5, len(data)))
        elif len(data) <= 0xFFFFFFFF:
            out.append(_b32(0xC6, len(data)))
        else:
            raise MsgpackError("binary too long for MessagePack")
        out.append(data)
    elif isinstance(value, bool):
        _pack(bool(value), out, depth)
    elif isinstance(value, int):
        _pack_int(int(value), out)
    elif isinstance(value, float):
        out.append(_pack_float(0xCB, float(value)))
    elif isinstance(value, str):
        _pack(str(value), out, depth)
    elif isinstance(value, (list, tuple)):
        _pack(list(value), out, depth)
    elif isinstance(value, dict):
        _pack(dict(value), out, depth)
    else:
        raise MsgpackError("cannot serialise %s to MessagePack" % kind.__name__)


def packb(value: Any, max_depth: int = DEFAULT_MAX_DEPTH) -> bytes:
    """``value`` as MessagePack bytes; :class:`MsgpackError` for what MessagePack cannot carry."""
    out: List[bytes] = []
    _pack(value, out, max_depth)
    return b"".join(out)


_u16 = struct.Struct(">H").unpack_from
_u32 = struct.Struct(">I").unpack_from
_u64 = struct.Struct(">Q").unpack_from
_i8 = struct.Struct(">b").unpack_from
_i16 = struct.Struct(">h").unpack_from
_i32 = struct.Struct(">i").unpack_from
_i64 = struct.Struct(">q").unpack_from
_f32 = struct.Struct(">f").unpack_from
_f64 = struct.Struct(">d").unpack_from

# code -> (size of the fixed part after the code byte, its reader) for scalars.
_FIXED: dict = {
    0xCC: (1, lambda d, i: d[i]), 0xCD: (2, lambda d, i: _u16(d, i)[0]),
    0xCE: (4, lambda d, i: _u32(d, i)[0]), 0xCF: (8, lambda d, i: _u64(d, i)[0]),
    0xD0: (1, lambda d, i: _i8(d, i)[0]), 0xD1: (2, lambda d, i: _i16(d, i)[0]),
    0xD2: (4, lambda d, i: _i32(d, i)[0]), 0xD3: (8, lambda d, i: _i64(d, i)[0]),
    0xCA: (4, lambda d, i: _f32(d, i)[0]), 0xCB: (8, lambda d, i: _f64(d, i)[0]),
}
# code -> (size of its length field, kind) for strings, binaries, arrays and maps.
_LENGTH_READERS: dict = {1: lambda d, i: d[i], 2: lambda d, i: _u16(d, i)[0], 4: lambda d, i: _u32(d, i)[0]}
_SIZED: dict = {0xD9: (1, "str"), 0xDA: (2, "str"), 0xDB: (4, "str"),
                0xC4: (1, "bin"), 0xC5: (2, "bin"), 0xC6: (4, "bin"),
                0xDC: (2, "array"), 0xDD: (4, "array"), 0xDE: (2, "map"), 0xDF: (4, "map")}
_EXTENSIONS = frozenset((0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8))


class _Decoder:
    """One pass over one input; ``pos`` moves forward as values are read."""

    __slots__ = ("data", "pos", "end", "max_depth")

    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.max_depth = max_depth

    def need(self, size: int) -> int:
        """The current position, after checking that ``size`` more bytes are there."""
        pos = self.pos
        if pos + size > self.end:
            raise MsgpackError("truncated input: %d bytes needed at offset %d, %d left"
                               % (size, pos, self.end - pos))
        self.pos = pos + size
        return pos

    def value(self, depth: int) -> Any:
        """Read one value at the current position."""
        code = self.data[self.need(1)]
        if code <= 0x7F:
            return code
        if code >= 0xE0:
            return code - 0x100
        if 0xA0 <= code <= 0xBF:
            return self.string(code & 0x1F)
        if 0x90 <= code <= 0x9F:
            return self.array(code & 0x0F, depth)
        if 0x80 <= code <= 0x8F:
            return self.map(code & 0x0F, depth)
        if code == 0xC0:
            return None
        if code == 0xC2:
            return False
        if code == 0xC3:
            return True
        fixed = _FIXED.get(code)
        if fixed is not None:
            return fixed[1](self.data, self.need(fixed[0]))
        sized = _SIZED.get(code)
        if sized is not None:
            length = _LENGTH_READERS[sized[0]](self.data, self.need(sized[0]))
            kind = sized[1]
            if kind == "str":
                return self.string(length)
            if kind == "bin":
                start = self.need(length)
                return bytes(self.data[start:start + length])
            return self.array(length, depth) if kind == "array" else self.map(length, depth)
        if code in _EXTENSIONS:
            raise MsgpackError("MessagePack extension type 0x%02x at offset %d is not supported" % (code, self.pos - 1))
        raise MsgpackError("byte 0x%02x at offset %d is not a MessagePack type" % (code, self.pos - 1))

    def string(self, length: int) -> str:
        """Read a UTF-8 string of ``length`` bytes."""
        start = self.need(length)
        try:
            return str(self.data[start:start + length], "utf-8")
        except UnicodeDecodeError:
            raise MsgpackError("string at offset %d is not UTF-8" % start) from None

    def _room(self, count: int, per_item: int) -> None:
        # Every item takes at least one byte: refuse a count the input cannot hold
        # before allocating anything for it.
        if count * per_item > self.end - self.pos:
            raise MsgpackError("truncated input: %d items announced at offset %d, %d bytes left"
                               % (count, self.pos, self.end - self.pos))

    def array(self, count: int, depth: int) -> List[Any]:
        """Read ``count`` items."""
        if depth <= 0:
            raise MsgpackError("nested deeper than %d" % self.max_depth)
        self._room(count, 1)
        value = self.value
        return [value(depth - 1) for _ in range(count)]

    def map(self, count: int, depth: int) -> dict:
        """Read ``count`` key/value pairs."""
        if depth <= 0:
            raise MsgpackError("nested deeper than %d" % self.max_depth)
        self._room(count, 2)
        result = {}
        for _ in range(count):
            at = self.pos
            key = self.value(depth - 1)
            if isinstance(key, (list, dict)):
                raise MsgpackError("map key at offset %d is an array or a map" % at)
            result[key] = self.value(depth - 1)
        return result


def unpackb(data: Any, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The one value MessagePack ``data`` holds; :class:`MsgpackError` if it is not exactly one."""
    if not isinstance(data, bytes):
        data = bytes(data)
    decoder = _Decoder(data, max_depth)
    try:
        result = decoder.value(max_depth + 1)
    except IndexError:
        raise MsgpackError("truncated input") from None
    except struct.error as exc:
        raise MsgpackError("truncated input: %s" % exc) from None
    if decoder.pos != decoder.end:
        raise MsgpackError("%d trailing bytes after the value" % (decoder.end - decoder.pos))
    return result

