"""WsServer over real sockets on 127.0.0.1: handshake, messages, closing, errors."""

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading

import pytest
from support import ServerThread
from wsclient import WsClient, http_exchange, upgrade_request

from ratchet_sel import HttpServer, MessageComponent, WsServer, broadcast
from ratchet_sel.http import Response
from ratchet_sel.websocket.rfc6455 import OP_BINARY, OP_CONTINUATION, OP_TEXT, Close, Pong, encode_frame

pytestmark = pytest.mark.timeout(60)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class App(MessageComponent):
    """Echoes, and records what happened, for tests to wait on."""

    def __init__(self):
        self.events = []
        self.cond = threading.Condition()
        self.conns = []
        self.raise_on = None

    def _record(self, *event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=10):
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.events), timeout), self.events

    def count(self, kind, conn=None):
        return sum(1 for e in self.events if e[0] == kind and (conn is None or e[1] is conn))

    def on_open(self, conn):
        self.conns.append(conn)
        self._record("open", conn)

    def on_message(self, conn, msg):
        self._record("message", conn, msg)
        if self.raise_on is not None and msg == self.raise_on:
            raise RuntimeError("boom")
        if msg == "close-me":
            conn.close(4001, "asked to")
        elif msg == "fragment-me":
            conn.send("x" * 10 + "y" * 10, fragment_size=10)
        else:
            conn.send(msg)

    def on_close(self, conn):
        self._record("close", conn, conn.close_code)

    def on_error(self, conn, exc):
        self._record("error", conn, exc)


@pytest.fixture
def app():
    return App()


@pytest.fixture
def server(app):
    with ServerThread(WsServer(app, max_message_size=100000, close_timeout=0.5, handshake_timeout=0.5)) as st:
        yield st


def test_echo_text_binary_and_large(server, app):
    with WsClient(server.port) as client:
        assert client.status == 101
        client.send("héllo ✓ 🚀")
        assert client.recv_message() == "héllo ✓ 🚀"
        client.send(bytes(range(256)))
        assert client.recv_message() == bytes(range(256))
        big = "z" * 70000
        client.send(big)
        assert client.recv_message() == big
        client.send(b"\x00" * 70000, fragment_size=1000)
        assert client.recv_message() == b"\x00" * 70000
        assert client.close().code == 1000
        assert client.at_eof()
    app.wait_for(lambda ev: any(e[0] == "close" for e in ev))
    conn = app.conns[0]
    assert app.count("open") == 1 and app.count("close") == 1
    assert conn.version == "rfc6455" and conn.close_code == 1000


def test_server_sends_fragmented_messages(server):
    with WsClient(server.port) as client:
        client.send("fragment-me")
        first = client.sock.recv(2)
        assert first[0] == OP_TEXT  # FIN clear: a first fragment
        client.parser.feed(first)
        assert client.recv_message() == "x" * 10 + "y" * 10


def test_ping_gets_pong_with_the_same_payload(server):
    with WsClient(server.port) as client:
        client.ping(b"are you there")
        assert client.recv() == Pong(b"are you there")


def test_bytes_after_the_handshake_are_not_lost(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    frame = b"\x81\x82" + b"\x00\x00\x00\x00" + b"hi"
    sock.sendall(upgrade_request() + frame)
    data = b""
    while not data.endswith(b"\x81\x02hi"):
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    assert data.startswith(b"HTTP/1.1 101 ")
    sock.close()


def test_request_attributes(server, app):
    with WsClient(server.port, "/room/1?name=ann&x=1", extra=[("Cookie", "sid=abc; theme=dark"),
                                                               ("X-Custom", "yes")]) as client:
        client.send("ping")
        client.recv_message()
    conn = app.conns[0]
    req = conn.request
    assert (req.method, req.path, req.query) == ("GET", "/room/1", {"name": "ann", "x": "1"})
    assert req.headers["x-custom"] == "yes" and req.cookies == {"sid": "abc", "theme": "dark"}
    assert conn.remote_address == "127.0.0.1" and conn.resource_id > 0
    conn.nickname = "ann"  # user attributes are welcome
    assert app.events[1][1] is conn  # the same object in every callback


@pytest.mark.parametrize("version,name", [("13", "rfc6455"), ("8", "hybi-10"), ("7", "hybi-10")])
def test_versions_on_one_port(server, app, version, name):
    with WsClient(server.port, version=version) as client:
        client.send("v")
        assert client.recv_message() == "v"
    assert app.conns[0].version == name


def test_client_close_is_echoed_and_tcp_closed(server, app):
    with WsClient(server.port) as client:
        assert client.close(4321, "bye") == Close(4321, "")
        assert client.at_eof()
    app.wait_for(lambda ev: ev[-1][0] == "close")
    assert app.conns[0].close_code == 4321 and app.conns[0].close_reason == "bye"


def test_server_initiated_close_waits_for_the_peer(server, app):
    with WsClient(server.port) as client:
        client.send("close-me")
        assert client.expect_close() == Close(4001, "asked to")
        client.send_frame(0x8, struct.pack("!H", 4001))
        assert client.at_eof()
    app.wait_for(lambda ev: ev[-1][0] == "close")
    assert app.count("close") == 1


def test_close_timeout_drops_a_silent_peer(server, app):
    with WsClient(server.port) as client:
        client.send("close-me")
        assert client.expect_close().code == 4001
        assert client.at_eof()  # after close_timeout (0.5 s), without our answer
    app.wait_for(lambda ev: ev[-1][0] == "close")


@pytest.mark.parametrize("frames,code", [
    ([(OP_TEXT, b"\xff\xfe", True)], 1007),
    ([(0x3, b"", True)], 1002),
    ([(OP_CONTINUATION, b"x", True)], 1002),
    ([(OP_BINARY, b"x" * 100001, True)], 1009),
    ([(OP_BINARY, b"x" * 60000, False), (OP_CONTINUATION, b"x" * 60000, True)], 1009),
])
def test_protocol_violations_close_with_a_code(server, app, frames, code):
    with WsClient(server.port) as client:
        for opcode, payload, fin in frames:
            client.send_frame(opcode, payload, fin=fin)
        close = client.expect_close()
        assert close.code == code
        assert client.at_eof()
    app.wait_for(lambda ev: ev[-1][0] == "close")
    assert app.count("message") == 0


def test_unmasked_frame_is_refused(server):
    with WsClient(server.port) as client:
        client.send_raw(b"\x81\x02hi")
        assert client.expect_close().code == 1002


def test_peer_reset_gives_one_on_close(server, app):
    client = WsClient(server.port)
    client.send("hello")
    client.recv_message()
    client.send_raw(b"\x82\xfe\x10\x00")  # half a frame header, then reset
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sock.close()
    app.wait_for(lambda ev: ev[-1][0] == "close")
    assert app.count("close") == 1 and app.conns[0].close_code == 1006


def test_exception_in_app_goes_to_on_error_and_others_go_on(server, app):
    app.raise_on = "explode"
    with WsClient(server.port) as bad, WsClient(server.port) as good:
        bad.send("explode")
        app.wait_for(lambda ev: any(e[0] == "error" for e in ev))
        good.send("still fine")
        assert good.recv_message() == "still fine"
        bad.send("me too")
        assert bad.recv_message() == "me too"
    error = [e for e in app.events if e[0] == "error"][0]
    assert isinstance(error[2], RuntimeError)


def test_subprotocols():
    class Proto(App):
        subprotocols = ["chat.v2", "chat.v1"]

    proto = Proto()
    with ServerThread(WsServer(proto)) as st:
        with WsClient(st.port, extra=[("Sec-WebSocket-Protocol", "chat.v1, chat.v2")]) as client:
            assert client.headers["sec-websocket-protocol"] == "chat.v1"
            client.send("a")
            client.recv_message()
        assert proto.conns[0].subprotocol == "chat.v1"
        with WsClient(st.port, extra=[("Sec-WebSocket-Protocol", "other")]) as client:
            assert client.status == 101 and "sec-websocket-protocol" not in client.headers
    with ServerThread(WsServer(Proto(), strict_subprotocols=True)) as st:
        with WsClient(st.port, extra=[("Sec-WebSocket-Protocol", "other")]) as client:
            assert client.status == 400


@pytest.mark.parametrize("request_bytes,status", [
    (upgrade_request(version="12"), 426),
    (upgrade_request(key="short"), 400),
    (upgrade_request().replace(b"GET", b"PUT"), 405),
    (b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
    (b"NONSENSE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 426),
])
def test_bad_handshakes_get_a_status_with_a_reason(server, app, request_bytes, status):
    got, headers, body = http_exchange(server.port, request_bytes)
    assert got == status
    assert body.strip()
    if status == 426:
        assert headers["sec-websocket-version"] == "13, 8, 7"
    assert app.count("open") == 0


def test_handshake_timeout_gives_408(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n")
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 408 ")


def test_disable_version(app):
    ws = WsServer(app)
    ws.disable_version("hybi-10")
    with ServerThread(ws) as st:
        status, headers, _ = http_exchange(st.port, upgrade_request(version="8"))
        assert status == 426 and headers["sec-websocket-version"] == "13"
        with WsClient(st.port) as client:
            assert client.status == 101


def test_under_http_server_with_a_page_handler(app):
    def page(request):
        return Response(200, "page at " + request.path, {"Content-Type": "text/plain"})

    with ServerThread(HttpServer(WsServer(app, http_handler=page))) as st:
        status, _, body = http_exchange(st.port, b"GET /here HTTP/1.1\r\nHost: h\r\n\r\n")
        assert status == 200 and body == b"page at /here"
        with WsClient(st.port) as client:
            client.send("through HttpServer")
            assert client.recv_message() == "through HttpServer"
            client.close()
    app.wait_for(lambda ev: ev[-1][0] == "close")


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "under HttpServer"])
def test_an_exception_in_the_http_handler_answers_500_logged_once(app, wrapped, caplog):
    def page(request):
        if request.path == "/boom":
            raise KeyError("no such page in the database")
        return Response(200, "fine", {"Content-Type": "text/plain"})

    ws = WsServer(app, http_handler=page)
    with ServerThread(HttpServer(ws) if wrapped else ws) as st:
        with caplog.at_level("INFO", logger="ratchet_sel"):
            status, headers, body = http_exchange(st.port, b"GET /boom HTTP/1.1\r\nHost: h\r\n\r\n")
        assert status == 500 and b"Internal Server Error" in body   # then the server closed: EOF came
        assert http_exchange(st.port, b"GET /ok HTTP/1.1\r\nHost: h\r\n\r\n")[2] == b"fine"
    records = [r for r in caplog.records if "/boom" in r.getMessage() or "500" in r.getMessage()]
    assert len(records) == 1 and records[0].levelname == "ERROR", [r.getMessage() for r in records]
    assert "KeyError" in caplog.text


def test_broadcast_encodes_once_for_many(app):
    with ServerThread(WsServer(app)) as st:
        clients = [WsClient(st.port) for _ in range(5)]
        app.wait_for(lambda ev: sum(1 for e in ev if e[0] == "open") == 5)
        assert st.call(broadcast, list(app.conns), "to all", app.conns[0]) == 4
        for client in clients[1:]:
            assert client.recv_message() == "to all"
        for client in clients:
            client.shutdown()


def test_broadcast_queues_behind_pending_bytes_and_applies_the_write_limit(app):
    # Three receivers: one with nothing pending (written at once), one with a small
    # message pending (the broadcast queues behind it, in order), one past the write
    # limit (policy "drop": not counted, counted as dropped).
    with ServerThread(WsServer(app, write_limit=1000, slow_client_policy="drop")) as st:
        clients = [WsClient(st.port) for _ in range(3)]
        app.wait_for(lambda ev: sum(1 for e in ev if e[0] == "open") == 3)
        conns = []
        for i, client in enumerate(clients):  # which server connection is which client
            client.send("who %d" % i)
            assert client.recv_message() == "who %d" % i
            conns.append(next(e[1] for e in app.events if e[0] == "message" and e[2] == "who %d" % i))
        ready, behind, full = conns

        def fan_out():
            behind.send("first")   # corked until the end of this iteration: pending
            full.transport.send(encode_frame(OP_TEXT, b"y" * 5000))  # 5,000 bytes pending, past the limit
            return broadcast([ready, behind, full], "to all"), full.dropped_messages
        assert st.call(fan_out) == (2, 1)
        assert clients[0].recv_message() == "to all"
        assert [clients[1].recv_message(), clients[1].recv_message()] == ["first", "to all"]
        assert clients[2].recv_message() == "y" * 5000
        clients[2].send("after")     # the dropped broadcast never came: the next frame is the echo
        assert clients[2].recv_message() == "after"
        for client in clients:
            client.shutdown()


def test_shutdown_closes_websockets_with_1001(app):
    with ServerThread(WsServer(app)) as st:
        clients = [WsClient(st.port) for _ in range(3)]
        app.wait_for(lambda ev: sum(1 for e in ev if e[0] == "open") == 3)
        st.call(st.server.shutdown)
        for client in clients:
            assert client.expect_close().code == 1001
            client.send_frame(0x8, struct.pack("!H", 1001))
            assert client.at_eof()
            client.shutdown()
        app.wait_for(lambda ev: sum(1 for e in ev if e[0] == "close") == 3)


def _start_cli(*args):
    proc = subprocess.Popen([sys.executable, "-m", "ratchet_sel", *args, "--host", "127.0.0.1", "--port", "0"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        match = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
        if match:
            return proc, int(match.group(1))
    proc.kill()
    raise AssertionError("the server did not log its URL")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_echo_stops_on_signal_with_1001(signum):
    proc, port = _start_cli("echo")
    try:
        with WsClient(port) as client:
            client.send(b"\x01\x02")
            assert client.recv_message() == b"\x01\x02"
            proc.send_signal(signum)
            assert client.expect_close().code == 1001
            client.send_frame(0x8, struct.pack("!H", 1001))
            assert client.at_eof()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.stderr.close()


def test_cli_chat_serves_the_page_and_relays():
    proc, port = _start_cli("chat")
    try:
        status, headers, body = http_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b'id="log"' in body and b"new WebSocket" in body
        with WsClient(port) as a, WsClient(port, version="8") as b, WsClient(port) as c:
            a.send("hello from a")
            assert b.recv_message() == "hello from a"
            assert c.recv_message() == "hello from a"
            b.send(b"\x00binary")
            assert a.recv_message() == b"\x00binary"
            assert c.recv_message() == b"\x00binary"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.stderr.close()


def test_shutdown_answers_a_half_sent_handshake_with_503(app):
    with ServerThread(WsServer(app)) as st:
        with socket.create_connection(("127.0.0.1", st.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n")
            st.sync()
            st.call(st.server.shutdown)
            data = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    assert data.startswith(b"HTTP/1.1 503 ") and b"shutting down" in data


def test_peers_that_never_answer_the_close_are_one_log_line(app, caplog, monkeypatch):
    """A shutdown (or a broadcast close) meets thousands of peers that never send their close
    frame; their close timeouts fire together and must not write one line each (the soak's
    stopping worker wrote 2,500 lines and missed the master's deadline)."""
    from ratchet_sel.ops.ratelimit import RateLimitedLog
    from ratchet_sel.websocket import connection

    # A fresh limiter: another test's close timeout within the last 10 s must not hide the first line.
    monkeypatch.setattr(connection, "_close_timeout_log", RateLimitedLog(connection.log))
    with ServerThread(WsServer(app, close_timeout=0.2)) as st, \
            caplog.at_level("INFO", logger="ratchet_sel.websocket.connection"):
        clients = [WsClient(st.port) for _ in range(5)]
        app.wait_for(lambda ev: sum(e[0] == "open" for e in ev) == 5)
        for conn in list(app.conns):
            st.call(conn.close, 1001, "going away")
        for client in clients:              # read the server's close, never answer it
            assert client.expect_close().code == 1001
        app.wait_for(lambda ev: sum(e[0] == "close" for e in ev) == 5)
        for client in clients:
            client.sock.close()
    timeouts = [r for r in caplog.records if "no close frame from the peer" in r.getMessage()]
    assert len(timeouts) == 1, [r.getMessage() for r in timeouts]
