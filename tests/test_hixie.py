"""Draft-76 and draft-75 beside RFC 6455: codec units and a live server."""

import socket

import pytest
from support import ServerThread
from test_ws_server import App
from wsclient import WsClient, http_exchange

from ratchet_sel import WsServer
from ratchet_sel.http.request import HttpError
from ratchet_sel.websocket.hixie import HixieParser, encode_text, hixie76_answer, key_number
from ratchet_sel.websocket.rfc6455 import Close, Failure, Message

pytestmark = pytest.mark.timeout(60)

KEY1 = "4 @1  46546xW%0l 1 5"
KEY2 = "12998 5 Y3 1  .P00"
KEY3 = b"^n:ds[4U"
ANSWER = b"8jKS'y:G*Co,Wxa-"

# The example request of draft-hixie-thewebsocketprotocol-76, section 1.3.
SPEC_REQUEST = (b"GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\nSec-WebSocket-Protocol: sample\r\n"
                b"Upgrade: WebSocket\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n"
                b"Origin: http://example.com\r\n\r\n")


def test_spec_vector():
    assert key_number(KEY1) == 829309203 and key_number(KEY2) == 259970620
    assert hixie76_answer(KEY1, KEY2, KEY3) == ANSWER


@pytest.mark.parametrize("key", ["123", "1 2 3x", "  ", "99999999999999999999 1"])
def test_bad_keys(key):
    with pytest.raises(HttpError) as info:
        key_number(key)
    assert info.value.status == 400


def test_short_key3_is_never_signed():
    with pytest.raises(ValueError):
        hixie76_answer(KEY1, KEY2, b"short")


def test_parser_frames():
    parser = HixieParser()
    data = encode_text("héllo") + encode_text("") + encode_text("✓")
    assert parser.feed(data) == [Message("héllo"), Message(""), Message("✓")]
    events = []
    for byte in encode_text("split up"):
        events += parser.feed(bytes([byte]))
    assert events == [Message("split up")]
    assert parser.feed(b"\xff\x00") == [Close(None, "")]


@pytest.mark.parametrize("data,code", [
    (b"\x00\xc3\x28\xff", 1007),       # invalid UTF-8
    (b"\x80\x05hello", 1002),           # length-prefixed frame
    (b"\xff\x05", 1002),                # length-prefixed frame with 0xFF type
    (b"\x01abc\xff", 1002),             # unknown sentinel frame type
])
def test_parser_failures(data, code):
    events = HixieParser().feed(data)
    assert isinstance(events[-1], Failure) and events[-1].code == code


def test_parser_size_limit():
    parser = HixieParser(max_message_size=10)
    assert parser.feed(b"\x00" + b"a" * 11)[-1].code == 1009
    assert HixieParser(max_message_size=10).feed(encode_text("a" * 10)) == [Message("a" * 10)]


@pytest.fixture
def app():
    return App()


@pytest.fixture
def server(app):
    with ServerThread(WsServer(app, handshake_timeout=2.0, close_timeout=0.5)) as st:
        yield st


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, data
        data += chunk
    return data


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        assert chunk, data
        data += chunk
    return data


EXPECTED_HEAD = (b"HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Origin: http://example.com\r\n"
                 b"Sec-WebSocket-Location: ws://example.com/demo\r\n\r\n")


@pytest.mark.parametrize("key3_later", [False, True])
def test_live_spec_replay(server, app, key3_later):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        if key3_later:
            sock.sendall(SPEC_REQUEST)
            # The server must wait for key3; give it a moment to (wrongly) answer.
            sock.settimeout(0.2)
            with pytest.raises(socket.timeout):
                sock.recv(1)
            sock.settimeout(5)
            sock.sendall(KEY3)
        else:
            sock.sendall(SPEC_REQUEST + KEY3)
        head = read_head(sock)
        # The app offers no subprotocols, so none is answered.
        assert head == EXPECTED_HEAD
        assert read_exactly(sock, 16) == ANSWER
        sock.sendall(encode_text("hello draft"))
        assert read_exactly(sock, len(encode_text("hello draft"))) == encode_text("hello draft")
        sock.sendall(b"\xff\x00")
        assert read_exactly(sock, 2) == b"\xff\x00"
        assert sock.recv(1) == b""
    app.wait_for(lambda ev: ev[-1][0] == "close")
    assert app.conns[0].version == "hixie-76"


def test_live_subprotocol_and_frames_after_key3(app):
    class Proto(App):
        subprotocols = ["sample"]

    proto = Proto()
    with ServerThread(WsServer(proto)) as st:
        with socket.create_connection(("127.0.0.1", st.port), timeout=5) as sock:
            sock.sendall(SPEC_REQUEST + KEY3 + encode_text("in the same write"))
            head = read_head(sock)
            assert b"\r\nSec-WebSocket-Protocol: sample\r\n" in head
            assert read_exactly(sock, 16) == ANSWER
            expected = encode_text("in the same write")
            assert read_exactly(sock, len(expected)) == expected
    assert proto.conns[0].subprotocol == "sample"


def test_key3_timeout(app):
    with ServerThread(WsServer(app, handshake_timeout=0.3)) as st:
        status, _, body = http_exchange(st.port, SPEC_REQUEST + b"1234")
        assert status == 408 and body
    assert not app.conns


def test_bad_key_is_refused_before_key3(server):
    request = SPEC_REQUEST.replace(b"12998 5 Y3 1  .P00", b"12345")
    status, _, body = http_exchange(server.port, request)
    assert status == 400 and b"space" in body


def test_hixie75(server, app):
    request = (b"GET /seventy-five HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
               b"Host: example.com\r\nOrigin: http://example.com\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        head = read_head(sock)
        assert head.startswith(b"HTTP/1.1 101 Web Socket Protocol Handshake\r\n")
        assert b"\r\nWebSocket-Origin: http://example.com\r\n" in head
        assert b"\r\nWebSocket-Location: ws://example.com/seventy-five\r\n" in head
        sock.sendall(encode_text("old"))
        assert read_exactly(sock, 5) == encode_text("old")
    app.wait_for(lambda ev: ev[-1][0] == "close")
    assert app.conns[0].version == "hixie-75"


def test_binary_send_on_a_draft_connection_raises(server, app):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(SPEC_REQUEST + KEY3)
        read_head(sock)
        read_exactly(sock, 16)
        app.wait_for(lambda ev: ev and ev[0][0] == "open")
        with pytest.raises(TypeError):
            server.call(app.conns[0].send, b"binary")
        server.call(app.conns[0].close)
        assert read_exactly(sock, 2) == b"\xff\x00"


def test_invalid_utf8_closes_a_draft_connection(server, app):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(SPEC_REQUEST + KEY3 + b"\x00\xc3\x28\xff")
        read_head(sock)
        read_exactly(sock, 16)
        assert read_exactly(sock, 2) == b"\xff\x00"
        assert sock.recv(1) == b""
    app.wait_for(lambda ev: ev[-1][0] == "close")


def test_drafts_can_be_disabled(app):
    ws = WsServer(app)
    ws.disable_version("hixie-76")
    with ServerThread(ws) as st:
        status, _, _ = http_exchange(st.port, SPEC_REQUEST + KEY3)
        assert status == 426


def test_mixed_versions_in_one_chat():
    from ratchet_sel.demo import Chat

    chat = Chat()
    with ServerThread(WsServer(chat)) as st:
        draft = socket.create_connection(("127.0.0.1", st.port), timeout=5)
        draft.sendall(SPEC_REQUEST + KEY3)
        read_head(draft)
        read_exactly(draft, 16)
        hybi = WsClient(st.port, version="8")
        rfc = WsClient(st.port, version="13")
        assert st.call(lambda: len(chat.topics.subscribers(chat.room))) == 3
        rfc.send("from rfc")
        assert hybi.recv_message() == "from rfc"
        assert read_exactly(draft, len(encode_text("from rfc"))) == encode_text("from rfc")
        draft.sendall(encode_text("from draft"))
        assert hybi.recv_message() == "from draft"
        assert rfc.recv_message() == "from draft"
        hybi.send("from hybi")
        assert rfc.recv_message() == "from hybi"
        assert read_exactly(draft, len(encode_text("from hybi"))) == encode_text("from hybi")
        for sock in (draft, hybi.sock, rfc.sock):
            sock.close()


@pytest.mark.parametrize("key3_later", [False, True])
def test_key3_declared_as_a_body_with_content_length(server, app, key3_later):
    # Autobahn 0.10.9's draft-76 client sends "Content-Length: 8" for key3.
    request = SPEC_REQUEST.replace(b"Origin:", b"Content-Length: 8\r\nOrigin:")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        if key3_later:
            sock.sendall(request)
            sock.sendall(KEY3[:3])
            sock.sendall(KEY3[3:] + encode_text("after key3"))
        else:
            sock.sendall(request + KEY3 + encode_text("after key3"))
        assert read_head(sock) == EXPECTED_HEAD
        assert read_exactly(sock, 16) == ANSWER
        assert read_exactly(sock, len(encode_text("after key3"))) == encode_text("after key3")
