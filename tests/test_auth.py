"""TokenAuth, BasicAuth and the guard order: a refused handshake gets its HTTP status before any
upgrade whether the guard wraps the application or the WsServer (directly, through App.route, for
RFC 6455, HyBi-10 and Hixie-76), and the user the check found is ``conn.user`` in on_open."""

import base64
import logging
import socket
import threading

import pytest
from support import ServerThread
from test_app import Running
from test_hixie import KEY3, SPEC_REQUEST, read_exactly, read_head
from wsclient import WsClient, http_exchange, upgrade_request

import ratchet_sel
from ratchet_sel import (App, BasicAuth, HttpServer, MessageComponent, Router, TokenAuth, WsServer,
                         user_topic)
from ratchet_sel.http import Headers, Request
from ratchet_sel.server.auth import bearer_token, password_table, token_table

pytestmark = pytest.mark.timeout(60)

USERS = {"t-alice": "alice", "t-bob": "bob"}


class WhoAmI(MessageComponent):
    """Greets each connection with its user; records who opened and closed."""

    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def on_open(self, conn):
        with self.cond:
            self.events.append(("open", conn.user))
        conn.send("hello %s" % conn.user)

    def on_close(self, conn):
        with self.cond:
            self.events.append(("close", conn.user))
            self.cond.notify_all()

    def wait(self, count):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.events) >= count, 10), self.events
            return list(self.events)


def lookup(token):
    return USERS.get(token)


# The four ways a guard can stand in a stack, each served on a real socket.
def inner(app):          # the guard wraps the application, inside WsServer (the old trap)
    return ServerThread(WsServer(TokenAuth(app, check=lookup)))


def outer(app):          # the guard wraps the WsServer, behind HttpServer and a router
    router = Router()
    router.add("/", TokenAuth(WsServer(app), check=lookup))
    return ServerThread(HttpServer(router))


NESTINGS = {"inner": inner, "outer": outer}


@pytest.fixture(params=sorted(NESTINGS))
def served(request):
    app = WhoAmI()
    with NESTINGS[request.param](app) as st:
        yield st, app


@pytest.mark.parametrize("version", ["13", "8"])  # RFC 6455 and HyBi-10 (which sends version 8)
def test_missing_token_is_401_with_a_bearer_challenge_before_the_upgrade(served, version):
    st, app = served
    status, headers, body = http_exchange(st.port, upgrade_request("/", version))
    assert status == 401
    assert headers["www-authenticate"] == 'Bearer realm="websocket"'
    assert headers["connection"] == "close" and int(headers["content-length"]) == len(body)
    assert b"bearer token is required" in body
    assert "sec-websocket-accept" not in headers and app.events == []


@pytest.mark.parametrize("version", ["13", "8"])
def test_wrong_token_is_403_before_the_upgrade_and_the_token_is_not_logged(served, version, caplog):
    st, app = served
    with caplog.at_level(logging.INFO):
        status, headers, body = http_exchange(st.port, upgrade_request("/?token=guess-123", version))
        status2, _, _ = http_exchange(st.port, upgrade_request(
            "/", version, extra=[("Authorization", "Bearer guess-456")]))
    assert status == status2 == 403 and b"not valid" in body
    assert "www-authenticate" not in headers and app.events == []
    refusals = [r.getMessage() for r in caplog.records if "refused with 403" in r.getMessage()]
    # Logged once, not again by refuse(); the second 403 within 10 s is only counted.
    assert len(refusals) == 1, refusals
    assert "guess-" not in caplog.text


@pytest.mark.parametrize("how", ["query", "header"])
def test_a_good_token_opens_with_the_user_on_the_connection(served, how):
    st, app = served
    path, extra = ("/?token=t-alice", []) if how == "query" else ("/", [("Authorization", "Bearer t-alice")])
    with WsClient(st.port, path, extra=extra) as client:
        assert client.status == 101
        assert client.recv_message() == "hello alice"
        client.close()
    assert app.wait(2) == [("open", "alice"), ("close", "alice")]


def test_hixie76_is_refused_with_http_before_the_handshake_answer(served):
    st, app = served
    with socket.create_connection(("127.0.0.1", st.port), timeout=5) as sock:
        sock.sendall(SPEC_REQUEST.replace(b"GET /demo", b"GET /") + KEY3)
        head = read_head(sock)
    assert head.startswith(b"HTTP/1.1 401 Unauthorized\r\n") and b'WWW-Authenticate: Bearer realm="websocket"' in head
    with socket.create_connection(("127.0.0.1", st.port), timeout=5) as sock:
        sock.sendall(SPEC_REQUEST.replace(b"GET /demo", b"GET /?token=nope") + KEY3)
        assert read_head(sock).startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert app.events == []


def test_hixie76_with_a_good_token_opens_with_its_user(served):
    st, app = served
    with socket.create_connection(("127.0.0.1", st.port), timeout=5) as sock:
        sock.sendall(SPEC_REQUEST.replace(b"GET /demo", b"GET /?token=t-bob") + KEY3)
        assert read_head(sock).startswith(b"HTTP/1.1 101 ")
        read_exactly(sock, 16)
        assert read_exactly(sock, len("hello bob") + 2) == b"\x00hello bob\xff"
    assert app.wait(2) == [("open", "bob"), ("close", "bob")]


# -- through App.route, both nestings -----------------------------------------------------------
@pytest.mark.parametrize("nesting", ["inner", "outer"])
def test_app_route_answers_401_and_403_before_the_upgrade_either_way(nesting):
    app = App("localhost", 0, "127.0.0.1", keepalive=None)
    who = WhoAmI()
    component = TokenAuth(who, check=lookup) if nesting == "inner" else TokenAuth(WsServer(who), check=lookup)
    app.route("/ws", component, allowed_origins="*")
    with Running(app):
        status, headers, _ = http_exchange(app.port, upgrade_request("/ws", host="localhost"))
        assert status == 401 and headers["www-authenticate"].startswith("Bearer ")
        status, _, _ = http_exchange(app.port, upgrade_request("/ws?token=bad", host="localhost"))
        assert status == 403
        with socket.create_connection(("127.0.0.1", app.port), timeout=5) as sock:
            sock.sendall(upgrade_request("/ws?token=t-alice", host="localhost"))
            head = read_head(sock)
            assert head.startswith(b"HTTP/1.1 101 ")
            assert read_exactly(sock, 2 + len("hello alice")) == b"\x81\x0bhello alice"
    assert who.wait(1)[0] == ("open", "alice")


# -- BasicAuth ------------------------------------------------------------------------------------
def basic(name, password):
    return ("Authorization", "Basic " + base64.b64encode(("%s:%s" % (name, password)).encode()).decode())


@pytest.mark.parametrize("wrap", ["inner", "outer"])
def test_basic_auth_challenges_refuses_and_admits(wrap):
    who = WhoAmI()
    if wrap == "inner":
        stack = WsServer(BasicAuth(who, users={"ann": "pässword"}, realm="chat"))
    else:
        router = Router()
        router.add("/", BasicAuth(WsServer(who), users={"ann": "pässword"}, realm="chat"))
        stack = HttpServer(router)
    with ServerThread(stack) as st:
        status, headers, _ = http_exchange(st.port, upgrade_request("/"))
        assert status == 401 and headers["www-authenticate"] == 'Basic realm="chat", charset="UTF-8"'
        status, headers, _ = http_exchange(st.port, upgrade_request("/", extra=[basic("ann", "wrong")]))
        assert status == 401 and "www-authenticate" in headers
        for broken in ("Basic !!!not-base64", "Basic " + base64.b64encode(b"no colon").decode(),
                       "Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "Basic "):
            status, _, body = http_exchange(st.port, upgrade_request("/", extra=[("Authorization", broken)]))
            assert status == 400 and b"malformed Basic credentials" in body, broken
        with WsClient(st.port, extra=[basic("ann", "pässword")]) as client:
            assert client.recv_message() == "hello ann"
            client.close()
    assert who.wait(2) == [("open", "ann"), ("close", "ann")]


# -- the check's failures and the API's edges ----------------------------------------------------
def test_a_check_that_raises_is_answered_500_and_logged(caplog):
    def broken(token):
        raise RuntimeError("database down")

    who = WhoAmI()
    with ServerThread(WsServer(TokenAuth(who, check=broken))) as st:
        status, _, _ = http_exchange(st.port, upgrade_request("/?token=x"))
    assert status == 500 and who.events == []
    assert "database down" in caplog.text


def test_falsy_users_other_than_none_and_false_are_users():
    checks = {"zero": 0, "none": None, "false": False}
    who = WhoAmI()
    with ServerThread(WsServer(TokenAuth(who, check=checks.get))) as st:
        with WsClient(st.port, "/?token=zero") as client:
            assert client.recv_message() == "hello 0"
            client.close()
        for token in ("none", "false"):
            assert http_exchange(st.port, upgrade_request("/?token=" + token))[0] == 403


def test_a_guard_with_no_request_to_read_says_where_it_belongs(caplog):
    who = WhoAmI()
    with ServerThread(TokenAuth(WsServer(who), check=lookup)) as st:
        status, _, body = http_exchange(st.port, upgrade_request("/?token=t-alice"))
    assert status == 500 and b"misconfigured" in body
    assert "WsServer(TokenAuth(app" in caplog.text


def test_constructor_needs_exactly_one_source_of_truth():
    with pytest.raises(TypeError):
        TokenAuth(WhoAmI())
    with pytest.raises(TypeError):
        TokenAuth(WhoAmI(), check=lookup, tokens=USERS)
    with pytest.raises(TypeError):
        BasicAuth(WhoAmI())


def request(target, headers=()):
    return Request("GET", target, "HTTP/1.1", Headers(list(headers)))


def test_bearer_token_sources():
    assert bearer_token(request("/?token=q")) == "q"
    assert bearer_token(request("/?token=q", [("Authorization", "Bearer h")])) == "h"
    assert bearer_token(request("/", [("Authorization", "bearer   h2 ")])) == "h2"
    assert bearer_token(request("/", [("Authorization", "Basic abc")])) is None
    assert bearer_token(request("/?token=")) is None
    assert bearer_token(request("/?token=q"), query_param=None) is None


def test_tables_compare_secrets_and_find_users():
    check = token_table({"s3cret": "u1", "other": "u2"})
    assert check("s3cret") == "u1" and check("other") == "u2"
    assert check("s3cre") is None and check("") is None
    passwords = password_table({"ann": "pw"})
    assert passwords("ann", "pw") == "ann"
    assert passwords("ann", "pW") is None and passwords("bob", "pw") is None


def test_repeated_refusals_are_one_line_per_status_with_a_count(caplog):
    """A client retrying a wrong token in a loop: one line, then a summary with the count."""
    now = [1000.0]
    auth = TokenAuth(WhoAmI(), check=lookup)
    auth.refusal_log.clock = lambda: now[0]
    with ServerThread(WsServer(auth)) as st, caplog.at_level(logging.INFO, logger="ratchet_sel.server.auth"):
        for _ in range(10):
            status, _, _ = http_exchange(st.port, upgrade_request("/?token=wrong"))
            assert status == 403
        refused = [r.getMessage() for r in caplog.records if "refused with 403" in r.getMessage()]
        assert len(refused) == 1 and "wrong" not in refused[0]
        now[0] += 11    # the interval is over: the next refusal writes the summary
        assert http_exchange(st.port, upgrade_request("/?token=wrong"))[0] == 403
    refused = [r.getMessage() for r in caplog.records if "refused with 403" in r.getMessage()]
    assert len(refused) == 2 and "(10 times in the last 11 s)" in refused[1], refused


def test_names_are_exported_from_the_package():
    for name in ("Guard", "Refusal", "TokenAuth", "BasicAuth", "user_topic"):
        assert name in ratchet_sel.__all__ and getattr(ratchet_sel, name)
    assert user_topic("alice") == "user:alice" and user_topic(42) == "user:42"

    class Record:
        id = 7

    assert user_topic(Record()) == "user:7"
    with pytest.raises(ValueError):
        user_topic("")
    for bad in (None, True, 1.5):
        with pytest.raises(TypeError):
            user_topic(bad)


def test_user_topic_reaches_every_connection_of_one_user_and_nobody_else():
    from ratchet_sel import Topics

    topics = Topics()

    class Notify(MessageComponent):
        def on_open(self, conn):
            topics.subscribe(conn, user_topic(conn.user))

    with ServerThread(WsServer(TokenAuth(Notify(), tokens={"a1": "alice", "a2": "alice", "b": "bob"}))) as st:
        laptop, phone, bob = (WsClient(st.port, "/?token=" + token) for token in ("a1", "a2", "b"))
        with laptop, phone, bob:
            assert st.call(topics.publish, user_topic("alice"), "for alice") == 2
            assert st.call(topics.publish, user_topic("bob"), "for bob") == 1
            assert laptop.recv_message() == phone.recv_message() == "for alice"
            assert bob.recv_message() == "for bob"  # the first bob gets: alice's never reached him


def test_wamp_sessions_behind_token_auth_carry_the_user_and_keep_the_subprotocol():
    import json

    from ratchet_sel.wamp import WampServer, WampServerInterface

    users = []

    class Wamp(WampServerInterface):
        def on_open(self, conn):
            users.append(conn.user)   # a WampConnection: its WebSocket connection's user

    wamp = [("Sec-WebSocket-Protocol", "wamp")]
    with ServerThread(WsServer(TokenAuth(WampServer(Wamp()), check=lookup))) as st:
        assert http_exchange(st.port, upgrade_request("/", extra=wamp))[0] == 401
        with WsClient(st.port, "/?token=t-bob", extra=wamp) as client:
            assert client.status == 101 and client.headers["sec-websocket-protocol"] == "wamp"
            assert json.loads(client.recv_message())[0] == 0   # WELCOME
            assert st.call(list, users) == ["bob"]
