"""The WAMP v2 router over real sockets: sessions, broker, dealer, auth, limits, v1 and v2 together."""

import json

import pytest

from ratchet_sel import WsServer
from ratchet_sel.pubsub import Topics
from ratchet_sel.wamp import WampServer, WampServerInterface
from ratchet_sel.wamp.v2 import ApplicationError, Result, WampRouter, WampVersions
from support import ServerThread
from wamp2_client import Wamp2Client
from ratchet_sel.websocket.rfc6455 import encode_message
from wsclient import WsClient

BOTH = ["wamp.2.json", "wamp.2.msgpack"]


def serve(router, **kwargs):
    return ServerThread(WsServer(router), **kwargs)


@pytest.fixture
def router():
    router = WampRouter(["realm1", "realm2"])
    router.register("com.add", lambda a, b: a + b)
    router.register("com.stats", lambda: Result(1, 2, total=3))

    def fail(*args, **kwargs):
        raise ApplicationError("com.example.failed", "bad", *args, code=7, **kwargs)

    router.register("com.fail", fail)
    router.register("com.who", lambda details: [details.session.session_id, details.procedure], details=True)
    return router


@pytest.mark.parametrize("subprotocol", BOTH)
def test_join_and_call_server_procedures(router, subprotocol):
    with serve(router) as server, Wamp2Client(server.port, subprotocol) as client:
        welcome = client.join("realm1")
        assert 1 <= welcome[1] <= 2 ** 53
        roles = welcome[2]["roles"]
        assert set(roles) == {"broker", "dealer"}
        assert roles["dealer"]["features"] == {"call_timeout": True, "call_canceling": True,
                                               "caller_identification": True}
        assert welcome[2]["authrole"] == "anonymous"
        assert client.call("com.add", [2, 3])[3] == [5]
        assert client.call("com.stats")[3:] == [[1, 2], {"total": 3}]
        error = client.call("com.fail", ["x"], {"k": b"\x00\x01"})
        assert error[:5] == [8, 48, error[2], {}, "com.example.failed"]
        assert error[5:] == [["bad", "x"], {"code": 7, "k": b"\x00\x01"}]
        assert client.call("com.nope")[4] == "wamp.error.no_such_procedure"
        assert client.call("com.add", [1])[4] == "wamp.error.invalid_argument"
        assert client.call("com.who")[3] == [[client.session_id, "com.who"]]


def test_unknown_realm_is_aborted(router):
    with serve(router) as server, Wamp2Client(server.port) as client:
        client.send([1, "nowhere", {"roles": {"caller": {}}}])
        assert client.recv() == [3, {"message": "no realm nowhere"}, "wamp.error.no_such_realm"]
        assert client.ws.expect_close().code == 1000


@pytest.mark.parametrize("subprotocol", BOTH)
def test_publish_subscribe_with_exclusion_rules(router, subprotocol):
    with serve(router) as server, Wamp2Client(server.port, subprotocol) as pub, \
            Wamp2Client(server.port, "wamp.2.json") as sub1, Wamp2Client(server.port, "wamp.2.msgpack") as sub2:
        for client in (pub, sub1, sub2):
            client.join("realm1")
        subscription = sub1.subscribe("com.topic")
        assert sub2.subscribe("com.topic") == subscription          # one subscription per topic
        assert pub.subscribe("com.topic") == subscription
        pub.send([16, 1, {"acknowledge": True}, "com.topic", ["hi"]])
        published = pub.recv()
        assert published[:2] == [17, 1]
        for client in (sub1, sub2):
            assert client.recv() == [36, subscription, published[2], {}, ["hi"]]
        # exclude_me: false reaches the publisher too; exclude and eligible by session id
        pub.send([16, 2, {"exclude_me": False, "exclude": [sub1.session_id]}, "com.topic", [1, 2], {"a": None}])
        assert pub.recv()[4:] == [[1, 2], {"a": None}]
        assert sub2.recv()[4:] == [[1, 2], {"a": None}]
        pub.send([16, 3, {"eligible": [sub1.session_id]}, "com.topic", [], {"only": "sub1"}])
        assert sub1.recv()[4:] == [[], {"only": "sub1"}]
        # nothing else was queued for sub1 or sub2: the next publication is the next thing they get
        pub.send([16, 4, {}, "com.topic"])
        assert sub1.recv()[4:] == [[]] and sub2.recv()[4:] == [[]]
        pub.send([16, 5, {"acknowledge": True, "exclude": ["x"]}, "com.topic"])
        assert pub.recv()[4] == "wamp.error.invalid_argument"


def test_unsubscribe_unregister_and_their_errors(router):
    with serve(router) as server, Wamp2Client(server.port) as client:
        client.join()
        subscription = client.subscribe("com.t")
        client.send([34, 10, subscription])
        assert client.recv() == [35, 10]
        client.send([34, 11, subscription])
        assert client.recv()[:5] == [8, 34, 11, {}, "wamp.error.no_such_subscription"]
        registration = client.register("com.mine")
        other = Wamp2Client(server.port)
        other.join()
        other.send([64, 1, {}, "com.mine"])
        assert other.recv()[4] == "wamp.error.procedure_already_exists"
        other.send([64, 2, {}, "com.add"])
        assert other.recv()[4] == "wamp.error.procedure_already_exists"     # a server procedure
        other.send([64, 3, {}, "wamp.reserved"])
        assert other.recv()[4] == "wamp.error.invalid_uri"
        client.send([66, 12, registration])
        assert client.recv() == [67, 12]
        client.send([66, 13, registration])
        assert client.recv()[:5] == [8, 66, 13, {}, "wamp.error.no_such_registration"]
        assert other.register("com.mine")
        other.close()


@pytest.mark.parametrize("callee_protocol", BOTH)
def test_calls_between_clients(router, callee_protocol):
    with serve(router) as server, Wamp2Client(server.port) as caller, \
            Wamp2Client(server.port, callee_protocol) as callee:
        caller.join()
        callee.join()
        registration = callee.register("com.callee.echo")
        caller.send([48, 7, {}, "com.callee.echo", [1, b"\xff"], {"k": "v"}])
        invocation = callee.recv()
        assert invocation[0] == 68 and invocation[2:] == [registration, {}, [1, b"\xff"], {"k": "v"}]
        callee.send([70, invocation[1], {}, ["ok"], {"n": 1}])
        assert caller.recv() == [50, 7, {}, ["ok"], {"n": 1}]
        caller.send([48, 8, {}, "com.callee.echo"])
        invocation = callee.recv()
        callee.send([8, 68, invocation[1], {}, "com.app.error", ["why"], {"detail": 1}])
        assert caller.recv() == [8, 48, 8, {}, "com.app.error", ["why"], {"detail": 1}]
        callee.send([70, invocation[1], {}, ["late"]])       # unknown by now: dropped, not a violation
        assert caller.call("com.add", [1, 1])[3] == [2]
        # caller identification: asked by the caller (disclose_me) or by the callee (disclose_caller)
        caller.send([48, 9, {"disclose_me": True}, "com.callee.echo"])
        invocation = callee.recv()
        assert invocation[3] == {"caller": caller.session_id, "caller_authid": "anonymous-%d" % caller.session_id,
                                 "caller_authrole": "anonymous"}
        callee.send([70, invocation[1], {}])
        assert caller.recv() == [50, 9, {}]
        callee.send([64, 20, {"disclose_caller": True}, "com.callee.disclosed"])
        assert callee.recv()[:2] == [65, 20]
        caller.send([48, 10, {}, "com.callee.disclosed"])
        assert callee.recv()[3]["caller"] == caller.session_id


def test_callee_leaving_timeout_cancel_and_limits():
    router = WampRouter(["realm1"], max_outstanding_calls=2)
    with serve(router) as server, Wamp2Client(server.port) as caller:
        caller.join()
        callee = Wamp2Client(server.port)
        callee.join()
        callee.register("com.slow")
        caller.send([48, 1, {"timeout": 20}, "com.slow"])
        invocation = callee.recv()
        assert caller.recv()[:5] == [8, 48, 1, {}, "wamp.error.timeout"]
        assert callee.recv() == [69, invocation[1], {"mode": "killnowait"}]     # INTERRUPT
        caller.send([48, 2, {}, "com.slow"])
        caller.send([48, 3, {}, "com.slow"])
        caller.send([48, 4, {}, "com.slow"])
        assert caller.recv()[:5] == [8, 48, 4, {}, "ratchet_sel.error.too_many_calls"]
        first, second = callee.recv(), callee.recv()
        caller.send([49, 2, {"mode": "skip"}])
        assert caller.recv()[:5] == [8, 48, 2, {}, "wamp.error.canceled"]
        caller.send([49, 3, {"mode": "kill"}])
        assert callee.recv() == [69, second[1], {"mode": "kill"}]
        callee.send([8, 68, second[1], {}, "wamp.error.canceled"])
        assert caller.recv()[:5] == [8, 48, 3, {}, "wamp.error.canceled"]
        caller.send([48, 5, {}, "com.slow"])
        callee.recv()
        callee.close()
        assert caller.recv()[:5] == [8, 48, 5, {}, "wamp.error.canceled"]
        assert caller.call("com.slow")[4] == "wamp.error.no_such_procedure"
        assert first[0] == 68


def test_ticket_auth_and_authorize_hook():
    seen = []

    def authenticator(realm, authid, ticket):
        return "admin" if (authid, ticket) == ("joe", "secret") else None

    def authorize(session, action, uri):
        seen.append((session.authrole, action, uri))
        return not uri.startswith("com.private")

    router = WampRouter(["realm1"], authenticator=authenticator, authorize=authorize)
    router.register("com.private.x", lambda: 1)
    with serve(router) as server:
        with Wamp2Client(server.port) as client:
            client.send([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["ticket"], "authid": "joe"}])
            assert client.recv() == [4, "ticket", {}]
            client.send([5, "secret", {}])
            welcome = client.recv()
            assert welcome[0] == 2 and (welcome[2]["authid"], welcome[2]["authrole"]) == ("joe", "admin")
            assert client.call("com.private.x")[4] == "wamp.error.not_authorized"
            client.send([32, 9, {}, "com.private.t"])
            assert client.recv()[:5] == [8, 32, 9, {}, "wamp.error.not_authorized"]
        with Wamp2Client(server.port) as client:
            client.send([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["ticket"], "authid": "joe"}])
            client.recv()
            client.send([5, "wrong", {}])
            assert client.recv()[2] == "wamp.error.authentication_failed"
        with Wamp2Client(server.port) as client:
            client.send([1, "realm1", {"roles": {"caller": {}}}])
            assert client.recv()[2] == "wamp.error.not_authorized"
    assert ("admin", "join", "realm1") in seen and ("admin", "call", "com.private.x") in seen


def test_server_side_subscribe_publish_and_realms(router):
    got = []
    router.subscribe("com.news", lambda *args, **kwargs: got.append((args, kwargs)))
    with serve(router) as server, Wamp2Client(server.port) as one, Wamp2Client(server.port) as two:
        one.join("realm1")
        two.join("realm2")
        subscription = one.subscribe("com.news")
        two.subscribe("com.news")
        server.call(router.publish, "com.news", ["from server"], {"n": 1})
        assert one.recv()[1::3] == [subscription, ["from server"]]
        two.send([16, 1, {"acknowledge": True}, "com.news", ["realm2 only"]])
        assert two.recv()[0] == 17
        one.send([16, 2, {"acknowledge": True}, "com.news", ["realm1"]])
        assert one.recv()[0] == 17
        server.sync()
    assert got == [(("from server",), {"n": 1}), (("realm2 only",), {}), (("realm1",), {})]


def test_goodbye_then_join_again(router):
    with serve(router) as server, Wamp2Client(server.port) as client:
        client.join()
        client.send([6, {"message": "bye"}, "wamp.close.close_realm"])
        assert client.recv() == [6, {}, "wamp.close.goodbye_and_out"]
        client.join("realm2")
        assert client.call("com.add", [1, 2])[3] == [3]


def test_violation_ends_one_session_only(router, caplog):
    caplog.set_level("INFO", logger="ratchet_sel.wamp.v2.router")
    with serve(router) as server, Wamp2Client(server.port) as good, Wamp2Client(server.port) as bad:
        good.join()
        bad.join()
        bad.ws.send_raw(b"".join(b"".join(encode_message(bad.serializer.encode(message), mask_source=lambda: b"abcd"))
                                 for message in ([48, "one", {}, "com.add"], [99], [98])))   # likely one read
        bad.send([48, 2, {}, "com.add"])
        abort = bad.recv()
        assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation"
        assert "not a valid id" in abort[1]["message"]
        close = bad.ws.expect_close()
        assert close.code == 1002 and "not a valid id" in close.reason
        assert good.call("com.add", [1, 2])[3] == [3]
    assert caplog.text.count("protocol violation") == 1     # what followed the violation was dropped


def test_no_subprotocol_is_closed_with_a_reason(router):
    with serve(router) as server, WsClient(server.port) as client:
        close = client.expect_close()
        assert close.code == 1002 and "wamp.2.json" in close.reason


class V1App(WampServerInterface):
    """The default v1 behaviour: publications are broadcast."""


def test_v1_and_v2_share_topics():
    topics = Topics()
    router = WampRouter(["realm1"], topics)
    v1 = WampServer(V1App(), topics)
    with ServerThread(WsServer(WampVersions(router, v1))) as server, Wamp2Client(server.port) as v2, \
            WsClient(server.port, extra=[("Sec-WebSocket-Protocol", "wamp")]) as old:
        assert old.headers["sec-websocket-protocol"] == "wamp"
        assert json.loads(old.recv_message())[0] == 0           # v1 WELCOME
        v2.join()
        subscription = v2.subscribe("http://example.com/topic")
        old.send(json.dumps([5, "http://example.com/topic"]))     # v1 SUBSCRIBE
        server.sync()
        old.send(json.dumps([7, "http://example.com/topic", {"from": "v1"}]))     # v1 PUBLISH
        assert v2.recv()[1::3] == [subscription, [{"from": "v1"}]]
        v2.send([16, 1, {}, "http://example.com/topic", ["from v2"]])
        assert json.loads(old.recv_message()) == [8, "http://example.com/topic", "from v2"]
        v2.send([16, 2, {}, "http://example.com/topic", [1, 2], {"k": 3}])
        assert json.loads(old.recv_message()) == [8, "http://example.com/topic", {"args": [1, 2], "kwargs": {"k": 3}}]
        old.send(json.dumps([7, "http://example.com/topic", {"args": ["a"], "kwargs": {"b": 1}}]))
        assert v2.recv()[4:] == [["a"], {"b": 1}]


def test_application_api_edges():
    router = WampRouter(["realm1"], strict_uris=True)
    with pytest.raises(ValueError):
        router.register("Not.Strict", lambda: 1)
    with pytest.raises(ValueError):
        router.add_realm("bad realm")
    with pytest.raises(KeyError):
        router.register("com.x", lambda: 1, realm="nowhere")
    router.register("com.x", lambda: 1)
    with pytest.raises(ValueError, match="registered already"):
        router.register("com.x", lambda: 2)
    router.unregister("com.x")
    router.register("com.x", lambda: 3)
    seen = []

    def handler(*args, details, **kwargs):
        seen.append((args, kwargs, details.topic, details.publisher, details.realm))

    router.subscribe("com.t", handler, details=True)
    router.publish("com.t", ["a"], {"b": 1})
    router.unsubscribe("com.t", handler)
    router.publish("com.t", ["unseen"])
    assert seen == [(("a",), {"b": 1}, "com.t", None, "realm1")]
    with pytest.raises(ValueError):
        router.publish("com.t", [object()])


def test_hooks_that_raise_refuse_and_procedures_that_raise_answer_runtime_error(caplog):
    def authorize(session, action, uri):
        if action == "publish":
            raise RuntimeError("hook bug")
        return True

    router = WampRouter(["realm1"], authorize=authorize, strict_uris=True)

    def broken():
        raise KeyError("secret detail")

    router.register("com.broken", broken)
    with serve(router) as server, Wamp2Client(server.port) as client:
        client.join()
        client.send([16, 1, {"acknowledge": True}, "com.topic", ["x"]])
        assert client.recv()[:5] == [8, 16, 1, {}, "wamp.error.not_authorized"]
        error = client.call("com.broken")
        assert error[4] == "wamp.error.runtime_error" and "secret" not in str(error)
        client.send([48, 9, {}, "Com.Upper"])                    # strict URIs: a violation
        assert client.recv()[2] == "wamp.error.protocol_violation"
    assert "hook bug" in caplog.text and "secret detail" in caplog.text


def test_lone_surrogates_never_reach_a_peer():
    router = WampRouter(["realm1"])
    router.register("com.bad.text", lambda: "\ud800")
    with serve(router) as server, Wamp2Client(server.port) as client, \
            Wamp2Client(server.port, "wamp.2.msgpack") as other:
        client.join()
        other.join()
        other.subscribe("com.t")
        assert client.call("com.bad.text")[4] == "wamp.error.runtime_error"     # the app's value
        assert other.call("com.bad.text")[4] == "wamp.error.runtime_error"
        client.ws.send('[16,1,{"acknowledge":true},"com.t",["fine \\ud83d\\ude00"]]')    # an escaped pair
        assert client.recv()[0] == 17
        assert other.recv()[4] == ["fine \U0001F600"]
        client.ws.send('[16,2,{},"com.t",["\\ud800"]]')                      # a client's: a violation
        abort = client.recv()
        assert abort[2] == "wamp.error.protocol_violation" and "surrogate" in abort[1]["message"]
        assert other.call("com.bad.text")[4] == "wamp.error.runtime_error"     # still served


def test_server_shutdown_says_goodbye_before_going_away():
    """A stopping server sends an established v2 session GOODBYE system_shutdown, then closes 1001;
    a session still joining and a v1 client only get the 1001 close."""
    topics = Topics()
    router = WampRouter(["realm1"], topics)
    v1 = WampServer(V1App(), topics)
    with ServerThread(WsServer(WampVersions(router, v1))) as server, Wamp2Client(server.port) as joined, \
            Wamp2Client(server.port, "wamp.2.msgpack") as joining, \
            WsClient(server.port, extra=[("Sec-WebSocket-Protocol", "wamp")]) as old:
        joined.join()
        assert json.loads(old.recv_message())[0] == 0           # v1 WELCOME
        server.sync()
        server.call(server.server.shutdown)
        assert joined.recv() == [6, {"message": "the server is shutting down"}, "wamp.close.system_shutdown"]
        for client in (joined.ws, joining.ws, old):
            close = client.expect_close()
            assert close.code == 1001, close
