"""permessage-deflate with context takeover across a message that ends with a final block.

RFC 7692 7.2.3.4 lets a message end with a deflate block whose BFINAL bit is
set.  The receiver still appends 0x00 0x00 0xff 0xff to the payload; after a
final block those four bytes belong to no stream and are ignored, and the
next message starts a new raw deflate stream that still sees the window of
what came before (context takeover).  The streams here are made with zlib
alone: a message sent with ``Z_FINISH`` is followed by one compressed by a
new compressor primed (``zdict``) with the plaintext window, as a peer that
keeps its context but finished the previous stream would send it.
"""

import random
import zlib

import pytest

from ratchet_sel.websocket.deflate import DeflateExtension, PerMessageDeflate
from ratchet_sel.websocket.rfc6455 import OP_BINARY, OP_TEXT, FrameParser, Message, encode_frame

pytestmark = pytest.mark.timeout(120)

_TAIL = b"\x00\x00\xff\xff"


def compress_stream(messages, finish, bits=15, levels=None):
    """The payloads of ``messages``; ``finish[i]`` ends message i with a final block (Z_FINISH).

    ``levels[i]`` is zlib's level for a stream that message i opens (6 by
    default; 0 sends stored blocks, which begin with a 0x00 byte).  Every message is compressed as a peer with context takeover would: a
    message after a finished stream opens a new stream primed with the window.
    """
    payloads = []
    window = b""
    compressor = None
    for index, (message, final) in enumerate(zip(messages, finish)):
        level = 6 if levels is None else levels[index]
        if compressor is None:
            if window:
                compressor = zlib.compressobj(level, zlib.DEFLATED, -bits, zdict=window)
            else:
                compressor = zlib.compressobj(level, zlib.DEFLATED, -bits)
        if final:
            payload = compressor.compress(message) + compressor.flush(zlib.Z_FINISH)
            compressor = None
        else:
            payload = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
            assert payload.endswith(_TAIL)
            payload = payload[:-4]
        window = (window + message)[-(1 << bits):]
        payloads.append(payload)
    return payloads


def receivers(bits):
    """A (parser, mask) pair for each role, each with context takeover at ``bits`` both ways."""
    server_ext = DeflateExtension(PerMessageDeflate(), bits, bits, True, True)
    client_ext = DeflateExtension(PerMessageDeflate(), bits, bits, True, True, client_side=True)
    return [
        (FrameParser(extension=server_ext, max_message_size=1 << 24), b"\x0f\x1e\x2d\x3c"),
        (FrameParser(extension=client_ext, max_message_size=1 << 24, require_mask=False, forbid_mask=True), None),
    ]


def wire_for(payloads, opcodes, mask):
    return b"".join(encode_frame(opcode, payload, rsv1=True, mask=mask) for payload, opcode in zip(payloads, opcodes))


def feed_in_pieces(parser, wire, rng):
    events = []
    pos = 0
    while pos < len(wire):
        size = rng.randint(1, 2)
        events += parser.feed(wire[pos:pos + size])
        pos += size
    return events


def check_stream(messages, finish, bits, rng, levels=None):
    opcodes = [OP_TEXT if isinstance(m, str) else OP_BINARY for m in messages]
    raw = [m.encode() if isinstance(m, str) else m for m in messages]
    payloads = compress_stream(raw, finish, bits, levels)
    expected = [Message(m) for m in messages]
    for pieces in (False, True):
        for parser, mask in receivers(bits):
            wire = wire_for(payloads, opcodes, mask)
            got = feed_in_pieces(parser, wire, rng) if pieces else parser.feed(wire)
            assert got == expected, (bits, finish, pieces, mask is None)


def test_the_reported_stream_decodes_right_in_both_roles():
    # 15 window bits; a 1,366-byte message ended by a final block, then
    # "websocket" with a sync flush, as a stored block: its first byte, 0x00,
    # once made the ignored tail look like the start of a 65,280-byte stored block.
    rng = random.Random(1366)
    first = bytes(rng.getrandbits(8) for _ in range(1366))
    payloads = compress_stream([first, b"websocket"], [True, False], 15, [6, 0])
    assert payloads[1] == b"\x00\t\x00\xf6\xffwebsocket\x00"
    check_stream([first, "websocket"], [True, False], 15, rng, [6, 0])
    check_stream([first, b"websocket"], [True, False], 15, rng, [6, 0])


def test_the_next_message_may_refer_back_into_the_finished_one():
    text = "the quick brown fox jumps over the lazy dog; " * 20
    rng = random.Random(7)
    for bits in (9, 10, 12, 15):
        check_stream([text, text[:200], text[5:300]], [True, False, False], bits, rng)
        check_stream([text, text[3:150], text], [True, True, False], bits, rng)


def test_the_tail_after_a_final_block_is_ignored_even_when_it_arrives_alone():
    payload = compress_stream([b"x" * 500, b"y" * 7], [True, False], 15, [6, 0])
    for parser, mask in receivers(15):
        wire = wire_for(payload, [OP_BINARY, OP_BINARY], mask)
        first_frame = len(encode_frame(OP_BINARY, payload[0], rsv1=True, mask=mask))
        events = [parser.feed(wire[:first_frame - 1]), parser.feed(wire[first_frame - 1:first_frame]),
                  parser.feed(wire[first_frame:])]
        assert events == [[], [Message(b"x" * 500)], [Message(b"y" * 7)]]


@pytest.mark.parametrize("seed", range(3))
def test_random_streams_with_final_blocks_decode_right_whole_and_split(seed):
    rng = random.Random(9000 + seed)
    for _ in range(100):
        bits = rng.choice((9, 10, 12, 15))
        messages = []
        for _ in range(rng.randint(2, 5)):
            size = rng.choice((0, 1, 9, 50, 300, 1366, 4000))
            if rng.random() < 0.5:
                messages.append(bytes(rng.getrandbits(8) for _ in range(size)))
            else:
                messages.append("".join(rng.choice("websocket ratchet ") for _ in range(size)))
        finish = [rng.random() < 0.5 for _ in messages]
        levels = [rng.choice((0, 1, 6, 9)) for _ in messages]
        check_stream(messages, finish, bits, rng, levels)

