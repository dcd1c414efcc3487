"""The sans-IO RFC 6455 frame codec, with byte strings only."""

import os
import struct

import pytest

from ratchet_sel.websocket.rfc6455 import (OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
                                           Close, Failure, FrameParser, Message, Ping, Pong, apply_mask,
                                           encode_close_payload, encode_frame, encode_message,
                                           is_valid_close_code)

pytestmark = pytest.mark.timeout(30)

MASK = b"\x37\xfa\x21\x3d"


def masked(opcode, payload=b"", fin=True, rsv1=False, mask=MASK):
    return encode_frame(opcode, payload, fin, rsv1, mask)


def feed_all(data, **kwargs):
    return FrameParser(**kwargs).feed(data)


def feed_bytewise(data, **kwargs):
    parser = FrameParser(**kwargs)
    events = []
    for i in range(len(data)):
        events.extend(parser.feed(data[i:i + 1]))
    return events


# -- masking -------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 100, 1023, 1024, 1025, 4097, 16383, 16384, 16385, 32771, 70000, 1 << 20])
def test_apply_mask_matches_the_definition(size):
    data = os.urandom(size)
    expected = bytes(b ^ MASK[i % 4] for i, b in enumerate(data))
    assert apply_mask(data, MASK) == expected
    assert apply_mask(expected, MASK) == data


def test_rfc_example_frames():
    # RFC 6455 5.7: a single-frame masked text "Hello" and an unmasked one.
    assert feed_all(bytes.fromhex("818537fa213d7f9f4d5158")) == [Message("Hello")]
    assert encode_frame(OP_TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")
    # A fragmented unmasked text message, parsed without the masking rule.
    data = bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")
    assert feed_all(data, require_mask=False) == [Message("Hello")]
    # Unmasked ping "Hello" and its pong.
    assert feed_all(bytes.fromhex("890548656c6c6f"), require_mask=False) == [Ping(b"Hello")]
    assert feed_all(bytes.fromhex("8a0548656c6c6f"), require_mask=False) == [Pong(b"Hello")]


# -- lengths and encoding --------------------------------------------------------
@pytest.mark.parametrize("size,header_len", [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (200000, 10)])
def test_length_encodings_round_trip(size, header_len):
    payload = os.urandom(size)
    frame = encode_frame(OP_BINARY, payload)
    assert len(frame) == header_len + size
    assert feed_all(masked(OP_BINARY, payload)) == [Message(payload)]
    assert feed_bytewise(masked(OP_BINARY, payload[:300])) == [Message(payload[:300])]


def test_text_and_binary_types():
    events = feed_all(masked(OP_TEXT, "héllo ✓".encode()) + masked(OP_BINARY, b"\x00\xff"))
    assert events == [Message("héllo ✓"), Message(b"\x00\xff")]
    assert type(events[0].data) is str and type(events[1].data) is bytes


def test_many_frames_in_one_feed_and_split_anywhere():
    stream = b"".join(masked(OP_TEXT, ("message %d" % i).encode()) for i in range(50))
    expected = [Message("message %d" % i) for i in range(50)]
    assert feed_all(stream) == expected
    assert feed_bytewise(stream) == expected
    parser = FrameParser()
    events = []
    for start in range(0, len(stream), 7):
        events.extend(parser.feed(stream[start:start + 7]))
    assert events == expected


def test_encode_message_fragments():
    frames = encode_message("abcdefghij", fragment_size=4)
    assert [f[0] for f in frames] == [OP_TEXT, OP_CONTINUATION, 0x80 | OP_CONTINUATION]
    frames = encode_message(b"xy" * 10, fragment_size=7, mask_source=lambda: MASK)
    assert feed_all(b"".join(frames)) == [Message(b"xy" * 10)]


def test_encode_close_payload_truncates_on_a_character_boundary():
    payload = encode_close_payload(1000, "é" * 100)
    assert len(payload) <= 125
    payload[2:].decode("utf-8")
    assert encode_close_payload(None) == b""


# -- fragmentation and control frames -----------------------------------------------
def test_fragmented_message_with_interleaved_control_frames():
    data = (masked(OP_TEXT, b"frag1 ", fin=False) + masked(OP_PING, b"p1")
            + masked(OP_CONTINUATION, b"frag2 ", fin=False) + masked(OP_PONG, b"p2")
            + masked(OP_CONTINUATION, b"frag3", fin=True))
    expected = [Ping(b"p1"), Pong(b"p2"), Message("frag1 frag2 frag3")]
    assert feed_all(data) == expected
    assert feed_bytewise(data) == expected


def test_empty_fragments():
    data = masked(OP_BINARY, b"", fin=False) + masked(OP_CONTINUATION, b"", fin=False) + masked(OP_CONTINUATION, b"")
    assert feed_all(data) == [Message(b"")]


def test_utf8_split_across_fragments():
    text = "κόσμε🎉".encode()
    data = b"".join(masked(OP_TEXT if i == 0 else OP_CONTINUATION, text[i:i + 1], fin=i == len(text) - 1)
                    for i in range(len(text)))
    assert feed_all(data) == [Message("κόσμε🎉")]


# -- protocol errors -----------------------------------------------------------------
@pytest.mark.parametrize("data,code", [
    (encode_frame(OP_TEXT, b"hi"), 1002),                                  # not masked
    (masked(OP_TEXT, b"hi")[:0] + bytes([0x80 | 0x20 | OP_TEXT]) + masked(OP_TEXT, b"hi")[1:], 1002),  # RSV2
    (bytes([0x80 | 0x10 | OP_TEXT]) + masked(OP_TEXT, b"hi")[1:], 1002),  # RSV3
    (masked(OP_TEXT, b"hi", rsv1=True), 1002),                             # RSV1, no extension
    (masked(3, b""), 1002), (masked(7, b""), 1002),                       # reserved data opcodes
    (masked(0xB, b""), 1002), (masked(0xF, b""), 1002),                   # reserved control opcodes
    (masked(OP_PING, b"x" * 126), 1002),                                   # control too long
    (masked(OP_PING, b"x", fin=False), 1002),                              # fragmented control
    (masked(OP_CONTINUATION, b"x"), 1002),                                 # nothing to continue
    (masked(OP_TEXT, b"a", fin=False) + masked(OP_TEXT, b"b"), 1002),      # new message mid-message
    (masked(OP_TEXT, b"\xff"), 1007),                                      # invalid UTF-8
    (masked(OP_TEXT, b"\xed\xa0\x80"), 1007),                              # a UTF-16 surrogate
    (masked(OP_TEXT, b"\xce", fin=False) + masked(OP_CONTINUATION, b""), 1007),  # ends mid-sequence
    (masked(OP_CLOSE, b"\x03"), 1002),                                     # 1-byte close payload
    (masked(OP_CLOSE, b"\x03\xe8\xff"), 1007),                             # bad reason UTF-8
    (bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + MASK, 1002),      # length MSB set
])
def test_protocol_errors_fail_with_the_right_code(data, code):
    events = feed_all(data)
    assert isinstance(events[-1], Failure), events
    assert events[-1].code == code
    assert events[-1].reason


@pytest.mark.parametrize("code,valid", [
    (0, False), (999, False), (1000, True), (1001, True), (1002, True), (1003, True), (1004, False),
    (1005, False), (1006, False), (1007, True), (1011, True), (1012, True), (1013, True),
    (1014, True), (1015, False), (1016, False), (2000, False), (2999, False), (3000, True), (4999, True), (5000, False), (65535, False),
])
def test_close_code_validation(code, valid):
    assert is_valid_close_code(code) is valid
    event = feed_all(masked(OP_CLOSE, struct.pack("!H", code) + b"why"))[0]
    if valid:
        assert event == Close(code, "why")
    else:
        assert event == Failure(1002, "invalid close code %d" % code)


def test_close_without_payload_and_nothing_after_close():
    parser = FrameParser()
    assert parser.feed(masked(OP_CLOSE) + masked(OP_TEXT, b"late")) == [Close(None, "")]
    assert parser.feed(masked(OP_TEXT, b"later")) == []


def test_events_before_a_failure_are_kept_and_nothing_after():
    parser = FrameParser()
    events = parser.feed(masked(OP_TEXT, b"ok") + masked(OP_TEXT, b"\xff") + masked(OP_TEXT, b"never"))
    assert events == [Message("ok"), Failure(1007, "invalid UTF-8 in text message")]
    assert parser.feed(masked(OP_TEXT, b"x")) == []


def test_invalid_utf8_fails_fast_before_the_frame_is_complete():
    # Only the first part of a long text frame has arrived, and it is invalid.
    frame = masked(OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80" + b"a" * 1000)
    parser = FrameParser()
    events = parser.feed(frame[:2 + 2 + 4 + 14])
    assert events and events[-1].code == 1007
    # Valid so far: no failure yet, message not delivered yet.
    parser = FrameParser()
    assert parser.feed(frame[:2 + 2 + 4 + 11]) == []


def test_invalid_utf8_fails_fast_across_fragments():
    parser = FrameParser()
    events = parser.feed(masked(OP_TEXT, b"hello", fin=False) + masked(OP_CONTINUATION, b"\xc0\xaf", fin=False))
    assert events == [Failure(1007, "invalid UTF-8 in text message")]


# -- limits ----------------------------------------------------------------------------------
def test_message_size_limit_is_checked_from_the_header():
    parser = FrameParser(max_message_size=1000)
    header_only = masked(OP_BINARY, b"x" * 1001)[:8]
    assert parser.feed(header_only)[-1].code == 1009


def test_message_size_limit_across_fragments():
    parser = FrameParser(max_message_size=1000)
    events = parser.feed(masked(OP_BINARY, b"x" * 600, fin=False) + masked(OP_CONTINUATION, b"x" * 600))
    assert events[-1].code == 1009
    assert FrameParser(max_message_size=1000).feed(masked(OP_BINARY, b"x" * 1000)) == [Message(b"x" * 1000)]


def test_frame_size_limit():
    parser = FrameParser(max_message_size=10000, max_frame_size=100)
    assert parser.feed(masked(OP_BINARY, b"x" * 101))[-1].code == 1009
    ok = masked(OP_BINARY, b"x" * 100, fin=False) + masked(OP_CONTINUATION, b"y" * 100)
    assert FrameParser(max_message_size=10000, max_frame_size=100).feed(ok) == [Message(b"x" * 100 + b"y" * 100)]


def test_large_frame_streams_in_pieces():
    payload = os.urandom(3 * 1024 * 1024 + 5)
    frame = masked(OP_BINARY, payload)
    parser = FrameParser(max_message_size=4 * 1024 * 1024)
    events = []
    for start in range(0, len(frame), 65531):
        events.extend(parser.feed(frame[start:start + 65531]))
    assert events == [Message(payload)]
    # the parser did not keep the payload twice: nothing is buffered at the end
    assert len(parser._buffer) == 0


# -- a whole binary message gathered over many reads ---------------------------------
@pytest.mark.parametrize("size", [126, 70000, 1 << 20])
def test_large_binary_frame_in_random_pieces_then_more_frames(size):
    import random
    rng = random.Random(size)
    payload = os.urandom(size)
    data = masked(OP_BINARY, payload) + masked(OP_TEXT, "après".encode()) + masked(OP_PING, b"p")
    parser = FrameParser(max_message_size=2 << 20)
    events, pos = [], 0
    while pos < len(data):
        step = rng.choice([1, 2, 7, 1000, 65536, 262144])
        events.extend(parser.feed(data[pos:pos + step]))
        pos += step
    assert events == [Message(payload), Message("après"), Ping(b"p")]
    assert type(events[0].data) is bytes


def test_gathered_frame_is_refused_by_its_header_before_anything_is_kept():
    parser = FrameParser(max_message_size=1000)
    frame = masked(OP_BINARY, b"x" * 1001)
    assert parser.feed(frame[:20]) == [Failure(1009, "frame of 1001 bytes exceeds the limit of 1000")]


def test_kept_gathering_buffers_never_leak_an_earlier_message():
    # A large message leaves its buffer for the next; a smaller one must not see its tail.
    first, second = os.urandom(300000), os.urandom(100000)
    for parser_count in (1, 2):
        parsers = [FrameParser() for _ in range(parser_count)]
        for payload in (first, second, first):
            frame = masked(OP_BINARY, payload)
            parser = parsers[-1]
            events = []
            for i in range(0, len(frame), 65536):
                events.extend(parser.feed(frame[i:i + 65536]))
            assert events == [Message(payload)]


# -- a large frame's payload read straight into its buffer (payload_buffer) ---------
def drive_direct(parser, data, rng, steps=(1, 7, 1000, 65536, 300000)):
    """Feed ``data`` as a transport using payload_buffer() would: direct reads whenever offered."""
    events, pos = [], 0
    while pos < len(data):
        step = rng.choice(steps)
        target = parser.payload_buffer() if parser.large_frame_pending else None
        if target is None:
            events.extend(parser.feed(data[pos:pos + step]))
            pos += step
            continue
        got = data[pos:pos + min(step, len(target))]
        target[:len(got)] = got
        target.release()
        events.extend(parser.payload_written(len(got)))
        pos += len(got)
    return events


@pytest.mark.parametrize("seed", range(6))
def test_direct_payload_reads_give_the_same_events_as_feed(seed):
    import random
    rng = random.Random(seed)
    big, bigger = os.urandom(70000 + seed), os.urandom((1 << 20) + 3 * seed)
    data = (masked(OP_BINARY, big) + masked(OP_TEXT, "après".encode()) + masked(OP_BINARY, bigger)
            + masked(OP_PING, b"p") + masked(OP_BINARY, os.urandom(65535)) + masked(OP_CLOSE, b"\x03\xe8"))
    expected = FrameParser(max_message_size=2 << 20).feed(data)
    assert [type(e) for e in expected] == [Message, Message, Message, Ping, Message, Close]
    parser = FrameParser(max_message_size=2 << 20)
    assert drive_direct(parser, data, rng) == expected
    assert not parser.large_frame_pending


def test_direct_payload_buffer_stops_at_the_frame_end_and_grows_only_with_what_arrived(monkeypatch):
    from ratchet_sel.websocket import rfc6455
    monkeypatch.setattr(rfc6455, "_gather_pool", rfc6455._GatherPool())  # no buffer kept from other tests
    payload = os.urandom(3 * 1024 * 1024)
    frame = masked(OP_BINARY, payload)
    parser = FrameParser(max_message_size=4 * 1024 * 1024)
    assert parser.feed(frame[:14 + 10]) == []
    assert parser.large_frame_pending
    # A header announcing 3 MiB buys nothing ahead of the bytes: too little has come to read in place.
    assert parser.payload_buffer() is None
    pos, direct_reads, events = 24, 0, []
    while pos < len(frame):
        target = parser.payload_buffer()
        if target is None:
            events += parser.feed(frame[pos:pos + 50000])
            pos += 50000
        else:
            assert len(target) <= len(frame) - pos  # never past the frame
            n = len(target)
            target[:] = frame[pos:pos + n]
            target.release()
            events += parser.payload_written(n)
            pos += n
            direct_reads += 1
        if parser._frame_buffer is not None:
            # never more than twice what the client actually sent
            assert len(parser._frame_buffer) <= 2 * (pos - 14)
    assert events == [Message(payload)]
    assert direct_reads >= 5 and not parser.large_frame_pending


def test_direct_payload_is_not_offered_for_small_text_or_fragmented_frames():
    for data in (masked(OP_BINARY, b"x" * 1000), masked(OP_TEXT, b"y" * 100000),
                 masked(OP_BINARY, b"z" * 100000, fin=False)):
        parser = FrameParser()
        parser.feed(data[:20])
        assert not parser.large_frame_pending
        assert parser.payload_buffer() is None


def test_direct_payload_written_refuses_a_wrong_count():
    parser = FrameParser()
    parser.feed(masked(OP_BINARY, b"x" * 200000)[:70000])
    view = parser.payload_buffer()
    size = len(view)
    view.release()
    with pytest.raises(ValueError):
        parser.payload_written(size + 200000)
    with pytest.raises(ValueError):
        parser.payload_written(0)


@pytest.mark.parametrize("code", [1012, 1013, 1014])
def test_iana_close_codes_after_rfc6455_are_accepted_in_both_directions(code):
    payload = struct.pack("!H", code) + b"later"
    assert FrameParser().feed(masked(OP_CLOSE, payload)) == [Close(code, "later")]
    client_side = FrameParser(require_mask=False, forbid_mask=True)
    assert client_side.feed(encode_frame(OP_CLOSE, payload)) == [Close(code, "later")]
