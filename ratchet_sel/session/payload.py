"""The URL-safe payload encoding shared by itsdangerous and Django's signing.

Both write the serialized bytes as URL-safe base64 without padding, zlib
compressed first when that saves more than one byte, in which case the text
starts with ``.``.  The ``.`` is inside the signed text, so a payload is only
inflated after its signature checked out; inflating is still bounded, since
a key leak must not turn into a memory exhaustion.
"""

import base64
import binascii
import zlib

from .base import InvalidSession

__all__ = ["b64encode", "b64decode", "pack", "unpack", "MAX_PAYLOAD"]

#: Largest serialized session accepted after decompression.
MAX_PAYLOAD = 1024 * 1024


def b64encode(data: bytes) -> bytes:
    """URL-safe base64 without ``=`` padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64decode(text: bytes) -> bytes:
    """Inverse of :func:`b64encode`; raises InvalidSession for bad input."""
    try:
        return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidSession("payload is not URL-safe base64: %s" % exc) from None


def pack(data: bytes, compress: bool) -> bytes:
    """Encode serialized ``data``, compressed when asked and worth it."""
    if compress:
        compressed = zlib.compress(data)
        if len(compressed) < len(data) - 1:
            return b"." + b64encode(compressed)
    return b64encode(data)


def unpack(text: bytes, max_size: int = MAX_PAYLOAD) -> bytes:
    """Decode a packed payload back to the serialized bytes (at most ``max_size``)."""
    compressed = text.startswith(b".")
    data = b64decode(text[1:] if compressed else text)
    if not compressed:
        return data
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(data, max_size + 1)
    except zlib.error as exc:
        raise InvalidSession("payload does not inflate: %s" % exc) from None
    if len(data) > max_size or inflater.unconsumed_tail:
        raise InvalidSession("payload inflates to more than %d bytes" % max_size)
    if not inflater.eof:
        raise InvalidSession("payload is a truncated zlib stream")
    return data
