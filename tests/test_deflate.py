"""permessage-deflate (RFC 7692): negotiation, codec, limits, and a live server."""

import os
import zlib

import pytest
from support import ServerThread
from test_ws_server import App
from wsclient import WsClient

from ratchet_sel import WsServer, broadcast
from ratchet_sel.http.request import RequestParser
from ratchet_sel.websocket.deflate import PerMessageDeflate, parse_extension_header
from ratchet_sel.websocket.rfc6455 import OP_CONTINUATION, OP_PING, OP_TEXT, FrameParser, Message, encode_frame

pytestmark = pytest.mark.timeout(60)

MASK = b"\x01\x02\x03\x04"


def request_with(*offers):
    head = "GET / HTTP/1.1\r\nHost: h\r\n" + "".join("Sec-WebSocket-Extensions: %s\r\n" % o for o in offers) + "\r\n"
    return RequestParser().feed(head.encode())


def negotiate(*offers, **config):
    return PerMessageDeflate(**config).negotiate(request_with(*offers))


def client_compress(payload, bits=15, compressor=None):
    compressor = compressor or zlib.compressobj(6, zlib.DEFLATED, -bits)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def server_decompress(frames_payload, bits=15, inflater=None):
    inflater = inflater or zlib.decompressobj(-bits)
    return inflater.decompress(frames_payload + b"\x00\x00\xff\xff")


def split_frame(frame):
    """(first byte, payload) of one unmasked server frame."""
    length = frame[1] & 0x7F
    offset = 2
    if length == 126:
        length, offset = int.from_bytes(frame[2:4], "big"), 4
    elif length == 127:
        length, offset = int.from_bytes(frame[2:10], "big"), 10
    return frame[0], frame[offset:offset + length]


# -- negotiation -------------------------------------------------------------------
def test_parse_extension_header():
    assert parse_extension_header(['permessage-deflate; client_max_window_bits; server_max_window_bits="10", x-foo',
                                   "permessage-deflate"]) == [
        ("permessage-deflate", [("client_max_window_bits", None), ("server_max_window_bits", "10")]),
        ("x-foo", []), ("permessage-deflate", [])]


def test_no_offer_no_extension():
    assert negotiate() == (None, None)
    assert negotiate("x-webkit-deflate-frame") == (None, None)


def test_plain_offer():
    extension, header = negotiate("permessage-deflate")
    assert header == "permessage-deflate; server_no_context_takeover"
    assert extension.server_bits == 15 and extension.client_bits == 15
    _, header = negotiate("permessage-deflate", server_no_context_takeover=False)
    assert header == "permessage-deflate"


def test_browser_offer():
    # Browsers allow a smaller client window: we ask for 12 bits (4 KiB inflater window).
    extension, header = negotiate("permessage-deflate; client_max_window_bits")
    assert header == "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"
    assert extension.client_bits == 12
    _, header = negotiate("permessage-deflate; client_max_window_bits", client_max_window_bits=15)
    assert header == "permessage-deflate; server_no_context_takeover"


def test_window_bits_requests_are_honoured():
    extension, header = negotiate("permessage-deflate; server_max_window_bits=10; client_max_window_bits=9")
    assert header == ("permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
                      "client_max_window_bits=9")
    assert (extension.server_bits, extension.client_bits) == (10, 9)


def test_no_context_takeover_requests():
    extension, header = negotiate("permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                                  server_no_context_takeover=False, client_no_context_takeover=True)
    assert header == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    assert not extension.server_takeover and not extension.client_takeover
    # Not configured to accept the client's promise: keep its context (legal either way).
    extension, header = negotiate("permessage-deflate; client_no_context_takeover")
    assert "client_no_context_takeover" not in header and extension.client_takeover


@pytest.mark.parametrize("bad", [
    "permessage-deflate; server_max_window_bits", "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16", "permessage-deflate; client_max_window_bits=abc",
    "permessage-deflate; server_no_context_takeover=1", "permessage-deflate; unknown=1",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
])
def test_malformed_offers_are_declined_and_the_next_one_taken(bad):
    assert negotiate(bad) == (None, None)
    extension, header = negotiate(bad + ", permessage-deflate; server_max_window_bits=12")
    assert extension is not None and "server_max_window_bits=12" in header


# -- codec -----------------------------------------------------------------------------
def test_inbound_compressed_messages_with_context_takeover():
    extension, _ = negotiate("permessage-deflate")
    parser = FrameParser(extension=extension)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    text = "compress me " * 50
    for _ in range(3):  # the client keeps its context: later messages refer to earlier ones
        frame = encode_frame(OP_TEXT, client_compress(text.encode(), compressor=compressor), rsv1=True, mask=MASK)
        assert parser.feed(frame) == [Message(text)]


def test_inbound_fragmented_compressed_message_with_interleaved_ping():
    extension, _ = negotiate("permessage-deflate")
    parser = FrameParser(extension=extension)
    payload = client_compress(os.urandom(3000) * 3)
    frames = (encode_frame(0x2, payload[:100], fin=False, rsv1=True, mask=MASK)
              + encode_frame(OP_PING, b"p", mask=MASK)
              + encode_frame(OP_CONTINUATION, payload[100:], mask=MASK))
    events = []
    for i in range(0, len(frames), 333):
        events += parser.feed(frames[i:i + 333])
    assert [type(e).__name__ for e in events] == ["Ping", "Message"]
    assert len(events[1].data) == 9000


def test_zip_bomb_fails_with_1009_before_inflating_it_all():
    extension, _ = negotiate("permessage-deflate")
    parser = FrameParser(extension=extension, max_message_size=1024 * 1024)
    bomb = client_compress(b"\x00" * (64 * 1024 * 1024))
    assert len(bomb) < 100 * 1024
    events = parser.feed(encode_frame(0x2, bomb, rsv1=True, mask=MASK))
    assert events[-1].code == 1009


def test_corrupt_compressed_data_fails_with_1007():
    extension, _ = negotiate("permessage-deflate")
    parser = FrameParser(extension=extension)
    events = parser.feed(encode_frame(0x2, b"\xff\xff\xff\xff garbage", rsv1=True, mask=MASK))
    assert events[-1].code == 1007


def test_compressed_text_must_be_utf8():
    extension, _ = negotiate("permessage-deflate")
    events = FrameParser(extension=extension).feed(
        encode_frame(OP_TEXT, client_compress(b"ok \xff\xfe"), rsv1=True, mask=MASK))
    assert events[-1].code == 1007


def test_rsv1_misuse_is_a_protocol_error():
    extension, _ = negotiate("permessage-deflate")
    events = FrameParser(extension=extension).feed(encode_frame(OP_PING, b"", rsv1=True, mask=MASK))
    assert events[-1].code == 1002
    events = FrameParser(extension=extension).feed(
        encode_frame(OP_TEXT, client_compress(b"a"), fin=False, rsv1=True, mask=MASK)
        + encode_frame(OP_CONTINUATION, b"", rsv1=True, mask=MASK))
    assert events[-1].code == 1002


def test_outbound_threshold_and_compression():
    extension, _ = negotiate("permessage-deflate")
    first, payload = split_frame(extension.encode_message("short")[0])
    assert first == 0x81 and payload == b"short"  # below the threshold: plain
    message = "a fairly compressible message " * 40
    first, payload = split_frame(extension.encode_message(message)[0])
    assert first == 0xC1 and len(payload) < len(message) // 5
    assert server_decompress(payload).decode() == message


def test_outbound_without_context_takeover_is_independent_per_message():
    config = PerMessageDeflate()
    ext_a, _ = config.negotiate(request_with("permessage-deflate"))
    ext_b, _ = config.negotiate(request_with("permessage-deflate; client_max_window_bits"))
    message = b"broadcast payload " * 100
    frame_a = ext_a.encode_message(message)[0]
    frame_b = ext_b.encode_message(message)[0]
    assert frame_a == frame_b  # one shared compressor, full flush: same bytes for everyone
    # each message decodes with a fresh inflater (the client may drop its context)
    assert server_decompress(split_frame(frame_b)[1]) == message
    assert ext_a.shared_key == ext_b.shared_key is not None


def test_outbound_with_context_takeover_gains_on_repeats():
    extension, _ = negotiate("permessage-deflate", server_no_context_takeover=False)
    assert extension.shared_key is None
    inflater = zlib.decompressobj(-15)
    message = os.urandom(600).hex()
    sizes = []
    for _ in range(2):
        payload = split_frame(extension.encode_message(message)[0])[1]
        sizes.append(len(payload))
        assert server_decompress(payload, inflater=inflater).decode() == message
    assert sizes[1] < sizes[0] // 10


def test_window_bits_8_is_served_with_a_huffman_only_stream():
    extension, header = negotiate("permessage-deflate; server_max_window_bits=8")
    assert "server_max_window_bits=8" in header
    message = b"abcabcabc" * 200
    payload = split_frame(extension.encode_message(message)[0])[1]
    assert server_decompress(payload, bits=8) == message


def test_fragmented_compressed_send():
    extension, _ = negotiate("permessage-deflate")
    frames = extension.encode_message(os.urandom(5000), fragment_size=1000)
    assert len(frames) > 1
    assert frames[0][0] == 0x42 and all(f[0] & 0x40 == 0 for f in frames[1:])


# -- live --------------------------------------------------------------------------------
def test_live_echo_with_compression():
    app = App()
    with ServerThread(WsServer(app)) as st:
        with WsClient(st.port, extra=[("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]) as c:
            assert c.headers["sec-websocket-extensions"] == ("permessage-deflate; server_no_context_takeover; "
                                                             "client_max_window_bits=12")
            text = "héllo compressed world " * 100
            c.send_frame(OP_TEXT, client_compress(text.encode(), bits=12), rsv1=True)
            raw = b""
            while len(raw) < 2 or len(raw) < 2 + (raw[1] & 0x7F):
                raw += c.sock.recv(65536)
            first, payload = split_frame(raw)
            assert first == 0xC1
            assert server_decompress(payload).decode() == text
        assert app.conns[0].extension is not None


def test_compression_can_be_switched_off():
    with ServerThread(WsServer(App(), compression=None)) as st:
        with WsClient(st.port, extra=[("Sec-WebSocket-Extensions", "permessage-deflate")]) as c:
            assert "sec-websocket-extensions" not in c.headers


def test_broadcast_compresses_once_per_message(monkeypatch):
    app = App()
    with ServerThread(WsServer(app)) as st:
        offer = [("Sec-WebSocket-Extensions", "permessage-deflate")]
        clients = [WsClient(st.port, extra=offer) for _ in range(4)] + [WsClient(st.port)]
        app.wait_for(lambda ev: sum(1 for e in ev if e[0] == "open") == 5)
        calls = []
        original = type(app.conns[0].extension).compress

        def counting(self, payload):
            calls.append(len(payload))
            return original(self, payload)

        monkeypatch.setattr(type(app.conns[0].extension), "compress", counting)
        message = "to everyone " * 100
        assert st.call(broadcast, list(app.conns), message) == 5
        assert len(calls) == 1
        for client in clients[:4]:
            first, payload = split_frame(client.sock.recv(65536))
            assert first == 0xC1 and server_decompress(payload).decode() == message
        assert clients[4].recv_message() == message
        for client in clients:
            client.shutdown()


# -- a message may end with a final block (RFC 7692 7.2.3.4); the window lives on ----------------

def test_context_takeover_survives_a_message_that_ends_with_a_final_block():
    extension, _ = negotiate("permessage-deflate")
    assert extension.client_takeover
    parser = FrameParser(extension=extension)
    first = bytes.fromhex("f348cdc9c90700")       # "Hello" in a final (BFINAL) block
    second = bytes.fromhex("f200110000")         # "Hello" again, as a back-reference into the first
    assert parser.feed(encode_frame(OP_TEXT, first, rsv1=True, mask=MASK)) == [Message("Hello")]
    assert parser.feed(encode_frame(OP_TEXT, second, rsv1=True, mask=MASK)) == [Message("Hello")]


def test_a_final_block_inside_a_message_keeps_the_window_for_the_rest_of_it():
    extension, _ = negotiate("permessage-deflate")
    parser = FrameParser(extension=extension)
    payload = bytes.fromhex("f348cdc9c90700") + bytes.fromhex("f200110000")
    assert parser.feed(encode_frame(OP_TEXT, payload, rsv1=True, mask=MASK)) == [Message("HelloHello")]


def test_the_window_after_a_final_block_spans_earlier_messages_up_to_the_agreed_size():
    """The new stream may reach back 2**client_bits bytes over several earlier messages, no further."""
    extension, _ = negotiate("permessage-deflate; client_max_window_bits", client_max_window_bits=9)
    assert extension.client_bits == 9
    parser = FrameParser(extension=extension)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -9)
    history = b""
    for piece in (b"a" * 100, os.urandom(150), os.urandom(150)):
        data = compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert parser.feed(encode_frame(0x2, data[:-4], rsv1=True, mask=MASK)) == [Message(piece)]
        history += piece
    final = compressor.compress(b"end") + compressor.flush(zlib.Z_FINISH)    # BFINAL
    assert parser.feed(encode_frame(0x2, final, rsv1=True, mask=MASK)) == [Message(b"end")]
    history += b"end"
    # a new stream whose first bytes copy bytes of the second-last message (zlib reaches 250 back at 9 bits)
    target = history[-245:-205]
    reference = zlib.compressobj(6, zlib.DEFLATED, -9, zdict=history[-512:])
    data = reference.compress(target) + reference.flush(zlib.Z_SYNC_FLUSH)
    assert len(data) < 20                                      # back-references, not literals
    assert parser.feed(encode_frame(0x2, data[:-4], rsv1=True, mask=MASK)) == [Message(target)]


@pytest.mark.parametrize("value", ["\xb9\xb2", "0" * 5000 + "9", "+9", "09x", "\u0669"],
                         ids=["superscripts", "long", "sign", "suffix", "arabic-indic"])
def test_window_bits_must_be_plain_digits(value):
    head = ("GET / HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Extensions: permessage-deflate; "
            "server_max_window_bits=%s, permessage-deflate\r\n\r\n" % value)
    request = RequestParser().feed(head.encode("latin-1", "replace"))
    extension, answer = PerMessageDeflate().negotiate(request)
    assert answer == "permessage-deflate; server_no_context_takeover"      # the bad offer declined, the next taken
