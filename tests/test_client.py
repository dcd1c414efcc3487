"""ratchet_sel.client: the sans-IO pieces with byte strings, then the blocking
client, connect_async and the command line over real sockets, against our own
server and against deliberately broken raw-socket servers."""

import base64
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from typing import Any, Callable, List

import pytest
from support import DEFAULT_TIMEOUT, ServerThread

from ratchet_sel import IoServer, Loop, MessageComponent, WsServer
from ratchet_sel.client import (ConnectionClosed, DeflateOffer, HandshakeError, ProtocolError, connect,
                                connect_async, parse_url)
from ratchet_sel.client.cli import format_message
from ratchet_sel.client.handshake import ClientHandshake
from ratchet_sel.client.protocol import ClientProtocol
from ratchet_sel.websocket.handshake import accept_key
from ratchet_sel.websocket.rfc6455 import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Close, FrameParser, Message,
                                           Pong, encode_close_payload, encode_frame)

pytestmark = pytest.mark.timeout(60)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CERTS = os.path.join(ROOT, "tests", "certs")
CERTFILE = os.path.join(CERTS, "localhost.pem")
KEYFILE = os.path.join(CERTS, "localhost.key")


def response_for(handshake: ClientHandshake, *extra: str) -> bytes:
    lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Accept: " + accept_key(handshake.key)] + list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- sans-IO: URL and handshake -----------------------------------------------------------
def test_parse_url():
    t = parse_url("wss://example.com/chat?room=1")
    assert (t.secure, t.host, t.port, t.resource, t.host_header) == (True, "example.com", 443, "/chat?room=1",
                                                                      "example.com")
    t = parse_url("ws://[::1]:8000")
    assert (t.host, t.port, t.resource, t.host_header) == ("::1", 8000, "/", "[::1]:8000")
    for bad in ("http://x/", "ws:///nohost", "ws://x/#frag", "ws://x:99999/"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_request_carries_the_offer_and_a_fresh_key():
    hs = ClientHandshake(parse_url("ws://h:1/p"), subprotocols=["a", "b"], headers={"X-Token": "t"},
                         origin="http://o", offer=DeflateOffer())
    head = hs.request.decode()
    assert head.startswith("GET /p HTTP/1.1\r\nHost: h:1\r\n")
    for line in ("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                 "Sec-WebSocket-Protocol: a, b", "X-Token: t", "Origin: http://o",
                 "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; client_max_window_bits"):
        assert line + "\r\n" in head
    assert len(base64.b64decode(hs.key)) == 16
    assert hs.key != ClientHandshake(parse_url("ws://h:1/p")).key
    with pytest.raises(ValueError):
        ClientHandshake(parse_url("ws://h/"), headers=[("X", "a\r\nInjected: 1")])


def test_good_response_is_accepted_byte_by_byte_with_leftover():
    hs = ClientHandshake(parse_url("ws://h/"), subprotocols=["chat"], offer=DeflateOffer())
    data = response_for(hs, "Sec-WebSocket-Protocol: chat",
                        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover") + b"\x81\x02hi"
    split = data.index(b"\r\n\r\n") + 2
    for i in range(split):
        assert hs.feed(data[i:i + 1]) is False
    assert hs.feed(data[split:])
    assert hs.status == 101 and hs.subprotocol == "chat"
    assert hs.extension is not None and hs.extension.client_side
    assert hs.leftover == b"\x81\x02hi"


@pytest.mark.parametrize("extra, needle", [
    (["Sec-WebSocket-Protocol: other"], "subprotocol 'other', which was not offered"),
    (["Sec-WebSocket-Extensions: x-webkit-deflate-frame"], "none was offered"),
])
def test_unoffered_subprotocol_or_extension_is_refused(extra, needle):
    hs = ClientHandshake(parse_url("ws://h/"))
    with pytest.raises(HandshakeError, match=needle):
        hs.feed(response_for(hs, *extra))


def test_wrong_accept_is_refused():
    hs = ClientHandshake(parse_url("ws://h/"))
    bad = response_for(hs).replace(accept_key(hs.key).encode(), accept_key("x" * 24).encode())
    with pytest.raises(HandshakeError, match="wrong Sec-WebSocket-Accept"):
        hs.feed(bad)


def test_refusal_reports_status_and_first_body_line():
    hs = ClientHandshake(parse_url("ws://h/"))
    assert hs.feed(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 30\r\n\r\nOrigin not al") is False
    with pytest.raises(HandshakeError) as info:
        hs.feed(b"lowed\r\nmore text\r\n")
    assert info.value.status == 403 and info.value.body == "Origin not allowed"
    assert "HTTP 403 Forbidden: Origin not allowed" in str(info.value)


@pytest.mark.parametrize("answer, needle", [
    ("permessage-deflate; foo=1", "unknown"),
    ("permessage-deflate; server_max_window_bits=7", "8 to 15"),
    ("permessage-deflate, permessage-deflate", "more than once"),
    ("permessage-deflate; client_no_context_takeover=1", "takes no value"),
])
def test_deflate_answer_checks(answer, needle):
    with pytest.raises(ValueError, match=needle):
        DeflateOffer().accept([answer])


def test_deflate_answer_must_fit_the_offer():
    with pytest.raises(ValueError, match="not offered"):
        DeflateOffer(client_max_window_bits=False).accept(["permessage-deflate; client_max_window_bits=10"])
    with pytest.raises(ValueError, match="exceeds"):
        DeflateOffer(server_max_window_bits=10).accept(["permessage-deflate; server_max_window_bits=12"])
    ext = DeflateOffer().accept(["permessage-deflate; client_max_window_bits=9; server_max_window_bits=10"])
    assert (ext.client_bits, ext.server_bits, ext.client_takeover) == (9, 10, False)
    assert DeflateOffer().accept([]) is None


# -- sans-IO: the open connection ---------------------------------------------------------------
def test_outgoing_frames_are_masked_with_fresh_keys():
    proto = ClientProtocol()
    proto.send("hello")
    proto.send(b"\x00" * 1000, fragment_size=300)
    data = proto.data_to_send()
    server = FrameParser(require_mask=True)  # fails on any unmasked frame
    assert server.feed(data) == [Message("hello"), Message(b"\x00" * 1000)]
    first, second = data[2:6], data[13:17]
    assert data[1] & 0x80 and first != second


def test_compressed_round_trip_both_roles():
    offer = DeflateOffer()
    from ratchet_sel.websocket.deflate import PerMessageDeflate
    from ratchet_sel.http.request import Headers, Request
    request = Request("GET", "/", "1.1", Headers([("Sec-WebSocket-Extensions", offer.header_value())]))
    server_ext, answer = PerMessageDeflate().negotiate(request)
    client = ClientProtocol(offer.accept([answer]))
    text = "compress me " * 100
    client.send(text)
    wire = client.data_to_send()
    assert wire[0] & 0x40 and len(wire) < len(text)  # RSV1: compressed
    assert FrameParser(extension=server_ext).feed(wire) == [Message(text)]
    assert client.receive(b"".join(server_ext.encode_message(text))) == [Message(text)]


def test_masked_server_frame_fails_the_connection():
    proto = ClientProtocol()
    assert proto.receive(encode_frame(OP_TEXT, b"hi", mask=b"abcd")) == []
    assert isinstance(proto.closed, ProtocolError) and proto.closed.code == 1002
    assert FrameParser(require_mask=True).feed(proto.data_to_send()) == [Close(1002, "server frame masked")]


def test_ping_is_answered_and_close_is_echoed():
    proto = ClientProtocol()
    assert proto.receive(encode_frame(OP_PING, b"beat") + encode_frame(OP_PONG, b"mine")) == [Pong(b"mine")]
    proto.receive(encode_frame(OP_CLOSE, encode_close_payload(4000, "bye")))
    assert (proto.closed.code, proto.closed.reason, proto.closed.ok) == (4000, "bye", False)
    assert FrameParser().feed(proto.data_to_send()) == [Pong(b"beat"), Close(4000, "")]
    with pytest.raises(ConnectionClosed):
        proto.send("late")


# -- the blocking client against our server -----------------------------------------------------
class Recorder(MessageComponent):
    """A WebSocket application recording opens and closes (thread-safe), echoing messages if asked."""

    subprotocols = ("chat",)

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.cond = threading.Condition()
        self.opened: List[Any] = []
        self.closed: List[Any] = []
        self.on_message_hook: Any = None

    def on_open(self, conn: Any) -> None:
        with self.cond:
            self.opened.append(conn)

    def on_message(self, conn: Any, msg: Any) -> None:
        if self.echo:
            conn.send(msg)
        if self.on_message_hook is not None:
            self.on_message_hook(conn, msg)

    def on_close(self, conn: Any) -> None:
        with self.cond:
            self.closed.append(conn)
            self.cond.notify_all()

    def wait_closed(self, n: int = 1) -> List[Any]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.closed) >= n, DEFAULT_TIMEOUT), "no close"
            return list(self.closed)


@pytest.fixture
def echo():
    rec = Recorder(echo=True)
    with ServerThread(WsServer(rec, max_message_size=4 * 1024 * 1024)) as st:
        st.rec = rec
        yield st


def test_echo_text_binary_large_and_fragmented(echo):
    with connect("ws://127.0.0.1:%d/x" % echo.port, subprotocols=["nope", "chat"]) as conn:
        assert conn.subprotocol == "chat"
        assert conn.response_headers.get("Upgrade").lower() == "websocket"
        assert conn.extension is not None  # permessage-deflate agreed with our server
        conn.send("héllo")
        assert conn.recv(10) == "héllo"
        conn.send(b"\x00\xff")
        assert conn.recv(10) == b"\x00\xff"
        big = os.urandom(1024 * 1024)
        conn.send(big)
        assert conn.recv(30) == big
        conn.send("frag" * 1000, fragment_size=100)
        assert conn.recv(10) == "frag" * 1000
    server_conn = echo.rec.wait_closed()[0]
    assert server_conn.close_code == 1000


def test_server_fragments_and_compression_are_reassembled(echo):
    echo.rec.on_message_hook = lambda c, m: c.send("z" * 5000, fragment_size=64)
    with connect("ws://127.0.0.1:%d/" % echo.port) as conn:
        conn.send("go")
        assert conn.recv(10) == "go"
        assert conn.recv(10) == "z" * 5000


def test_without_compression_nothing_is_offered(echo):
    with connect("ws://127.0.0.1:%d/" % echo.port, compression=False) as conn:
        assert conn.extension is None and "Sec-WebSocket-Extensions" not in conn.response_headers
        conn.send("x" * 500)
        assert conn.recv(10) == "x" * 500


def test_recv_timeout_keeps_the_connection_usable(echo):
    with connect("ws://127.0.0.1:%d/" % echo.port) as conn:
        with pytest.raises(TimeoutError):
            conn.recv(timeout=0.05)
        conn.send("still here")
        assert conn.recv(10) == "still here"


def test_ping_gets_a_pong(echo):
    with connect("ws://127.0.0.1:%d/" % echo.port) as conn:
        conn.ping(b"p1")
        conn.send("after")
        assert conn.recv(10) == "after"
        assert list(conn.pongs) == [b"p1"]


def test_server_close_raises_connection_closed_with_code_and_reason(echo):
    echo.rec.on_message_hook = lambda c, m: c.close(4001, "go away")
    conn = connect("ws://127.0.0.1:%d/" % echo.port)
    conn.send("bye")
    assert conn.recv(10) == "bye"
    with pytest.raises(ConnectionClosed) as info:
        conn.recv(10)
    assert (info.value.code, info.value.reason, info.value.ok) == (4001, "go away", False)
    assert (conn.close_code, conn.close_reason) == (4001, "go away")
    with pytest.raises(ConnectionClosed):
        conn.send("late")
    conn.close()  # nothing left to do, and no error


def test_iteration_ends_at_a_normal_close(echo):
    def burst(c, m):
        for i in range(3):
            c.send("m%d" % i)
        c.close()
    echo.rec.on_message_hook = burst
    with connect("ws://127.0.0.1:%d/" % echo.port) as conn:
        conn.send("start")
        assert list(conn) == ["start", "m0", "m1", "m2"]
        assert conn.close_code == 1000


def test_client_close_completes_the_handshake(echo):
    conn = connect("ws://127.0.0.1:%d/" % echo.port)
    conn.close(4002, "done here")
    server_conn = echo.rec.wait_closed()[0]
    assert (server_conn.close_code, server_conn.close_reason) == (4002, "done here")
    assert conn.close_code == 4002 and not conn.is_open
    with pytest.raises(ConnectionClosed):
        conn.recv(1)


def test_message_size_limit_fails_with_1009(echo):
    with connect("ws://127.0.0.1:%d/" % echo.port, max_message_size=100, compression=False) as conn:
        conn.send("y" * 101)
        with pytest.raises(ProtocolError) as info:
            conn.recv(10)
        assert info.value.code == 1009


# -- wss ------------------------------------------------------------------------------------------
@pytest.fixture
def tls_echo():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERTFILE, KEYFILE)
    with ServerThread(WsServer(Recorder(echo=True)), ssl_context=context) as st:
        yield st


def test_wss_with_a_verified_certificate(tls_echo):
    context = ssl.create_default_context(cafile=CERTFILE)
    with connect("wss://localhost:%d/" % tls_echo.port, ssl_context=context) as conn:
        conn.send("secret")
        assert conn.recv(10) == "secret"
        big = os.urandom(300000)
        conn.send(big)
        assert conn.recv(30) == big


def test_wss_refuses_an_unknown_certificate(tls_echo):
    with pytest.raises(ssl.SSLCertVerificationError):
        connect("wss://localhost:%d/" % tls_echo.port)  # the system CAs do not know our test CA


# -- deliberately broken servers -------------------------------------------------------------------
class RawServer:
    """One connection on a raw socket, scripted by ``script(sock, key)`` on a thread."""

    def __init__(self, script: Callable[[socket.socket, str], Any]) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.received = b""
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RawServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.listener.close()
        self.thread.join(10)

    def _run(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        with sock:
            sock.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                head += chunk
            key = ""
            for line in head.decode().split("\r\n"):
                if line.lower().startswith("sec-websocket-key:"):
                    key = line.split(":", 1)[1].strip()
            try:
                self.script(sock, key)
            except OSError:
                pass
            finally:
                self.done.set()


def upgrade(key: str, *extra: str) -> bytes:
    lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Accept: " + accept_key(key)] + list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_until_eof(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


@pytest.mark.parametrize("answer, needle", [
    (lambda key: b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno such chat room\nsecond line",
     "HTTP 404 Not Found: no such chat room"),
    (lambda key: upgrade("wrong-key-wrong-key-wro="), "wrong Sec-WebSocket-Accept"),
    (lambda key: upgrade(key, "Sec-WebSocket-Extensions: permessage-foo"), "'permessage-foo', which was not offered"),
    (lambda key: upgrade(key, "Sec-WebSocket-Protocol: v9"), "subprotocol 'v9', which was not offered"),
    (lambda key: b"SSH-2.0-OpenSSH\r\n\r\n", "did not answer with HTTP"),
])
def test_bad_handshakes_get_clear_errors(answer, needle):
    def script(sock, key):
        sock.sendall(answer(key))
        read_until_eof(sock)
    with RawServer(script) as server:
        with pytest.raises(HandshakeError, match=needle):
            connect("ws://127.0.0.1:%d/" % server.port, subprotocols=["v1"], timeout=10)


def test_refusal_closed_without_a_body_line_end():
    def script(sock, key):
        sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\n\r\nbusy")
    with RawServer(script) as server:
        with pytest.raises(HandshakeError, match="HTTP 503 Service Unavailable: busy"):
            connect("ws://127.0.0.1:%d/" % server.port)


def test_refusal_without_a_body_on_a_kept_alive_connection():
    def script(sock, key):
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n")
        read_until_eof(sock)
    with RawServer(script) as server:
        with pytest.raises(HandshakeError, match="HTTP 400 Bad Request$"):
            connect("ws://127.0.0.1:%d/" % server.port, timeout=0.5)


def test_chunked_refusal_quotes_the_body_not_the_chunk_size():
    hs = ClientHandshake(parse_url("ws://h/"))
    hs.feed(b"HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n")
    with pytest.raises(HandshakeError, match="429 Too Many Requests: slow down, please$"):
        hs.feed(b"slow down, please\r\n0\r\n\r\n")


def test_handshake_that_never_ends_times_out():
    def script(sock, key):
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")
        read_until_eof(sock)
    with RawServer(script) as server:
        with pytest.raises(TimeoutError, match="handshake"):
            connect("ws://127.0.0.1:%d/" % server.port, timeout=0.5)


def test_masked_server_frame_is_a_protocol_error():
    got: List[bytes] = []

    def script(sock, key):
        sock.sendall(upgrade(key) + encode_frame(OP_TEXT, b"masked!", mask=b"\x01\x02\x03\x04"))
        got.append(read_until_eof_or_close(sock))
    with RawServer(script) as server:
        conn = connect("ws://127.0.0.1:%d/" % server.port, timeout=5)
        with pytest.raises(ProtocolError) as info:
            conn.recv(5)
        assert info.value.code == 1002 and "server frame masked" in str(info.value)
        server.done.wait(10)
    assert FrameParser().feed(got[0])[0].__class__ is Close


def read_until_eof_or_close(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        data += chunk
        if not chunk or FrameParser().feed(data):
            return data


def test_server_ping_is_answered_with_a_masked_pong():
    answers: List[Any] = []

    def script(sock, key):
        sock.sendall(upgrade(key) + encode_frame(OP_PING, b"are you there") + encode_frame(OP_TEXT, b"after"))
        parser = FrameParser(require_mask=True)
        events: List[Any] = []
        while not events:
            events = parser.feed(sock.recv(4096))
        answers.extend(events)
        sock.sendall(encode_frame(OP_CLOSE, encode_close_payload(1000, "")))
        read_until_eof(sock)
    with RawServer(script) as server:
        with connect("ws://127.0.0.1:%d/" % server.port, timeout=5) as conn:
            assert conn.recv(5) == "after"
            with pytest.raises(ConnectionClosed) as info:
                conn.recv(5)
            assert info.value.ok
    assert answers == [Pong(b"are you there")]


def test_server_that_stops_reading_cannot_block_send():
    stop = threading.Event()

    def script(sock, key):
        sock.sendall(upgrade(key))
        stop.wait(20)  # never reads again
    with RawServer(script) as server:
        conn = connect("ws://127.0.0.1:%d/" % server.port, timeout=0.5, compression=False)
        with pytest.raises(TimeoutError, match="did not read"):
            for _ in range(200):  # far more than the socket buffers hold
                conn.send(b"x" * 1024 * 1024)
        assert conn.close_code == 1006 and not conn.is_open
        stop.set()


def test_dropped_connection_is_1006():
    def script(sock, key):
        sock.sendall(upgrade(key) + encode_frame(OP_TEXT, b"last words"))
    with RawServer(script) as server:
        conn = connect("ws://127.0.0.1:%d/" % server.port, timeout=5)
        assert conn.recv(5) == "last words"
        with pytest.raises(ConnectionClosed) as info:
            conn.recv(5)
        assert info.value.code == 1006


# -- connect_async on the server's loop ------------------------------------------------------------------
class Probe(MessageComponent):
    def __init__(self, loop: Loop, on_open_send: Any = None) -> None:
        self.loop = loop
        self.events: List[Any] = []
        self.on_open_send = on_open_send

    def on_open(self, conn: Any) -> None:
        self.events.append(("open", conn.subprotocol))
        if self.on_open_send is not None:
            conn.send(self.on_open_send)

    def on_message(self, conn: Any, msg: Any) -> None:
        self.events.append(("message", msg))
        conn.close(1000, "thanks")

    def on_close(self, conn: Any) -> None:
        self.events.append(("close", conn.close_code))
        self.loop.stop()

    def on_error(self, conn: Any, exc: BaseException) -> None:
        self.events.append(("error", exc))
        if not conn.is_open:
            self.loop.stop()


def run_loop(loop: Loop, limit: float = 20) -> None:
    guard = loop.call_later(limit, loop.stop)
    loop.run()
    guard.cancel()


def test_connect_async_relays_on_one_loop_without_threads():
    loop = Loop()
    server_rec = Recorder(echo=True)
    server = IoServer(WsServer(server_rec), "127.0.0.1", 0, loop=loop)
    probe = Probe(loop, on_open_send="ping through the loop " * 20)
    conn = connect_async(loop, "ws://127.0.0.1:%d/" % server.port, probe, subprotocols=["chat"])
    run_loop(loop)
    server.close()
    loop.close()
    assert probe.events == [("open", "chat"), ("message", "ping through the loop " * 20), ("close", 1000)]
    assert conn.extension is not None and server_rec.opened[0].close_reason == "thanks"


def test_connect_async_reports_a_refused_handshake_to_on_error():
    def script(sock, key):
        sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nlogin")
        read_until_eof(sock)
    with RawServer(script) as raw:
        loop = Loop()
        probe = Probe(loop)
        connect_async(loop, "ws://127.0.0.1:%d/" % raw.port, probe)
        run_loop(loop)
        loop.close()
    assert len(probe.events) == 1 and probe.events[0][0] == "error"
    assert isinstance(probe.events[0][1], HandshakeError) and probe.events[0][1].status == 401


def test_connect_async_wss_and_timeout():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERTFILE, KEYFILE)
    loop = Loop()
    server = IoServer(WsServer(Recorder(echo=True)), "127.0.0.1", 0, loop=loop, ssl_context=context)
    probe = Probe(loop, on_open_send=b"\x01\x02")
    connect_async(loop, "wss://localhost:%d/" % server.port, probe,
                  ssl_context=ssl.create_default_context(cafile=CERTFILE))
    run_loop(loop)
    assert probe.events == [("open", None), ("message", b"\x01\x02"), ("close", 1000)]

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts TCP, never answers the upgrade
    probe = Probe(loop)
    connect_async(loop, "ws://127.0.0.1:%d/" % silent.getsockname()[1], probe, timeout=0.3)
    run_loop(loop)
    silent.close()
    server.close()
    loop.close()
    assert len(probe.events) == 1 and isinstance(probe.events[0][1], TimeoutError)


# -- the command line ----------------------------------------------------------------------------------
def run_cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ratchet_sel", "client"] + list(args), input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, timeout=40)


def test_format_message():
    assert format_message("text") == "text"
    assert format_message(b"\x00\xab") == "[binary 2 bytes] 00ab"


def test_cli_sends_stdin_lines_and_prints_replies(echo):
    echo.rec.on_message_hook = lambda c, m: c.send(b"\xbe\xef") if m == "bin" else None
    result = run_cli("ws://127.0.0.1:%d/" % echo.port, "--count", "4", "--subprotocol", "chat",
                     "--header", "X-Test: 1", stdin=b"hello\nbin\nworld\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == ["hello", "bin", "[binary 2 bytes] beef", "world"]
    server_conn = echo.rec.wait_closed()[0]
    assert server_conn.close_code == 1000 and server_conn.request.headers.get("X-Test") == "1"


def test_cli_reports_an_abnormal_close(echo):
    echo.rec.on_message_hook = lambda c, m: c.close(4003, "forbidden word")
    result = run_cli("ws://127.0.0.1:%d/" % echo.port, "--no-compression", stdin=b"bad\n")
    assert result.returncode == 1
    assert "4003" in result.stderr.decode() and "forbidden word" in result.stderr.decode()


@pytest.mark.parametrize("code, reason, status", [(1000, "done", 0), (1001, "going away", 0), (4000, "", 1)])
def test_cli_prints_the_close_code_and_reason_and_exits_by_it(echo, code, reason, status):
    echo.rec.on_message_hook = lambda c, m: c.close(code, reason)
    result = run_cli("ws://127.0.0.1:%d/" % echo.port, stdin=b"close please\n")
    assert result.returncode == status, result.stderr
    expected = "connection closed with code %d%s" % (code, ": " + reason if reason else "")
    assert expected in result.stderr.decode().splitlines()


def test_cli_help_documents_the_exit_statuses():
    result = run_cli("--help")
    out = result.stdout.decode()
    assert result.returncode == 0 and "exit status:" in out and "1005" in out and "130" in out


def test_cli_says_the_server_is_not_speaking_tls(echo):
    result = run_cli("wss://127.0.0.1:%d/" % echo.port, "--insecure")
    err = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in err
    assert "error: cannot connect to 127.0.0.1:%d: the server is not speaking TLS" % echo.port in err
    assert "WRONG_VERSION_NUMBER" not in err


def test_connect_errors_name_the_address_and_keep_their_type(echo):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(ConnectionRefusedError) as info:
        connect("ws://127.0.0.1:%d/" % port, timeout=DEFAULT_TIMEOUT)
    assert str(info.value) == "cannot connect to 127.0.0.1:%d: Connection refused" % port
    assert info.value.errno is not None
    with pytest.raises(ssl.SSLError) as tls:
        connect("wss://127.0.0.1:%d/" % echo.port, timeout=DEFAULT_TIMEOUT, ssl_context=ssl._create_unverified_context())
    assert "cannot connect to 127.0.0.1:%d: the server is not speaking TLS" % echo.port in str(tls.value)


def test_cli_ctrl_c_closes_with_1000(echo):
    proc = subprocess.Popen([sys.executable, "-m", "ratchet_sel", "client", "ws://127.0.0.1:%d/" % echo.port],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    heard = threading.Event()
    echo.rec.on_message_hook = lambda c, m: heard.set()
    try:
        proc.stdin.write(b"here\n")
        proc.stdin.flush()
        assert heard.wait(DEFAULT_TIMEOUT)  # the client is open, its loop runs with its SIGINT handler
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert echo.rec.wait_closed()[0].close_code == 1000
    finally:
        proc.kill()
        proc.communicate()


def test_cli_reports_a_failed_handshake():
    def script(sock, key):
        sock.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\norigin refused\n")
        read_until_eof(sock)
    with RawServer(script) as raw:
        result = run_cli("ws://127.0.0.1:%d/" % raw.port)
    assert result.returncode == 1 and "403 Forbidden: origin refused" in result.stderr.decode()


def test_cli_wss_with_cafile(tls_echo):
    result = run_cli("wss://localhost:%d/" % tls_echo.port, "--cafile", CERTFILE, "--count", "1", stdin=b"tls\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"tls\n"
    insecure = run_cli("wss://127.0.0.1:%d/" % tls_echo.port, "--insecure", "--count", "1", stdin=b"k\n")
    assert insecure.returncode == 0 and insecure.stdout == b"k\n"
