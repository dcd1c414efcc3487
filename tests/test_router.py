"""Router: patterns, matching, 404/405, and the HTTP layer's limits through a routed server."""

import socket
import struct
import threading

import pytest
from support import ServerThread, recv_until_eof
from wsclient import WsClient, http_exchange, upgrade_request

from ratchet_sel import HttpServer, MessageComponent, Responder, Router, WsServer
from ratchet_sel.component import HttpServerInterface
from ratchet_sel.http import HttpError, RequestParser
from ratchet_sel.http.router import Route, compile_pattern, host_name

pytestmark = pytest.mark.timeout(60)


def request(method="GET", target="/", host="example.com"):
    return RequestParser().feed(("%s %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (method, target, host)).encode())


class HttpRecorder(HttpServerInterface):
    """A plain-HTTP component that answers 200 and records its calls."""

    def __init__(self, name="recorder"):
        self.name = name
        self.events = []
        self.cond = threading.Condition()

    def _record(self, *event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def on_open(self, conn, request=None):
        self._record("open", conn, dict(request.params))
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                  % (len(self.name), self.name.encode()))
        conn.close()

    def on_close(self, conn):
        self._record("close", conn)

    def wait(self, predicate):
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.events), 10), self.events


# -- patterns and matching (sans-IO) ---------------------------------------------------------
@pytest.mark.parametrize("pattern, path, expected", [
    ("/room/{name}", "/room/lobby", {"name": "lobby"}),
    ("/room/{name}", "/room/a b", {"name": "a b"}),
    ("/room/{name}", "/room/a/b", None),
    ("/room/{name}", "/room/", None),
    ("/user/{id:\\d+}", "/user/42", {"id": "42"}),
    ("/user/{id:\\d+}", "/user/4x", None),
    ("/y/{year:\\d{4}}/{slug}", "/y/2024/hello", {"year": "2024", "slug": "hello"}),
    ("/y/{year:\\d{4}}/{slug}", "/y/20245/hello", None),
    ("/files/{path:.*}", "/files/a/b/c.txt", {"path": "a/b/c.txt"}),
    ("/files/{path:.*}", "/files/", {"path": ""}),
    ("/a.b/{x}", "/aXb/1", None),
    ("/{a}-{b}", "/left-right", {"a": "left", "b": "right"}),
])
def test_patterns(pattern, path, expected):
    assert Route(pattern, Responder(str)).match_path(path) == expected


@pytest.mark.parametrize("pattern", ["/a/{", "/a/}", "/a/{1x}", "/{a}/{a}", "/{a:[}"])
def test_bad_patterns(pattern):
    with pytest.raises(Exception):
        compile_pattern(pattern)


def test_route_paths_must_be_absolute():
    with pytest.raises(ValueError):
        Route("room", Responder(str))


def test_host_name():
    assert host_name("Example.COM:8080") == "example.com"
    assert host_name("[::1]:9000") == "::1"
    assert host_name("localhost") == "localhost"


def test_match_order_methods_hosts_and_errors():
    router = Router()
    pattern = router.add("/room/{name}", Responder(str))
    exact = router.add("/room/lobby", Responder(str))
    post = router.add("/form", Responder(str), methods=["post"])
    get = router.add("/form", Responder(str), methods=["GET"])
    other_host = router.add("/host", Responder(str), host="Other.example:8080")
    anything = router.add("/any", Responder(str))

    assert router.match(request(target="/room/lobby")) == (exact, {})
    assert router.match(request(target="/room/kitchen?x=1")) == (pattern, {"name": "kitchen"})
    assert router.match(request("POST", "/form"))[0] is post
    assert router.match(request("GET", "/form"))[0] is get
    assert router.match(request("HEAD", "/form"))[0] is get  # HEAD comes with GET
    assert router.match(request("DELETE", "/any"))[0] is anything
    assert router.match(request(target="/host", host="other.example"))[0] is other_host
    with pytest.raises(HttpError) as info:
        router.match(request("PUT", "/form"))
    assert info.value.status == 405 and info.value.headers["Allow"] == "POST, GET, HEAD"
    for target, host in (("/nowhere", "example.com"), ("/host", "example.com"), ("/room/a/b", "x")):
        with pytest.raises(HttpError) as info:
            router.match(request(target=target, host=host))
        assert info.value.status == 404 and "No route" in info.value.reason
    assert router.routes == [exact, post, get, other_host, anything, pattern]


def test_a_wrong_host_names_the_host_asked_and_the_hosts_served():
    router = Router()
    router.add("/room/{name}", Responder(str), host="localhost")
    router.add("/room/{name}", Responder(str), host="chat.example:8080")
    router.add("/other", Responder(str), host="localhost")
    with pytest.raises(HttpError) as info:
        router.match(request(target="/room/a", host="127.0.0.1:8080"))
    assert info.value.status == 404
    assert info.value.reason == ("No route for /room/a at host '127.0.0.1' (the Host header); "
                                 "this path is served for hosts 'localhost', 'chat.example'")
    with pytest.raises(HttpError) as info:
        router.match(request(target="/other", host="evil.example"))
    assert info.value.reason.endswith("this path is served for host 'localhost'")
    # A path no route has stays a plain 404: hosts of other paths are nobody's business.
    with pytest.raises(HttpError) as info:
        router.match(request(target="/nowhere", host="evil.example"))
    assert info.value.reason == "No route for /nowhere"


def test_components_must_take_the_request():
    class Plain(MessageComponent):
        def on_open(self, conn):
            pass

    with pytest.raises(TypeError, match="WsServer"):
        Router().add("/", Plain())
    Router().add("/", WsServer(Plain()))


# -- live -----------------------------------------------------------------------------------
class WsApp(MessageComponent):
    def __init__(self):
        self.opened = []
        self.closed = []
        self.cond = threading.Condition()

    def on_open(self, conn):
        with self.cond:
            self.opened.append(conn)
        conn.send("%s %s %s" % (conn.request.path, sorted(conn.request.params.items()),
                                sorted(conn.request.query.items())))

    def on_message(self, conn, msg):
        conn.send(msg)

    def on_close(self, conn):
        with self.cond:
            self.closed.append(conn)
            self.cond.notify_all()

    def wait_closed(self, n):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.closed) >= n, 10)


@pytest.fixture
def routed():
    app, page = WsApp(), HttpRecorder("page")
    router = Router()
    router.add("/room/{name}", WsServer(app), methods=["GET"])
    router.add("/page", page)
    with ServerThread(HttpServer(router, max_headers=20, max_header_bytes=4096, max_body=100,
                                 max_line=1024)) as st:
        yield st, app, page


def test_websocket_route_gets_params_and_query(routed):
    st, app, _ = routed
    with WsClient(st.port, "/room/lob%20by?x=1&y=2") as client:
        assert client.status == 101
        assert client.recv_message() == "/room/lob by [('name', 'lob by')] [('x', '1'), ('y', '2')]"
        client.send("through the router")
        assert client.recv_message() == "through the router"
        client.close()
    app.wait_closed(1)
    assert len(app.opened) == 1


def test_404_and_405_have_reasons_and_reach_nobody(routed):
    st, app, page = routed
    status, headers, body = http_exchange(st.port, b"GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status == 404 and body == b"No route for /nowhere\n"
    status, headers, body = http_exchange(st.port, upgrade_request("/room/a").replace(b"GET", b"POST", 1))
    assert status == 405 and headers["allow"] == "GET, HEAD" and b"POST not allowed" in body
    assert st.call(lambda: (list(app.opened), list(page.events))) == ([], [])


def test_plain_component_gets_open_and_one_close(routed):
    st, _, page = routed
    status, _, body = http_exchange(st.port, b"GET /page HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status == 200 and body == b"page"
    page.wait(lambda ev: [e[0] for e in ev] == ["open", "close"])
    assert page.events[0][1] is page.events[1][1]


def test_bytes_after_the_upgrade_request_reach_the_websocket(routed):
    st, _, _ = routed
    frame = b"\x81\x82" + b"\x00\x00\x00\x00" + b"hi"
    with socket.create_connection(("127.0.0.1", st.port), timeout=10) as sock:
        sock.sendall(upgrade_request("/room/x") + frame)
        data = b""
        while not data.endswith(b"\x81\x02hi"):
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 101")


@pytest.mark.parametrize("raw, status, reason", [
    (b"GET /page HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(30)) + b"\r\n",
     431, b"Too many header fields"),
    (b"GET /page HTTP/1.1\r\nHost: h\r\nX-Big: " + b"v" * 5000 + b"\r\n\r\n", 431, b"too large"),
    (b"POST /page HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n", 413, b"body too large"),
    (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414, b"line too long"),
    (b"GET /page\r\n\r\n", 400, b"Malformed request line"),
    (b"GET /page HTTP/1.1\r\nBad Header: x\r\n\r\n", 400, b"Malformed header"),
])
def test_http_limits_are_answered_with_reasons(routed, raw, status, reason):
    st, app, page = routed
    got, _, body = http_exchange(st.port, raw)
    assert got == status and reason in body
    assert st.call(lambda: list(page.events)) == []


def test_shutdown_passes_through_the_router_with_1001(routed):
    st, app, _ = routed
    client = WsClient(st.port, "/room/bye")
    client.recv_message()
    st.call(st.server.shutdown)
    assert client.expect_close().code == 1001
    client.send_frame(0x8, struct.pack("!H", 1001))
    assert recv_until_eof(client.sock) == b""
    client.shutdown()
    app.wait_closed(1)
