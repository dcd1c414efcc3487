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

Both directions are written for the per-message path of a router: the
common small values (fixints, short strings, small arrays and maps) are
handled inline, without a function call each.
"""

import struct
from typing import Any, List, Tuple

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


def _pack_int(value: int, out: bytearray) -> None:
    if 0 <= value < 0x80:
        out.append(value)
    elif -32 <= value < 0:
        out.append(value & 0xFF)
    elif value >= 0:
        if value <= 0xFF:
            out += bytes((0xCC, value))
        elif value <= 0xFFFF:
            out += _b16(0xCD, value)
        elif value <= 0xFFFFFFFF:
            out += _b32(0xCE, value)
        elif value <= 0xFFFFFFFFFFFFFFFF:
            out += _b64(0xCF, value)
        else:
            raise MsgpackError("integer too large for MessagePack: %d" % value)
    elif value >= -0x80:
        out += _s8(0xD0, value)
    elif value >= -0x8000:
        out += _s16(0xD1, value)
    elif value >= -0x80000000:
        out += _s32(0xD2, value)
    elif value >= -0x8000000000000000:
        out += _s64(0xD3, value)
    else:
        raise MsgpackError("integer too small for MessagePack: %d" % value)


def _pack_head(length: int, fix_base: int, fix_limit: int, code8: int, code16: int, out: bytearray) -> None:
    """The header of a str/bin/array/map of ``length`` items (code8 0 when there is no 8-bit form)."""
    if length < fix_limit:
        out.append(fix_base | length)
    elif code8 and length <= 0xFF:
        out += bytes((code8, length))
    elif length <= 0xFFFF:
        out += _b16(code16, length)
    elif length <= 0xFFFFFFFF:
        out += _b32(code16 + 1, length)
    else:
        raise MsgpackError("container or string too long for MessagePack: %d" % length)


def _pack(value: Any, out: bytearray, depth: int) -> None:
    kind = type(value)
    if kind is str:
        data = value.encode("utf-8")
        if len(data) < 32:
            out.append(0xA0 | len(data))
        else:
            _pack_head(len(data), 0xA0, 32, 0xD9, 0xDA, out)
        out += data
    elif kind is int:
        if 0 <= value < 0x80:
            out.append(value)
        else:
            _pack_int(value, out)
    elif kind is list or kind is tuple:
        if depth <= 0:
            raise MsgpackError("value nested too deeply")
        if len(value) < 16:
            out.append(0x90 | len(value))
        else:
            _pack_head(len(value), 0x90, 16, 0, 0xDC, out)
        depth -= 1
        for item in value:
            # The common items of a WAMP message inline: small ints and short strings.
            item_kind = type(item)
            if item_kind is int and 0 <= item < 0x80:
                out.append(item)
            elif item_kind is str and len(item) < 32 and item.isascii():
                out.append(0xA0 | len(item))
                out += item.encode("ascii")
            else:
                _pack(item, out, depth)
    elif kind is dict:
        if depth <= 0:
            raise MsgpackError("value nested too deeply")
        if len(value) < 16:
            out.append(0x80 | len(value))
        else:
            _pack_head(len(value), 0x80, 16, 0, 0xDE, out)
        depth -= 1
        for key, item in value.items():
            _pack(key, out, depth)
            _pack(item, out, depth)
    elif value is None:
        out.append(0xC0)
    elif value is True:
        out.append(0xC3)
    elif value is False:
        out.append(0xC2)
    elif kind is float:
        out += _pack_float(0xCB, value)
    else:
        _pack_other(value, out, depth)


def _pack_other(value: Any, out: bytearray, depth: int) -> None:
    """Bytes-like values, and subclasses of the basic types."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if len(data) <= 0xFF:
            out += bytes((0xC4, len(data)))
        elif len(data) <= 0xFFFF:
            out += _b16(0xC5, len(data))
        elif len(data) <= 0xFFFFFFFF:
            out += _b32(0xC6, len(data))
        else:
            raise MsgpackError("binary too long for MessagePack")
        out += data
    elif isinstance(value, bool):
        _pack(bool(value), out, depth)
    elif isinstance(value, int):
        _pack_int(int(value), out)
    elif isinstance(value, float):
        out += _pack_float(0xCB, float(value))
    elif isinstance(value, str):
        _pack(str(value), out, depth)
    elif isinstance(value, (list, tuple)):
        _pack(list(value), out, depth)
    elif isinstance(value, dict):
        _pack(dict(value), out, depth)
    else:
        raise MsgpackError("cannot serialise %s to MessagePack" % type(value).__name__)


def packb(value: Any, max_depth: int = DEFAULT_MAX_DEPTH) -> bytes:
    """``value`` as MessagePack bytes; :class:`MsgpackError` for what MessagePack cannot carry."""
    out = bytearray()
    _pack(value, out, max_depth)
    return bytes(out)


_u8 = struct.Struct(">B").unpack_from
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
    0xCC: (1, _u8), 0xCD: (2, _u16), 0xCE: (4, _u32), 0xCF: (8, _u64), 0xD0: (1, _i8), 0xD1: (2, _i16),
    0xD2: (4, _i32), 0xD3: (8, _i64), 0xCA: (4, _f32), 0xCB: (8, _f64),
}
# code -> (size of its length field, its reader, kind) for strings, binaries, arrays and maps.
_SIZED: dict = {0xD9: (1, _u8, "str"), 0xDA: (2, _u16, "str"), 0xDB: (4, _u32, "str"),
                0xC4: (1, _u8, "bin"), 0xC5: (2, _u16, "bin"), 0xC6: (4, _u32, "bin"),
                0xDC: (2, _u16, "array"), 0xDD: (4, _u32, "array"), 0xDE: (2, _u16, "map"), 0xDF: (4, _u32, "map")}
_EXTENSIONS = frozenset((0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8))
_CONSTANTS = {0xC0: None, 0xC2: False, 0xC3: True}


def _truncated(pos: int, size: int, end: int) -> MsgpackError:
    return MsgpackError("truncated input: %d bytes needed at offset %d, %d left" % (size, pos, end - pos))


def _decode(data: bytes, pos: int, depth: int) -> Tuple[Any, int]:
    """The value at ``pos`` and the position after it (``IndexError``/``struct.error`` when truncated)."""
    code = data[pos]
    pos += 1
    if code <= 0x7F:
        return code, pos
    if code >= 0xE0:
        return code - 0x100, pos
    if 0xA0 <= code <= 0xBF:
        return _string(data, pos, code & 0x1F)
    if code <= 0x9F:
        if code >= 0x90:
            return _array(data, pos, code & 0x0F, depth)
        return _map(data, pos, code & 0x0F, depth)
    if code in _CONSTANTS:
        return _CONSTANTS[code], pos
    fixed = _FIXED.get(code)
    if fixed is not None:
        return fixed[1](data, pos)[0], pos + fixed[0]
    sized = _SIZED.get(code)
    if sized is not None:
        length = sized[1](data, pos)[0]
        pos += sized[0]
        kind = sized[2]
        if kind == "str":
            return _string(data, pos, length)
        if kind == "bin":
            end = pos + length
            if end > len(data):
                raise _truncated(pos, length, len(data))
            return data[pos:end], end
        return _array(data, pos, length, depth) if kind == "array" else _map(data, pos, length, depth)
    if code in _EXTENSIONS:
        raise MsgpackError("MessagePack extension type 0x%02x at offset %d is not supported" % (code, pos - 1))
    raise MsgpackError("byte 0x%02x at offset %d is not a MessagePack type" % (code, pos - 1))


def _string(data: bytes, pos: int, length: int) -> Tuple[str, int]:
    end = pos + length
    if end > len(data):
        raise _truncated(pos, length, len(data))
    try:
        return str(data[pos:end], "utf-8"), end
    except UnicodeDecodeError:
        raise MsgpackError("string at offset %d is not UTF-8" % pos) from None


def _array(data: bytes, pos: int, count: int, depth: int) -> Tuple[List[Any], int]:
    if depth <= 0:
        raise MsgpackError("nested deeper than the limit")
    # Every item takes at least one byte: refuse a count the input cannot hold
    # before allocating anything for it.
    if count > len(data) - pos:
        raise MsgpackError("truncated input: %d items announced at offset %d, %d bytes left"
                           % (count, pos, len(data) - pos))
    depth -= 1
    items: List[Any] = []
    append = items.append
    for _ in range(count):
        code = data[pos]
        if code <= 0x7F:          # the common small integer, without a call
            append(code)
            pos += 1
        else:
            value, pos = _decode(data, pos, depth)
            append(value)
    return items, pos


def _map(data: bytes, pos: int, count: int, depth: int) -> Tuple[dict, int]:
    if depth <= 0:
        raise MsgpackError("nested deeper than the limit")
    if count * 2 > len(data) - pos:
        raise MsgpackError("truncated input: %d items announced at offset %d, %d bytes left"
                           % (count, pos, len(data) - pos))
    depth -= 1
    result = {}
    for _ in range(count):
        at = pos
        key, pos = _decode(data, pos, depth)
        if isinstance(key, (list, dict)):
            raise MsgpackError("map key at offset %d is an array or a map" % at)
        result[key], pos = _decode(data, pos, depth)
    return result, pos


def unpackb(data: Any, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The one value MessagePack ``data`` holds; :class:`MsgpackError` if it is not exactly one."""
    if not isinstance(data, bytes):
        data = bytes(data)
    try:
        result, pos = _decode(data, 0, max_depth + 1)
    except IndexError:
        raise MsgpackError("truncated input") from None
    except struct.error as exc:
        raise MsgpackError("truncated input: %s" % exc) from None
    if pos != len(data):
        raise MsgpackError("%d trailing bytes after the value" % (len(data) - pos))
    return result
