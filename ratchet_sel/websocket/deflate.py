"""permessage-deflate (RFC 7692) with the stdlib ``zlib``, sans-IO.

:class:`PerMessageDeflate` is the server's configuration and negotiator: given
a request it picks the first offer it can honour and returns a per-connection
:class:`DeflateExtension` with the response header value.  The extension
inflates what the frame parser hands it (bounded, so a zip bomb fails before
memory is spent) and encodes outgoing messages, with RSV1 on the first frame.
A client builds its offer with :class:`DeflateOffer`, whose ``accept`` checks
the server's answer and returns the same :class:`DeflateExtension` in its
client role (the peer's parameters govern inflating, ours deflating); the
client passes ``mask_source`` to :meth:`DeflateExtension.encode_message`.

Memory, by design: a connection holds no zlib state until it needs some.
With ``server_no_context_takeover`` (the default) all connections share one
compressor per window size, flushed with ``Z_FULL_FLUSH`` after each message
so that no message refers to an earlier one; a broadcast then compresses once.
The inflater is made on the first compressed message and dropped after each
message when the client promised ``client_no_context_takeover``.
"""

import zlib
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ..http.request import Request, parse_decimal
from .rfc6455 import OP_CONTINUATION, OP_TEXT, OP_BINARY, CloseCode, ProtocolViolation, encode_frame

__all__ = ["PerMessageDeflate", "DeflateExtension", "DeflateOffer", "parse_extension_header"]

EXTENSION_NAME = "permessage-deflate"
_TAIL = b"\x00\x00\xff\xff"  # the end of a sync flush, stripped on the wire (RFC 7692 7.2.1)
_PARAMETERS = ("server_no_context_takeover", "client_no_context_takeover",
               "server_max_window_bits", "client_max_window_bits")


def parse_extension_header(values: List[str]) -> List[Tuple[str, List[Tuple[str, Optional[str]]]]]:
    """Sec-WebSocket-Extensions values -> [(name, [(param, value or None), ...]), ...]."""
    offers = []
    for value in values:
        for element in value.split(","):
            parts = [part.strip() for part in element.split(";")]
            if not parts[0]:
                continue
            params: List[Tuple[str, Optional[str]]] = []
            for part in parts[1:]:
                if not part:
                    continue
                name, eq, raw = part.partition("=")
                raw = raw.strip()
                if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                    raw = raw[1:-1]
                params.append((name.strip().lower(), raw if eq else None))
            offers.append((parts[0].lower(), params))
    return offers


def _window_bits(value: Optional[str]) -> int:
    bits = None if value is None else parse_decimal(value, 2)
    if bits is None or not 8 <= bits <= 15:
        raise ValueError("window bits must be 8 to 15")
    return bits


class _CompressionSettings:
    """What both sides' settings share: zlib's effort, the size threshold, the compressors."""

    def __init__(self, mem_level: int, level: int, threshold: int) -> None:
        self.mem_level = mem_level
        self.level = level
        self.threshold = threshold
        self._shared: Dict[int, Any] = {}

    def new_compressor(self, bits: int) -> Any:
        """A raw-deflate compressor with these settings and a ``bits``-bit window (one connection's own)."""
        # zlib refuses raw deflate with an 8-bit window; a Huffman-only stream
        # has no back-references at all, so it honours any window a peer asks.
        if bits == 8:
            return zlib.compressobj(self.level, zlib.DEFLATED, -9, self.mem_level, zlib.Z_HUFFMAN_ONLY)
        return zlib.compressobj(self.level, zlib.DEFLATED, -bits, self.mem_level)

    def shared_compressor(self, bits: int) -> Any:
        """The compressor every connection without context takeover shares, one per window size."""
        compressor = self._shared.get(bits)
        if compressor is None:
            compressor = self._shared[bits] = self.new_compressor(bits)
        return compressor


class PerMessageDeflate(_CompressionSettings):
    """permessage-deflate settings for a server (``WsServer(app, compression=...)``).

    - ``server_no_context_takeover`` (True): compress every message on its
      own; costs some ratio on streams of similar messages, saves the
      per-connection compressor (about 64 KiB at window 15).
    - ``client_no_context_takeover`` (False): accept a client's offer to
      compress each message on its own, which frees our inflater between
      messages; we never force it on a client that did not offer it.
    - ``server_max_window_bits`` (15): our LZ77 window; with no context
      takeover it costs nothing per connection.
    - ``client_max_window_bits`` (12): asked of clients that allow it (browsers
      do); our inflater then holds 4 KiB of window instead of 32 KiB, which is
      most of a connection's compression memory (see scripts/measure_deflate.py).
    - ``mem_level`` (8), ``level`` (6): zlib's memory level and effort.
    - ``threshold`` (128): messages shorter than this go uncompressed.
    """

    def __init__(self, *, server_no_context_takeover: bool = True, client_no_context_takeover: bool = False,
                 server_max_window_bits: int = 15, client_max_window_bits: int = 12,
                 mem_level: int = 8, level: int = 6, threshold: int = 128) -> None:
        for bits in (server_max_window_bits, client_max_window_bits):
            if not 8 <= bits <= 15:
                raise ValueError("window bits must be 8 to 15")
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        super().__init__(mem_level, level, threshold)

    def negotiate(self, request: Request) -> Tuple[Optional["DeflateExtension"], Optional[str]]:
        """The extension for the first acceptable offer and its response value, or (None, None).

        A malformed offer is declined, never a reason to fail the handshake.
        """
        offers = parse_extension_header(request.headers.get_all("Sec-WebSocket-Extensions"))
        for name, params in offers:
            if name != EXTENSION_NAME:
                continue
            try:
                return self._accept(params)
            except ValueError:
                continue
        return None, None

    def _accept(self, params: List[Tuple[str, Optional[str]]]) -> Tuple["DeflateExtension", str]:
        seen: Dict[str, Optional[str]] = {}
        for key, value in params:
            if key not in _PARAMETERS or key in seen:
                raise ValueError("unknown or repeated parameter")
            seen[key] = value
        for flag in ("server_no_context_takeover", "client_no_context_takeover"):
            if flag in seen and seen[flag] is not None:
                raise ValueError("%s takes no value" % flag)
        response = [EXTENSION_NAME]

        server_takeover = not (self.server_no_context_takeover or "server_no_context_takeover" in seen)
        if not server_takeover:
            response.append("server_no_context_takeover")
        client_takeover = True
        if "client_no_context_takeover" in seen and self.client_no_context_takeover:
            client_takeover = False
            response.append("client_no_context_takeover")

        server_bits = self.server_max_window_bits
        if "server_max_window_bits" in seen:
            server_bits = min(server_bits, _window_bits(seen["server_max_window_bits"]))
            response.append("server_max_window_bits=%d" % server_bits)
        client_bits = 15
        if "client_max_window_bits" in seen:
            offered = seen["client_max_window_bits"]
            allowed = 15 if offered is None else _window_bits(offered)
            client_bits = min(allowed, self.client_max_window_bits)
            if offered is not None or client_bits < 15:
                response.append("client_max_window_bits=%d" % client_bits)
        extension = DeflateExtension(self, server_bits, client_bits, server_takeover, client_takeover)
        return extension, "; ".join(response)


class DeflateExtension:
    """One connection's permessage-deflate state (see the module docstring).

    The parameters are those of the agreement, named as RFC 7692 names them
    (``server_bits`` is the server's window whichever side we are);
    ``client_side`` says which of them govern what we send and what we
    receive.  The frame parser calls
    :meth:`start_message`, :meth:`decompress` and :meth:`end_message`; the
    connection calls :meth:`encode_message`.

    Inbound, the result is a function of the message's bytes alone, however
    they arrive: a message is decoded as one deflate stream that starts with
    the last ``2**bits`` (the peer's agreed window) bytes of earlier output as its history (none
    without the peer's context takeover) and may reach back as far as deflate
    allows (32 KiB).  The inflater normally holds only the agreed window; zlib
    resolves references further back whenever they fall within one call's
    output, which depends on how the bytes were split.  So when that small
    inflater fails, the message is decoded again from its start with a full
    window, and that answer stands.  A message (or a part of one) that ends
    with a final block (RFC 7692 7.2.3.4) is followed by a new stream that
    keeps the same history (RFC 7692 7.2.2), so later data may still refer
    back into it.
    """

    __slots__ = ("config", "server_bits", "client_bits", "server_takeover", "client_takeover", "client_side",
                 "_inflate_bits", "_inflate_takeover", "_deflate_bits", "_deflate_takeover",
                 "_inflater", "_deflater", "shared_key", "_history", "_recent", "_input", "_produced", "_full")

    def __init__(self, config: Any, server_bits: int, client_bits: int,
                 server_takeover: bool, client_takeover: bool, *, client_side: bool = False) -> None:
        self.config = config
        self.server_bits = server_bits
        self.client_bits = client_bits
        self.server_takeover = server_takeover
        self.client_takeover = client_takeover
        self.client_side = client_side
        # What the peer sends follows the peer's parameters, what we send ours.
        if client_side:
            self._inflate_bits, self._inflate_takeover = server_bits, server_takeover
            self._deflate_bits, self._deflate_takeover = client_bits, client_takeover
        else:
            self._inflate_bits, self._inflate_takeover = client_bits, client_takeover
            self._deflate_bits, self._deflate_takeover = server_bits, server_takeover
        self._inflater: Any = None
        self._deflater: Any = None
        #: Connections with equal keys produce identical frames for a message
        #: (None: this one's frames depend on its own history, or are masked).
        self.shared_key = (None if self._deflate_takeover or client_side
                           else ("deflate", self._deflate_bits, id(config)))
        self._history = b""              # the window before this message: its last 2**_inflate_bits bytes
        self._recent: Any = None         # this message's output, its tail at least (bytearray)
        self._input: Any = None          # this message's compressed bytes, for a decode with the full window
        self._produced = 0               # output handed to the parser in this message
        self._full = False               # this message is being decoded with the full window

    # -- inbound --------------------------------------------------------------
    def start_message(self) -> None:
        """A compressed message begins."""
        if self._inflater is None:
            self._inflater = self._new_inflater(self._inflate_bits, self._history)
        self._recent = bytearray()
        self._input = bytearray()
        self._produced = 0
        self._full = False

    def decompress(self, data: bytes, limit: int) -> bytes:
        """Inflate a piece of the message; at most ``limit`` bytes come out."""
        self._input += data
        try:
            return self._inflate(data, limit)
        except zlib.error as exc:
            if self._full:
                raise ProtocolViolation(CloseCode.INVALID_DATA, "invalid compressed data: %s" % exc) from None
        return self._decode_again_with_the_full_window(limit)

    def end_message(self, limit: int) -> bytes:
        """The message is complete: inflate the stripped tail (RFC 7692 7.2.2).

        After a final block (RFC 7692 7.2.3.4) the tail belongs to no stream
        and is ignored; the next message then starts a new stream, primed
        with the history.
        """
        finished = self._inflater.eof
        out = b"" if finished else self.decompress(_TAIL, limit)
        if self._inflate_takeover:
            window = 1 << self._inflate_bits
            self._history = bytes((self._history + bytes(self._recent))[-window:])
            if self._full or finished:
                self._inflater = None    # a new stream with the agreed window, primed with the history
        else:
            self._inflater = None        # every message starts afresh: nothing to keep
        self._recent = self._input = None
        return out

    def _new_inflater(self, bits: int, history: bytes) -> Any:
        return zlib.decompressobj(-bits, zdict=history) if history else zlib.decompressobj(-bits)

    def _inflate(self, data: Any, limit: int) -> bytes:
        inflater = self._inflater
        out = inflater.decompress(data, limit)
        self._keep(out)
        while inflater.eof and inflater.unused_data and len(out) < limit:
            # The stream ended with a final block: what follows starts a new
            # one with the same history.
            rest = inflater.unused_data
            window = 1 << self._inflate_bits
            history = (self._history + bytes(self._recent[-window:]))[-window:]
            inflater = self._inflater = self._new_inflater(15 if self._full else self._inflate_bits, history)
            more = inflater.decompress(rest, max(limit - len(out), 1))
            self._keep(more)
            out += more
        self._produced += len(out)
        return out

    def _keep(self, out: bytes) -> None:
        recent = self._recent
        recent += out
        window = 1 << self._inflate_bits
        if len(recent) > 2 * window:
            del recent[:-window]

    def _decode_again_with_the_full_window(self, limit: int) -> bytes:
        already = self._produced
        self._full = True
        self._recent = bytearray()
        self._produced = 0
        self._inflater = self._new_inflater(15, self._history)
        try:
            out = self._inflate(bytes(self._input), already + limit)
        except zlib.error as exc:
            raise ProtocolViolation(CloseCode.INVALID_DATA, "invalid compressed data: %s" % exc) from None
        return out[already:]

    # -- outbound ---------------------------------------------------------------
    def compress(self, payload: bytes) -> bytes:
        """The compressed payload of one message, tail stripped."""
        if self._deflate_takeover:
            if self._deflater is None:
                self._deflater = self.config.new_compressor(self._deflate_bits)
            data = self._deflater.compress(payload) + self._deflater.flush(zlib.Z_SYNC_FLUSH)
        else:
            shared = self.config.shared_compressor(self._deflate_bits)
            data = shared.compress(payload) + shared.flush(zlib.Z_FULL_FLUSH)
        if data.endswith(_TAIL):
            data = data[:-4]
        return data or b"\x00"

    def encode_message(self, message: Union[str, bytes], fragment_size: int = 0,
                       mask_source: Optional[Callable[[], bytes]] = None) -> List[bytes]:
        """The frames of one message, compressed when it is long enough to gain.

        ``mask_source`` (a function returning 4 random bytes) makes client-side masked frames.
        """
        if isinstance(message, str):
            opcode, payload = OP_TEXT, message.encode("utf-8")
        else:
            opcode, payload = OP_BINARY, bytes(message)
        compressed = len(payload) >= self.config.threshold
        if compressed:
            payload = self.compress(payload)
        if fragment_size <= 0 or len(payload) <= fragment_size:
            return [encode_frame(opcode, payload, True, compressed, mask_source() if mask_source else None)]
        frames = []
        for start in range(0, len(payload), fragment_size):
            frames.append(encode_frame(opcode if start == 0 else OP_CONTINUATION,
                                       payload[start:start + fragment_size],
                                       start + fragment_size >= len(payload), compressed and start == 0,
                                       mask_source() if mask_source else None))
        return frames


class DeflateOffer(_CompressionSettings):
    """A client's permessage-deflate offer, and the check of the server's answer.

    The default offer, ``permessage-deflate; client_no_context_takeover;
    client_max_window_bits``, lets the server pick our window and promises
    that each of our messages stands alone, so that servers may free their
    inflater between messages (we keep no compressor per connection either).

    - ``client_no_context_takeover`` (True): the promise above; False lets our
      messages refer to earlier ones (better ratio, 64 KiB more per connection).
    - ``server_no_context_takeover`` (False): ask the server to compress each
      message on its own, so our inflater is freed between messages.
    - ``server_max_window_bits`` (None): ask the server for a smaller window.
    - ``client_max_window_bits`` (True): allow the server to set our window;
      an int 8-15 also caps it.
    - ``mem_level`` (8), ``level`` (6), ``threshold`` (128): as for the server.
    """

    def __init__(self, *, client_no_context_takeover: bool = True, server_no_context_takeover: bool = False,
                 server_max_window_bits: Optional[int] = None, client_max_window_bits: Union[bool, int] = True,
                 mem_level: int = 8, level: int = 6, threshold: int = 128) -> None:
        for bits in (server_max_window_bits, client_max_window_bits):
            if not isinstance(bits, bool) and bits is not None and not 8 <= bits <= 15:
                raise ValueError("window bits must be 8 to 15")
        self.client_no_context_takeover = client_no_context_takeover
        self.server_no_context_takeover = server_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        super().__init__(mem_level, level, threshold)

    def header_value(self) -> str:
        """The Sec-WebSocket-Extensions value of the offer."""
        parts = [EXTENSION_NAME]
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.server_max_window_bits is not None:
            parts.append("server_max_window_bits=%d" % self.server_max_window_bits)
        if self.client_max_window_bits is True:
            parts.append("client_max_window_bits")
        elif self.client_max_window_bits is not False:
            parts.append("client_max_window_bits=%d" % self.client_max_window_bits)
        return "; ".join(parts)

    def accept(self, values: List[str]) -> Optional[DeflateExtension]:
        """The client-side extension the server's Sec-WebSocket-Extensions values agree to.

        ``None`` when the server declined (no values).  Raises
        :class:`ValueError` naming the fault when the answer is not one our
        offer allows (RFC 7692 section 7.1): another extension, a second
        element, an unknown, repeated or out-of-range parameter.
        """
        elements = parse_extension_header(values)
        if not elements:
            return None
        for name, _ in elements:
            if name != EXTENSION_NAME:
                raise ValueError("the server accepted extension %r, which was not offered" % name)
        if len(elements) > 1:
            raise ValueError("the server accepted permessage-deflate more than once")
        seen: Dict[str, Optional[str]] = {}
        for key, value in elements[0][1]:
            if key not in _PARAMETERS:
                raise ValueError("unknown permessage-deflate parameter %r" % key)
            if key in seen:
                raise ValueError("repeated permessage-deflate parameter %r" % key)
            seen[key] = value
        for flag in ("server_no_context_takeover", "client_no_context_takeover"):
            if flag in seen and seen[flag] is not None:
                raise ValueError("%s takes no value" % flag)
        if self.server_no_context_takeover and "server_no_context_takeover" not in seen:
            raise ValueError("server_no_context_takeover was asked for and not granted")

        server_bits = 15
        if "server_max_window_bits" in seen:
            server_bits = _window_bits(seen["server_max_window_bits"])
            if self.server_max_window_bits is not None and server_bits > self.server_max_window_bits:
                raise ValueError("server_max_window_bits=%d exceeds the %d offered"
                                 % (server_bits, self.server_max_window_bits))
        elif self.server_max_window_bits is not None:
            raise ValueError("server_max_window_bits was asked for and not granted")

        client_bits = 15 if self.client_max_window_bits in (True, False) else int(self.client_max_window_bits)
        if "client_max_window_bits" in seen:
            if self.client_max_window_bits is False:
                raise ValueError("client_max_window_bits in the answer, but it was not offered")
            client_bits = min(client_bits, _window_bits(seen["client_max_window_bits"]))

        return DeflateExtension(self, server_bits, client_bits,
                                server_takeover="server_no_context_takeover" not in seen,
                                client_takeover=not (self.client_no_context_takeover
                                                     or "client_no_context_takeover" in seen),
                                client_side=True)
