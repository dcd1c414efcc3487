"""App: routes with automatic WsServer and OriginCheck, host matching, and the example program."""

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading

import pytest
from support import recv_until_eof
from wsclient import WsClient, http_exchange, upgrade_request

from ratchet_sel import (App, HealthCheck, HttpServer, IpBlackList, MessageComponent, OriginCheck, Responder,
                         Router, StaticFiles, WsServer)
from ratchet_sel.app import speaks_http
from ratchet_sel.server.flash import POLICY_REQUEST
from ratchet_sel.session import MemorySessionHandler, SessionProvider

pytestmark = pytest.mark.timeout(60)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"


class Echo(MessageComponent):
    """Echoes; greets with the route's parameters; records opens and closes."""

    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def on_open(self, conn):
        with self.cond:
            self.events.append(("open", conn))
        conn.send("params %s from %s" % (sorted(conn.request.params.items()), conn.remote_address))

    def on_message(self, conn, msg):
        conn.send(msg)

    def on_close(self, conn):
        with self.cond:
            self.events.append(("close", conn))
            self.cond.notify_all()

    def wait_closed(self, n):
        with self.cond:
            assert self.cond.wait_for(lambda: sum(e[0] == "close" for e in self.events) >= n, 10)


class Running:
    """Runs an App's loop in a thread for the duration of a ``with`` block."""

    def __init__(self, app):
        self.app = app
        self.thread = threading.Thread(target=app.loop.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.app

    def __exit__(self, *exc):
        done = threading.Event()

        def stop():
            self.app.server.close()
            if self.app.flash_server is not None:
                self.app.flash_server.close()
            self.app.loop.stop()
            done.set()

        self.app.loop.call_soon_threadsafe(stop)
        assert done.wait(10)
        self.thread.join(10)
        self.app.loop.close()


def origin(port, host=HOST):
    return ("Origin", "http://%s:%d" % (host, port))


def test_speaks_http():
    assert speaks_http(WsServer(Echo())) and speaks_http(Responder(str)) and speaks_http(Router())
    assert speaks_http(OriginCheck(WsServer(Echo()), ["h"]))
    assert speaks_http(HttpServer(Echo()))
    assert not speaks_http(Echo()) and not speaks_http(SessionProvider(Echo(), MemorySessionHandler()))
    assert not speaks_http(IpBlackList(Echo()))


def test_routes_wrap_and_check_origins():
    echo, open_echo = Echo(), Echo()
    app = App(HOST, 0)
    decorated = app.route("/echo/{room}", echo)
    assert isinstance(decorated, OriginCheck) and isinstance(decorated.component, WsServer)
    assert decorated.allowed_origins == [HOST]
    assert isinstance(app.route("/open", open_echo, allowed_origins="*"), WsServer)
    assert isinstance(app.route("/list", Echo(), allowed_origins=["*"]), WsServer)
    with Running(app):
        port = app.port
        with WsClient(port, "/echo/lobby", extra=[origin(port)]) as client:
            assert client.status == 101
            assert client.recv_message() == "params [('room', 'lobby')] from 127.0.0.1"
            client.send(b"\x00bin")
            assert client.recv_message() == b"\x00bin"
            client.close()
        for headers in ([], [("Origin", "http://evil.example")]):
            status, _, body = http_exchange(port, upgrade_request("/echo/x", extra=headers))
            assert status == 403 and body.startswith(b"Forbidden")
        with WsClient(port, "/open") as client:  # "*": no Origin needed
            assert client.recv_message().startswith("params []")
            client.close()
        status, headers, _ = http_exchange(port, upgrade_request("/open").replace(b"GET", b"PUT", 1))
        assert status == 405 and headers["allow"] == "GET, HEAD"
        assert http_exchange(port, upgrade_request("/nope"))[0] == 404
        echo.wait_closed(1)
        open_echo.wait_closed(1)
    assert [kind for kind, _ in echo.events] == ["open", "close"]


def test_websocket_servers_made_by_app_get_keepalive_pings():
    app = App(HOST, 0)
    quiet = App(HOST, 0, loop=app.loop, keepalive=None)
    try:
        assert app.route("/made", Echo()).component.keepalive_interval == 30.0
        own = WsServer(Echo())
        assert app.route("/own", own, allowed_origins="*") is own and own.keepalive_interval is None
        assert quiet.route("/quiet", Echo(), allowed_origins="*").keepalive_interval is None
    finally:
        app.server.close()
        quiet.server.close()
        app.loop.close()


def test_routes_answer_only_for_their_host(tmp_path):
    (tmp_path / "a.txt").write_text("static a")
    app = App("app.example", 0)
    app.route("/ws", Echo())
    app.route("/other", Echo(), http_host=HOST, allowed_origins=["http://%s" % HOST])
    app.route("/files/{path:.*}", StaticFiles(str(tmp_path), prefix="/files/"), allowed_origins="*")
    with Running(app):
        port = app.port
        assert http_exchange(port, upgrade_request("/ws", extra=[origin(port, "app.example")]))[0] == 404
        with WsClient(port, "/other", extra=[("Origin", "http://%s" % HOST)]) as client:
            assert client.status == 101
            client.close()
        raw = b"GET /files/a.txt HTTP/1.1\r\nHost: app.example:%d\r\n\r\n" % port
        assert http_exchange(port, raw)[2] == b"static a"
        assert http_exchange(port, raw.replace(b"app.example", b"other.example"))[0] == 404


def test_a_health_route_with_http_host_star_answers_any_host_the_others_keep_their_host():
    app = App("app.example", 0)
    app.route("/ws", Echo())
    app.route("/healthz", HealthCheck(), allowed_origins="*", http_host="*")
    app.route("/strict", HealthCheck(), allowed_origins="*")          # the App's host only
    with Running(app):
        port = app.port
        for host in ("10.0.0.5", "10.0.0.5:%d" % port, "127.0.0.1", "[::1]:80", "app.example", "lb.internal"):
            status, _, body = http_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
            assert (status, body) == (200, b"ok\n"), host
        assert http_exchange(port, b"GET /healthz HTTP/1.0\r\n\r\n")[:3:2] == (200, b"ok\n")   # no Host
        assert http_exchange(port, b"GET /strict HTTP/1.1\r\nHost: 10.0.0.5\r\n\r\n")[0] == 404
        assert http_exchange(port, b"GET /strict HTTP/1.1\r\nHost: app.example\r\n\r\n")[0] == 200
        assert http_exchange(port, upgrade_request("/ws", extra=[origin(port, "app.example")]))[0] == 404


def test_trusted_proxies_and_flash_policy():
    app = App(HOST, 0, trusted_proxies=["127.0.0.1"], flash_port=0)
    echo = Echo()
    app.route("/ws", echo, allowed_origins=["example.com", "https://www.example.com:8443"])
    policy = app.flash_policy.render_policy()
    for domain, ports in ((HOST, "80"), (HOST, str(app.port)), ("example.com", str(app.port)),
                          ("www.example.com", str(app.port))):
        assert '<allow-access-from domain="%s" to-ports="%s"' % (domain, ports) in policy
    with Running(app):
        extra = [("Origin", "https://www.example.com:8443"), ("X-Forwarded-For", "198.51.100.4")]
        with WsClient(app.port, "/ws", extra=extra) as client:
            assert client.recv_message() == "params [] from 198.51.100.4"
            client.close()
        with WsClient(app.port, "/ws", extra=[("Origin", "https://www.example.com")]) as client:
            assert client.status == 403
        with socket.create_connection((HOST, app.flash_server.port), timeout=10) as sock:
            sock.sendall(POLICY_REQUEST)
            assert recv_until_eof(sock) == app.flash_policy.policy_bytes()


# -- the example program: App.run, routes, OriginCheck and a Flask session -------------------------------
@pytest.fixture
def example():
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "examples", "app_routes.py"), "--port", "0",
                             "--http-host", HOST, "--secret-key", "example-secret"],
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            match = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
            if match:
                break
        else:
            raise AssertionError("the example did not log its URL")
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
        yield proc, int(match.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_example_program(example):
    proc, port = example
    status, headers, body = http_exchange(port, b"GET /?login=alice HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == 303
    cookie = headers["set-cookie"].split(";")[0]
    status, _, body = http_exchange(port, ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: %s\r\n\r\n"
                                           % cookie).encode())
    assert status == 200 and b"Logged in as <b>alice</b>" in body

    extra = [origin(port), ("Cookie", cookie)]
    alice = WsClient(port, "/room/lobby", extra=extra)
    assert alice.recv_message() == "welcome to lobby, alice (1 here)"
    bob_cookie = http_exchange(port, b"GET /?login=bob HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")[1]["set-cookie"]
    bob = WsClient(port, "/room/lobby", extra=[origin(port), ("Cookie", bob_cookie.split(";")[0])])
    assert bob.recv_message() == "welcome to lobby, bob (2 here)"
    assert alice.recv_message() == "bob joined"
    bob.send("hi all")
    assert alice.recv_message() == bob.recv_message() == "bob: hi all"

    forged = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    with WsClient(port, "/room/lobby", extra=[origin(port), ("Cookie", forged)]) as stranger:
        close = stranger.expect_close()
        assert (close.code, close.reason) == (1008, "log in first")
    with WsClient(port, "/room/lobby", extra=[("Origin", "http://evil.example"), ("Cookie", cookie)]) as evil:
        assert evil.status == 403

    proc.send_signal(signal.SIGTERM)
    for client in (alice, bob):
        assert client.expect_close().code == 1001
        client.send_frame(0x8, struct.pack("!H", 1001))
        client.shutdown()
    assert proc.wait(10) == 0


def test_example_answers_only_for_its_host_name(example):
    _, port = example
    assert http_exchange(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)[0] == 200
    assert http_exchange(port, b"GET / HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % port)[0] == 404
