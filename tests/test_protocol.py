"""The sans-IO connection protocol (ratchet_sel.websocket.protocol), both roles, with byte strings."""

import struct

import pytest

from ratchet_sel.websocket.protocol import ClientProtocol, ServerProtocol, State
from ratchet_sel.websocket.rfc6455 import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Close, FrameParser,
                                           Message, Ping, Pong, encode_close_payload, encode_frame)

pytestmark = pytest.mark.timeout(30)

MASK = b"\x11\x22\x33\x44"


def server():
    return ServerProtocol(max_message_size=1000, close_timeout=3.0)


def client():
    return ClientProtocol(max_message_size=1000, close_timeout=4.0)


def from_client(opcode, payload=b""):
    """A frame as a client sends it (masked), for a server protocol."""
    return encode_frame(opcode, payload, mask=MASK)


def from_server(opcode, payload=b""):
    """A frame as a server sends it (unmasked), for a client protocol."""
    return encode_frame(opcode, payload)


def close_payload(code, reason=""):
    return encode_close_payload(code, reason)


# Each role with a way to make its peer's frames and a parser for what it sends.
ROLES = [
    pytest.param(server, from_client, lambda: FrameParser(require_mask=False, forbid_mask=True), id="server"),
    pytest.param(client, from_server, lambda: FrameParser(require_mask=True), id="client"),
]


def sent_events(proto, reader):
    return reader().feed(proto.data_to_send())


def test_states_are_one_enum_compared_by_identity():
    proto = server()
    assert proto.state is State.OPEN and proto.is_open
    assert [state.value for state in State] == ["connecting", "open", "closing", "closed"]


@pytest.mark.parametrize("make,peer,reader", ROLES)
def test_messages_come_out_and_pings_are_answered(make, peer, reader):
    proto = make()
    events = proto.receive_data(peer(OP_TEXT, b"hi") + peer(OP_PING, b"beat") + peer(OP_BINARY, b"\x00\x01")
                                + peer(OP_PONG, b"mine"))
    assert events == [Message("hi"), Message(b"\x00\x01"), Pong(b"mine")]
    assert sent_events(proto, reader) == [Pong(b"beat")]


@pytest.mark.parametrize("make,peer,reader", ROLES)
def test_the_peer_closes_first_and_its_code_is_echoed(make, peer, reader):
    proto = make()
    assert proto.receive_data(peer(OP_CLOSE, close_payload(4000, "bye"))) == []
    assert proto.state is State.CLOSED
    assert (proto.close_code, proto.close_reason, proto.close_received) == (4000, "bye", True)
    assert sent_events(proto, reader) == [Close(4000, "")]
    if proto.client_side:
        # The server closes TCP first (RFC 6455 7.1.1): the client waits for it, a while.
        assert (proto.close_transport, proto.expect_close_within) == (False, 4.0)
    else:
        assert (proto.close_transport, proto.expect_close_within) == (True, None)


@pytest.mark.parametrize("make,peer,reader", ROLES)
def test_we_close_first_then_the_peer_answers(make, peer, reader):
    proto = make()
    proto.close(1001, "going")
    assert proto.state is State.CLOSING and proto.expect_close_within == proto.close_timeout
    assert sent_events(proto, reader) == [Close(1001, "going")]
    # Messages and pings arriving meanwhile are dropped and not answered.
    assert proto.receive_data(peer(OP_TEXT, b"late") + peer(OP_PING, b"x")) == []
    proto.receive_data(peer(OP_CLOSE, close_payload(1001)))
    assert proto.state is State.CLOSED and proto.close_code == 1001
    assert proto.data_to_send() == b""  # no second close frame
    assert proto.close_transport is (not proto.client_side)


@pytest.mark.parametrize("make,peer,reader", ROLES)
def test_simultaneous_close_sends_one_close_frame_each_way(make, peer, reader):
    proto = make()
    proto.close(1000)
    proto.receive_data(peer(OP_CLOSE, close_payload(1000, "me too")))
    assert proto.state is State.CLOSED and (proto.close_code, proto.close_reason) == (1000, "me too")
    assert sent_events(proto, reader) == [Close(1000, "")]


@pytest.mark.parametrize("make,peer,reader", ROLES)
def test_messages_before_a_close_in_the_same_bytes_come_first(make, peer, reader):
    proto = make()
    events = proto.receive_data(peer(OP_TEXT, b"one") + peer(OP_TEXT, b"two") + peer(OP_CLOSE, close_payload(1000)))
    assert events == [Message("one"), Message("two")]
    # The application may still answer them: the close waits for end_pending().
    assert proto.state is State.OPEN
    proto.send("answer")
    proto.end_pending()
    assert proto.state is State.CLOSED
    assert sent_events(proto, reader) == [Message("answer"), Close(1000, "")]


@pytest.mark.parametrize("make,peer,reader", ROLES)
@pytest.mark.parametrize("code", [1012, 1013, 1014])
def test_close_codes_registered_after_rfc6455_are_echoed(make, peer, reader, code):
    proto = make()
    proto.receive_data(peer(OP_CLOSE, close_payload(code, "later")))
    assert (proto.close_code, proto.failed) == (code, False)
    assert sent_events(proto, reader) == [Close(code, "")]


@pytest.mark.parametrize("make,peer,reader", ROLES)
@pytest.mark.parametrize("code", [1004, 1005, 1006, 1015, 1016, 2999])
def test_invalid_close_codes_fail_with_1002(make, peer, reader, code):
    proto = make()
    proto.receive_data(peer(OP_CLOSE, struct.pack("!H", code)))
    assert (proto.close_code, proto.failed, proto.close_transport) == (1002, True, True)
    assert sent_events(proto, reader) == [Close(1002, "invalid close code %d" % code)]


@pytest.mark.parametrize("make,peer,reader", ROLES)
def test_a_protocol_error_fails_the_connection(make, peer, reader):
    proto = make()
    proto.receive_data(peer(OP_PING, b"x" * 10)[:1] + b"\x7e\x00\x80")  # a ping with a 16-bit length
    assert proto.state is State.CLOSED and proto.failed and proto.close_transport
    assert proto.close_code == 1002
    assert sent_events(proto, reader) == [Close(1002, "control frame payload over 125 bytes")]
    assert proto.receive_data(peer(OP_TEXT, b"after")) == []


@pytest.mark.parametrize("make,peer,reader", ROLES)
def test_too_big_is_1009_and_bad_utf8_is_1007(make, peer, reader):
    proto = make()
    proto.receive_data(peer(OP_BINARY, b"x" * 1001))
    assert sent_events(proto, reader) == [Close(1009, "frame of 1001 bytes exceeds the limit of 1000")]
    proto = make()
    proto.receive_data(peer(OP_TEXT, b"\xff\xfe"))
    assert proto.close_code == 1007
    assert sent_events(proto, reader) == [Close(1007, "invalid UTF-8 in text message")]


def test_the_client_rejects_a_masked_server_frame():
    proto = client()
    assert proto.receive_data(encode_frame(OP_TEXT, b"hi", mask=MASK)) == []
    assert proto.close_code == 1002
    assert FrameParser(require_mask=True).feed(proto.data_to_send()) == [Close(1002, "server frame masked")]


def test_the_server_rejects_an_unmasked_client_frame():
    proto = server()
    assert proto.receive_data(encode_frame(OP_TEXT, b"hi")) == []
    assert proto.close_code == 1002
    assert proto.data_to_send() == encode_frame(OP_CLOSE, close_payload(1002, "client frame not masked"))


@pytest.mark.parametrize("make,peer,reader", ROLES)
def test_connection_lost_is_1006_unless_the_handshake_was_done(make, peer, reader):
    proto = make()
    proto.connection_lost()
    assert (proto.state, proto.close_code) == (State.CLOSED, 1006)
    done = make()
    done.receive_data(peer(OP_CLOSE, close_payload(1000)))
    done.connection_lost()
    assert done.close_code == 1000


def test_connection_lost_acts_on_a_held_back_close_first():
    proto = client()
    proto.receive_data(from_server(OP_TEXT, b"a") + from_server(OP_CLOSE, close_payload(1001)))
    proto.connection_lost()
    assert proto.close_code == 1001


def test_frames_are_masked_by_the_client_with_fresh_keys_and_plain_from_the_server():
    proto = client()
    proto.send("hello")
    proto.send("hello")
    first, second = proto.outgoing
    assert first[1] & 0x80 and second[1] & 0x80 and first[2:6] != second[2:6]
    assert server().frames_for("hello") == [encode_frame(OP_TEXT, b"hello")]


def test_the_driver_may_refuse_a_pong():
    asked = []
    proto = ServerProtocol(max_message_size=100, may_answer=lambda size: asked.append(size) or False)
    proto.receive_data(from_client(OP_PING, b"abc"))
    assert asked == [5] and proto.data_to_send() == b""


def test_sending_after_close_queues_nothing():
    proto = server()
    proto.close()
    proto.data_to_send()
    assert proto.send("x") is False and proto.ping() is False and proto.data_to_send() == b""
    with pytest.raises(ValueError):
        proto.close(1006)


def test_the_server_driver_loop_gives_the_same_answers():
    # WsConnection loops over the parser's feed() itself and hands every other event to receive_event().
    proto = server()
    events = proto.parser.feed(from_client(OP_PING, b"p") + from_client(OP_PONG, b"q") + from_client(OP_CLOSE))
    assert events == [Ping(b"p"), Pong(b"q"), Close(None)]
    assert [proto.receive_event(event) for event in events] == [None, Pong(b"q"), None]
    assert proto.close_code == 1005
    assert FrameParser(require_mask=False).feed(proto.data_to_send()) == [Pong(b"p"), Close(None)]


def test_a_flood_of_failing_peers_is_logged_once_with_a_count(caplog, monkeypatch):
    """Thousands of broken clients (a scanner, a bad deploy of a client) must not write one line
    each: the first failure of a kind (its close code) is logged, the rest are counted."""
    from ratchet_sel.websocket import protocol as protocol_module
    from ratchet_sel.ops.ratelimit import RateLimitedLog
    clock = [100.0]
    monkeypatch.setattr(protocol_module, "_fail_log", RateLimitedLog(protocol_module.log, clock=lambda: clock[0]))
    caplog.set_level("INFO", logger="ratchet_sel.websocket.protocol")
    for _ in range(500):
        proto = server()
        proto.receive_data(from_client(OP_PING, b"x" * 126))
        assert proto.failed and proto.close_code == 1002
    lines = [r.getMessage() for r in caplog.records if "failing the connection" in r.getMessage()]
    assert len(lines) == 1
    clock[0] += 11.0                      # the next window: its first occurrence carries the count
    proto = server()
    proto.receive_data(from_client(OP_PING, b"x" * 126))
    lines = [r.getMessage() for r in caplog.records if "failing the connection" in r.getMessage()]
    assert len(lines) == 2 and "500 times" in lines[1], lines
