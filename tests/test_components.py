"""The components: OriginCheck, IpBlackList, TrustedProxies, FlashPolicy, StaticFiles, Responder.

Each one's accept and reject paths, and the stack's promise that a refused
connection never reaches the wrapped component (no on_open, no on_close).
"""

import os
import threading

import pytest
from support import Recorder, ServerThread, connect, recv_exactly, recv_until_eof
from wsclient import WsClient, http_exchange, read_response, upgrade_request

from ratchet_sel import (FlashPolicy, HealthCheck, HttpServer, IpBlackList, MessageComponent, OriginCheck,
                         Responder, Router, StaticFiles, TrustedProxies, WsServer)
from ratchet_sel.server.addresses import parse_network, parse_networks
from ratchet_sel.server.flash import POLICY_REQUEST
from ratchet_sel.http import RequestParser, Response
from ratchet_sel.http.static import content_type_for
from ratchet_sel.server.proxy import client_address, forwarded_hops, parse_forwarded

pytestmark = pytest.mark.timeout(60)


class App(MessageComponent):
    """A WebSocket application that greets with its view of the connection and records events."""

    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def _record(self, kind, conn):
        with self.cond:
            self.events.append((kind, conn))
            self.cond.notify_all()

    def on_open(self, conn):
        self._record("open", conn)
        conn.send("hello %s" % conn.remote_address)

    def on_message(self, conn, msg):
        conn.send(msg)

    def on_close(self, conn):
        self._record("close", conn)

    def wait(self, predicate):
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.events), 10), self.events

    def kinds(self):
        with self.cond:
            return [kind for kind, _ in self.events]


def ws_request(path="/", headers=(), version="13"):
    return upgrade_request(path, version, extra=list(headers))


def parse(raw):
    return RequestParser().feed(raw)


# -- OriginCheck ----------------------------------------------------------------------------
def test_origin_rules():
    check = OriginCheck(App(), ["example.com", "https://secure.example:8443", "*.apps.example"])
    allowed = ["http://example.com", "https://EXAMPLE.com:9999", "https://secure.example:8443",
               "https://a.apps.example", "http://x.y.apps.example:81"]
    refused = [None, "null", "", "http://evil.com", "http://example.com.evil.com", "https://secure.example",
               "http://secure.example:8443", "https://apps.example", "example.com", "http://[::1",
               "http://example.com, http://evil.com"]
    assert all(check.is_allowed(origin) for origin in allowed)
    assert not any(check.is_allowed(origin) for origin in refused)
    assert OriginCheck(App(), ["https://h"]).is_allowed("https://h:443")  # default ports
    assert OriginCheck(App(), ["*"]).is_allowed(None)
    assert OriginCheck(App(), ["h"], allow_missing=True).is_allowed(None)
    assert check.allowed_origins[0] == "example.com"
    for bad in ("http://", "localhost:8080"):
        with pytest.raises(ValueError):
            OriginCheck(App(), [bad])
    assert OriginCheck(App(), ["::1"]).is_allowed("http://[::1]:8080")


@pytest.mark.parametrize("headers, version, accepted", [
    ([("Origin", "http://good.example:8080")], "13", True),
    ([("Origin", "http://evil.example")], "13", False),
    ([], "13", False),
    ([("Sec-WebSocket-Origin", "http://good.example")], "8", True),     # HyBi-07/08/10 name
    ([("Sec-WebSocket-Origin", "http://evil.example")], "8", False),
    ([("Origin", "http://evil.example"), ("Sec-WebSocket-Origin", "http://good.example")], "13", False),
])
def test_origin_check_live(headers, version, accepted):
    app = App()
    with ServerThread(HttpServer(OriginCheck(WsServer(app), ["good.example"]))) as st:
        if accepted:
            with WsClient(st.port, version=version, extra=headers) as client:
                assert client.status == 101 and client.recv_message() == "hello 127.0.0.1"
                client.close()
            app.wait(lambda ev: len(ev) == 2)
        else:
            status, _, body = http_exchange(st.port, ws_request(headers=headers, version=version))
            assert status == 403 and body.startswith(b"Forbidden: ")
            assert (b"Origin header is required" in body) == (not headers)
            assert st.call(app.kinds) == []


def test_origin_check_wrapping_the_application_answers_403_before_the_upgrade():
    app = App()
    with ServerThread(WsServer(OriginCheck(app, ["good.example"]))) as st:
        status, _, body = http_exchange(st.port, ws_request(headers=[("Origin", "http://evil.example")]))
        assert status == 403 and b"evil.example" in body
        with WsClient(st.port, extra=[("Origin", "http://good.example")]) as client:
            assert client.recv_message() == "hello 127.0.0.1"
            client.close()
        app.wait(lambda ev: len(ev) == 2)
    assert app.kinds() == ["open", "close"]


class Opaque(MessageComponent):
    """A wrapper that is no ComponentDecorator: WsServer cannot see the guard behind it."""

    def __init__(self, component):
        self.component = component

    def on_open(self, conn):
        self.component.on_open(conn)

    def on_message(self, conn, msg):
        self.component.on_message(conn, msg)

    def on_close(self, conn):
        self.component.on_close(conn)


def test_a_guard_hidden_from_wsserver_closes_with_1008_and_says_why_once(caplog):
    app = App()
    with ServerThread(WsServer(Opaque(OriginCheck(app, ["good.example"])))) as st:
        for _ in range(2):
            with WsClient(st.port, extra=[("Origin", "http://evil.example")]) as client:
                assert client.status == 101
                close = client.expect_close()
                assert close.code == 1008 and "evil.example" in close.reason
    warnings = [r for r in caplog.records if "only after the upgrade" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    assert app.kinds() == []


# -- IpBlackList --------------------------------------------------------------------------------
def test_blacklist_entries():
    blacklist = IpBlackList(App())
    assert blacklist.block_address("203.0.113.9") is blacklist
    blacklist.block_address("198.51.100.0/24").block_address("2001:db8::1").block_address("unix-peer")
    assert blacklist.is_blocked("203.0.113.9") and blacklist.is_blocked("::ffff:203.0.113.9")
    assert blacklist.is_blocked("198.51.100.77") and blacklist.is_blocked("2001:DB8:0::1")
    assert blacklist.is_blocked("unix-peer")
    assert not blacklist.is_blocked("203.0.113.10") and not blacklist.is_blocked("garbage")
    assert blacklist.blocked_addresses() == ["203.0.113.9", "198.51.100.0/24", "2001:db8::1", "unix-peer"]
    blacklist.unblock_address("::ffff:203.0.113.9").unblock_address("198.51.100.0/24")
    blacklist.unblock_address("unix-peer").unblock_address("192.0.2.1")
    assert blacklist.blocked_addresses() == ["2001:db8::1"]
    assert not blacklist.is_blocked("203.0.113.9")


def test_address_parsing():
    assert str(parse_network("::ffff:10.0.0.0/104")) == "10.0.0.0/8"
    assert str(parse_network("10.1.2.3/8")) == "10.0.0.0/8"
    assert parse_network("10.0.0.0/x") is None and parse_network("host") is None
    with pytest.raises(ValueError, match="nope"):
        parse_networks(["127.0.0.1", "nope"])


def test_blacklist_refuses_before_the_application():
    app = App()
    blacklist = IpBlackList(HttpServer(WsServer(app)))
    with ServerThread(blacklist) as st:
        st.call(blacklist.block_address, "127.0.0.1")
        status, _, body = http_exchange(st.port, ws_request())
        assert status == 403 and body == b"Forbidden: address 127.0.0.1 is blocked\n"
        with connect(st.port) as sock:  # answered before the client says anything
            assert read_response(sock)[0] == 403
        st.call(blacklist.unblock_address, "127.0.0.1")
        with WsClient(st.port) as client:
            assert client.recv_message() == "hello 127.0.0.1"
            client.close()
        app.wait(lambda ev: len(ev) == 2)
    assert app.kinds() == ["open", "close"]


def test_blacklist_for_raw_protocols_just_closes():
    recorder = Recorder()
    blacklist = IpBlackList(recorder, http_answer=False).block_address("127.0.0.1")
    with ServerThread(blacklist) as st:
        with st.connect() as sock:
            sock.sendall(b"anything")
            assert recv_until_eof(sock) == b""
        st.sync()
    assert recorder.snapshot() == []


# -- TrustedProxies -----------------------------------------------------------------------------
TRUSTED = parse_networks(["127.0.0.1", "10.0.0.0/8"])


@pytest.mark.parametrize("peer, hops, expected", [
    ("127.0.0.1", ["203.0.113.5"], "203.0.113.5"),
    ("127.0.0.1", ["198.51.100.1", "203.0.113.5", "10.1.1.1"], "203.0.113.5"),  # right-most untrusted
    ("127.0.0.1", ["10.2.2.2", "10.1.1.1"], "10.2.2.2"),          # all trusted: the left-most
    ("192.0.2.9", ["203.0.113.5"], "192.0.2.9"),                  # not from a trusted proxy
    ("127.0.0.1", [], "127.0.0.1"),
    ("127.0.0.1", ["203.0.113.5", "unknown"], "127.0.0.1"),       # cannot see past "unknown"
    ("127.0.0.1", ["203.0.113.5:4711"], "203.0.113.5"),
    ("127.0.0.1", ["[2001:db8::17]:4711"], "2001:db8::17"),
    ("127.0.0.1", ["2001:db8::17"], "2001:db8::17"),
    ("::ffff:127.0.0.1", ["_hidden"], "::ffff:127.0.0.1"),
])
def test_client_address(peer, hops, expected):
    assert client_address(peer, hops, TRUSTED) == expected


def test_forwarded_header_parsing():
    value = 'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711", for="a,b;c=\\"d"'
    elements = parse_forwarded(value)
    assert elements[0] == {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}
    assert elements[1] == {"for": "[2001:db8:cafe::17]:4711"}
    assert elements[2] == {"for": 'a,b;c="d'}
    headers = parse(b"GET / HTTP/1.1\r\nHost: h\r\nForwarded: for=1.1.1.1\r\nForwarded: for=2.2.2.2\r\n"
                    b"X-Forwarded-For: 3.3.3.3, 4.4.4.4\r\nX-Forwarded-For: 5.5.5.5\r\n\r\n").headers
    assert forwarded_hops(headers, "Forwarded") == ["1.1.1.1", "2.2.2.2"]
    assert forwarded_hops(headers) == ["3.3.3.3", "4.4.4.4", "5.5.5.5"]
    with pytest.raises(ValueError):
        TrustedProxies(App(), ["127.0.0.1"], header="X-Real-IP")


def test_trusted_proxy_sets_remote_address_for_the_blacklist_and_the_app():
    app = App()
    blacklist = IpBlackList(WsServer(app)).block_address("203.0.113.7")
    with ServerThread(HttpServer(TrustedProxies(blacklist, ["127.0.0.1"]))) as st:
        status, _, body = http_exchange(st.port, ws_request(headers=[("X-Forwarded-For", "203.0.113.7")]))
        assert status == 403 and b"203.0.113.7 is blocked" in body
        with WsClient(st.port, extra=[("X-Forwarded-For", "203.0.113.7, 198.51.100.1")]) as client:
            assert client.recv_message() == "hello 198.51.100.1"
            client.close()
        app.wait(lambda ev: len(ev) == 2)
        conn = app.events[0][1]
        assert conn.transport.proxy_address == "127.0.0.1"


def test_untrusted_peer_cannot_forge_its_address():
    app = App()
    with ServerThread(HttpServer(TrustedProxies(WsServer(app), ["10.0.0.0/8"], header="Forwarded"))) as st:
        with WsClient(st.port, extra=[("Forwarded", "for=203.0.113.7")]) as client:
            assert client.recv_message() == "hello 127.0.0.1"
            client.close()
    with ServerThread(HttpServer(TrustedProxies(WsServer(app), ["127.0.0.1"], header="Forwarded"))) as st:
        with WsClient(st.port, extra=[("Forwarded", 'for="[2001:db8::1]:80";proto=https')]) as client:
            assert client.recv_message() == "hello 2001:db8::1"
            client.close()


# -- FlashPolicy -----------------------------------------------------------------------------------
def test_flash_policy_document():
    policy = FlashPolicy()
    policy.add_allowed_access("example.com", 8080).add_allowed_access("*.example.org", "80,443", secure=True)
    policy.add_allowed_access("*").set_site_control("master-only")
    xml = policy.render_policy()
    assert xml.startswith('<?xml version="1.0"?>\n<!DOCTYPE cross-domain-policy')
    assert '<site-control permitted-cross-domain-policies="master-only"/>' in xml
    assert '<allow-access-from domain="example.com" to-ports="8080" secure="false"/>' in xml
    assert '<allow-access-from domain="*.example.org" to-ports="80,443" secure="true"/>' in xml
    assert '<allow-access-from domain="*" to-ports="*" secure="false"/>' in xml
    assert policy.policy_bytes() == xml.encode() + b"\0"
    for domain, ports in (("bad domain", "80"), ('x"><evil', "80"), ("ok.com", "80;rm"), ("ok.com", "")):
        with pytest.raises(ValueError):
            policy.add_allowed_access(domain, ports)
    with pytest.raises(ValueError):
        policy.set_site_control("by-content-type")
    assert policy.clear_allowed_access().render_policy().count("allow-access-from") == 0


def test_flash_policy_server():
    policy = FlashPolicy(timeout=0.3).add_allowed_access("example.com", 8080)
    with ServerThread(policy) as st:
        with st.connect() as sock:
            sock.sendall(POLICY_REQUEST[:10])
            sock.sendall(POLICY_REQUEST[10:])
            assert recv_until_eof(sock) == policy.policy_bytes()
        with st.connect() as sock:
            sock.sendall(b"<policy-file-request/>junk\0")
            assert recv_until_eof(sock) == b""
        with st.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert recv_until_eof(sock) == b""
        with st.connect() as sock:  # says nothing: closed after the timeout
            assert recv_until_eof(sock) == b""


def test_flash_policy_shares_a_port_with_a_websocket_server():
    app = App()
    policy = FlashPolicy(HttpServer(WsServer(app))).add_allowed_access("example.com", "*")
    with ServerThread(policy) as st:
        with st.connect() as sock:
            sock.sendall(POLICY_REQUEST)
            assert recv_until_eof(sock).endswith(b"</cross-domain-policy>\n\0")
        with WsClient(st.port) as client:
            assert client.recv_message() == "hello 127.0.0.1"
            client.close()
        app.wait(lambda ev: len(ev) == 2)
        with st.connect():
            pass  # opened and closed silently: the application never hears of it
        st.sync()
    assert app.kinds() == ["open", "close"]


# -- StaticFiles --------------------------------------------------------------------------------------
@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "style.css").write_text("body{}")
    (root / "app.js").write_text("1;")
    (root / "data.bin").write_bytes(bytes(range(256)) * 16384)  # 4 MiB
    (root / "sub" / "index.html").write_text("sub home")
    (root / ".env").write_text("SECRET=1")
    (root / "zero.txt").write_text("")
    (tmp_path / "outside.txt").write_text("OUTSIDE-CONTENT")
    os.symlink(str(tmp_path / "outside.txt"), str(root / "escape.txt"))
    os.symlink(str(tmp_path), str(root / "escape-dir"))
    os.symlink(str(root / "style.css"), str(root / "inside-link.css"))
    os.mkfifo(str(root / "pipe"))
    return root


def get(port, path, method="GET", headers=()):
    head = "%s %s HTTP/1.1\r\nHost: h\r\n%s\r\n" % (method, path, "".join("%s: %s\r\n" % h for h in headers))
    return http_exchange(port, head.encode("latin-1"))


def test_static_files_serve_with_types_and_validators(site):
    with ServerThread(HttpServer(StaticFiles(str(site)))) as st:
        status, headers, body = get(st.port, "/")
        assert (status, body, headers["content-type"]) == (200, b"<h1>home</h1>", "text/html; charset=utf-8")
        status, headers, body = get(st.port, "/style.css?v=2")
        assert status == 200 and headers["content-type"] == "text/css; charset=utf-8"
        assert headers["x-content-type-options"] == "nosniff" and headers["content-length"] == "6"
        assert get(st.port, "/app.js")[1]["content-type"] == "text/javascript; charset=utf-8"
        assert get(st.port, "/inside-link.css")[2] == b"body{}"
        assert get(st.port, "/sub/")[2] == b"sub home"
        assert get(st.port, "/zero.txt")[:3:2] == (200, b"")
        status, headers, body = get(st.port, "/style.css", "HEAD")
        assert (status, body, headers["content-length"]) == (200, b"", "6")
        etag, modified = headers["etag"], headers["last-modified"]
        assert get(st.port, "/style.css", headers=[("If-None-Match", 'W/"x", ' + etag)])[0] == 304
        assert get(st.port, "/style.css", headers=[("If-None-Match", '"other"')])[0] == 200
        assert get(st.port, "/style.css", headers=[("If-Modified-Since", modified)])[0] == 304
        old = "Mon, 01 Jan 1990 00:00:00 GMT"
        assert get(st.port, "/style.css", headers=[("If-Modified-Since", old)])[0] == 200
        assert get(st.port, "/style.css", headers=[("If-Modified-Since", "garbage")])[0] == 200


@pytest.mark.parametrize("path, status", [
    ("/missing.txt", 404),
    ("/../outside.txt", 403),
    ("/sub/../../outside.txt", 403),
    ("/%2e%2e/outside.txt", 403),
    ("/sub/%2e%2e%2f%2e%2e%2foutside.txt", 403),
    ("/escape.txt", 403),                 # a symlink out of the folder
    ("/escape-dir/outside.txt", 403),
    ("/.env", 404),                       # hidden
    ("/sub/.%65nv", 404),
    ("/pipe", 404),                       # not a regular file, and no hang
    ("/empty/", 403),                     # no index, no listing
    ("/style.css/x", 404),
    ("/a%00b", 400),
    ("/back\\slash", 404),
])
def test_static_files_refusals(site, path, status):
    with ServerThread(HttpServer(StaticFiles(str(site)))) as st:
        got, _, body = get(st.port, path)
        assert got == status, body
        assert b"OUTSIDE-CONTENT" not in body and b"SECRET" not in body


def test_static_files_methods_redirects_and_prefix(site):
    router = Router()
    router.add("/static/{path:.*}", StaticFiles(str(site), prefix="/static"))
    with ServerThread(HttpServer(router)) as st:
        status, headers, _ = get(st.port, "/static/style.css", "POST")
        assert status == 405 and headers["allow"] == "GET, HEAD"
        assert get(st.port, "/static/style.css")[2] == b"body{}"
        status, headers, _ = get(st.port, "/static/sub?x=1")
        assert status == 301 and headers["location"] == "/static/sub/?x=1"
        assert get(st.port, "//static/sub")[0] == 404  # no route: never an open redirect
    with ServerThread(HttpServer(StaticFiles(str(site), prefix="/static/"))) as st:
        assert get(st.port, "/other/style.css")[0] == 404
        assert get(st.port, "/static")[0] == 301
    with pytest.raises(ValueError):
        StaticFiles(str(site / "index.html"))


class CountingStaticFiles(StaticFiles):
    """StaticFiles that lets a test wait for its on_close calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.closes = threading.Semaphore(0)

    def on_close(self, conn):
        super().on_close(conn)
        self.closes.release()


def test_static_files_stream_large_files_to_slow_readers(site):
    expected = (site / "data.bin").read_bytes()
    static = CountingStaticFiles(str(site), chunk_size=65536)
    with ServerThread(HttpServer(static)) as st:
        with connect(st.port, rcvbuf=16384) as sock:
            sock.sendall(b"GET /data.bin HTTP/1.1\r\nHost: h\r\n\r\n")
            status, headers, rest = read_response(sock)
            assert status == 200 and headers["content-type"] == "application/octet-stream"
            assert int(headers["content-length"]) == len(expected)
            body = rest + recv_exactly(sock, len(expected) - len(rest))
            assert body == expected and recv_until_eof(sock) == b""
        with connect(st.port, rcvbuf=16384) as sock:  # a client that leaves half way
            sock.sendall(b"GET /data.bin HTTP/1.1\r\nHost: h\r\n\r\n")
            read_response(sock)
        assert static.closes.acquire(timeout=10) and static.closes.acquire(timeout=10)
        # Both files were closed and nothing waits to write any more.
        assert st.call(lambda: static._senders) == {}


def test_content_types():
    assert content_type_for("a.JSON") == "application/json; charset=utf-8"
    assert content_type_for("a.png") == "image/png"
    assert content_type_for("a.svg") == "image/svg+xml; charset=utf-8"
    assert content_type_for("no-extension") == "application/octet-stream"


# -- Responder and HealthCheck -------------------------------------------------------------------------
def test_responder_results_errors_and_methods():
    def handler(request):
        kind = request.query.get("kind")
        if kind == "text":
            return "plain ✓"
        if kind == "tuple":
            return 201, {"X-Made": "yes"}, b"made"
        if kind == "boom":
            raise RuntimeError("boom")
        if kind == "response":
            return Response(202, "accepted", {"Content-Type": "text/plain"})
        return None

    with ServerThread(HttpServer(Responder(handler, methods=["GET", "POST"]))) as st:
        status, headers, body = get(st.port, "/?kind=text")
        assert (status, body.decode()) == (200, "plain ✓") and headers["content-type"].startswith("text/plain")
        status, headers, body = get(st.port, "/?kind=tuple", "POST")
        assert (status, headers["x-made"], body) == (201, "yes", b"made")
        assert get(st.port, "/?kind=response")[:3:2] == (202, b"accepted")
        status, headers, body = get(st.port, "/?kind=text", "HEAD")
        assert (status, headers["content-length"], body) == (200, str(len("plain ✓".encode())), b"")
        assert get(st.port, "/")[0] == 404
        assert get(st.port, "/?kind=boom")[:3:2] == (500, b"Internal Server Error\n")
        status, headers, _ = get(st.port, "/", "DELETE")
        assert status == 405 and headers["allow"] == "GET, POST, HEAD"


def test_health_check():
    healthy = [True]
    with ServerThread(HttpServer(HealthCheck(lambda: healthy[0]))) as st:
        status, headers, body = get(st.port, "/healthz")
        assert (status, body, headers["cache-control"]) == (200, b"ok\n", "no-store")
        healthy[0] = False
        assert get(st.port, "/healthz")[:3:2] == (503, b"unhealthy\n")


def test_responder_needs_a_request():
    with ServerThread(Responder(str)) as st:
        with st.connect() as sock:
            assert read_response(sock)[0] == 500
