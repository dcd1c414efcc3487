"""WAMP v1: the sans-IO codec with byte strings, then WampServer over real sockets."""

import json
import logging
import threading
from typing import Any, List

import pytest

from ratchet_sel import HttpServer, Router, WsServer
from ratchet_sel.pubsub import Backplane, Publication, Topics
from ratchet_sel.wamp import (ERROR_GENERIC, ERROR_NO_SUCH_PROCEDURE, CallError, Topic, TopicManager,
                              WampServer, WampServerInterface)
from ratchet_sel.wamp import protocol
from ratchet_sel.websocket.rfc6455 import Close
from support import ServerThread
from wsclient import WsClient

BASE = "http://example.com/"


# -- the codec ------------------------------------------------------------------------

def test_parse_each_client_message():
    assert protocol.parse('[1,"ex","http://example.com/"]') == protocol.Prefix("ex", BASE)
    assert protocol.parse('[2,"id1","ex:add",1,[2,3],{"a":null}]') == protocol.Call(
        "id1", "ex:add", [1, [2, 3], {"a": None}])
    assert protocol.parse('[2,"id2","ex:now"]') == protocol.Call("id2", "ex:now", [])
    assert protocol.parse('[5,"ex:t"]') == protocol.Subscribe("ex:t")
    assert protocol.parse('[6,"ex:t"]') == protocol.Unsubscribe("ex:t")
    assert protocol.parse('[7,"ex:t",{"x":1}]') == protocol.Publish("ex:t", {"x": 1}, None, None, None)
    assert protocol.parse('[7,"ex:t",null,true]') == protocol.Publish("ex:t", None, True, None, None)
    assert protocol.parse('[7,"ex:t",1,null]') == protocol.Publish("ex:t", 1, None, None, None)
    assert protocol.parse('[7,"ex:t","e",["s1"]]') == protocol.Publish("ex:t", "e", None, ["s1"], None)
    assert protocol.parse('[7,"ex:t","e",[],["s2"]]') == protocol.Publish("ex:t", "e", None, [], ["s2"])


def test_publish_recipients_follow_wamp_v1():
    me = "me"
    assert protocol.parse('[7,"t",1]').recipients(me) == (["me"], [])
    assert protocol.parse('[7,"t",1,null]').recipients(me) == (["me"], [])
    assert protocol.parse('[7,"t",1,true]').recipients(me) == (["me"], [])
    assert protocol.parse('[7,"t",1,false]').recipients(me) == ([], [])
    assert protocol.parse('[7,"t",1,["a"]]').recipients(me) == (["a"], [])
    assert protocol.parse('[7,"t",1,[],["b","c"]]').recipients(me) == ([], ["b", "c"])


BAD_MESSAGES = [
    ("not json", 1007, "not valid JSON"),
    ('[1,"a",', 1007, "not valid JSON"),
    ("[2,\"c\",\"p\",NaN]", 1007, "not valid JSON"),
    ('[7,"t",-1e400]', 1007, "out of range"),
    ("[" * 100000 + "]" * 100000, 1007, "not valid JSON"),
    ('{"type":2}', 1002, "non-empty JSON array"),
    ('"hello"', 1002, "non-empty JSON array"),
    ("[]", 1002, "non-empty JSON array"),
    ('["2","c","p"]', 1002, "type must be an integer"),
    ("[true,\"x\"]", 1002, "type must be an integer"),
    ("[2.0,\"c\",\"p\"]", 1002, "type must be an integer"),
    ("[9,\"x\"]", 1002, "unknown message type 9"),
    ("[-1]", 1002, "unknown message type -1"),
    ('[0,"s",1,"me"]', 1002, "WELCOME is sent by servers"),
    ('[3,"c",1]', 1002, "CALLRESULT is sent by servers"),
    ('[4,"c","e","d"]', 1002, "CALLERROR is sent by servers"),
    ('[8,"t",1]', 1002, "EVENT is sent by servers"),
    ('[1,"ex"]', 1002, "PREFIX has 2 elements"),
    ('[1,"ex",5]', 1002, "PREFIX URI must be"),
    ('[1,7,"http://x/"]', 1002, "PREFIX prefix must be"),
    ('[1,"a:b","http://x/"]', 1002, "must not contain ':'"),
    ('[2,"c"]', 1002, "CALL has 2 elements"),
    ('[2,5,"p"]', 1002, "CALL callID must be"),
    ('[2,"","p"]', 1002, "CALL callID must be"),
    ('[2,"c",["p"]]', 1002, "CALL procURI must be"),
    ('[5]', 1002, "SUBSCRIBE has 1 elements"),
    ('[5,"t","u"]', 1002, "SUBSCRIBE has 3 elements"),
    ('[5,42]', 1002, "SUBSCRIBE topicURI must be"),
    ('[5,""]', 1002, "SUBSCRIBE topicURI must be"),
    ('[6,null]', 1002, "UNSUBSCRIBE topicURI must be"),
    ('[7,"t"]', 1002, "PUBLISH has 2 elements"),
    ('[7,"t",1,[],[],[]]', 1002, "PUBLISH has 6 elements"),
    ('[7,{},1]', 1002, "PUBLISH topicURI must be"),
    ('[7,"t",1,"yes"]', 1002, "excludeMe (boolean) or exclude (list)"),
    ('[7,"t",1,[1,2]]', 1002, "exclude must be a list of session id strings"),
    ('[7,"t",1,true,[]]', 1002, "exclude must be a list"),
    ('[7,"t",1,[],"s"]', 1002, "eligible must be a list"),
    ('[5,"%s"]' % ("u" * 3000), 1008, "longer than 2048"),
    ('[2,"%s","p"]' % ("c" * 3000), 1008, "callID longer than 2048"),
]


@pytest.mark.parametrize("text,code,reason", BAD_MESSAGES, ids=[b[2] for b in BAD_MESSAGES])
def test_parse_refuses_bad_input_with_a_close_code(text, code, reason):
    with pytest.raises(protocol.WampProtocolError) as info:
        protocol.parse(text)
    assert info.value.code == code
    assert reason in info.value.reason
    assert len(info.value.reason.encode()) <= 123  # fits a close frame


def test_parse_refuses_binary():
    with pytest.raises(protocol.WampProtocolError) as info:
        protocol.parse(b'[5,"t"]')
    assert info.value.code == 1003


def test_curie_expansion_follows_the_spec_not_ratchet():
    prefixes = {"calc": "http://example.com/simple/calc#", "ev": "http://example.com/event/"}
    assert protocol.expand_curie("calc:square", prefixes) == "http://example.com/simple/calc#square"
    assert protocol.expand_curie("ev:news", prefixes) == "http://example.com/event/news"  # no '#' added
    assert protocol.expand_curie("other:x", prefixes) == "other:x"
    assert protocol.expand_curie("http://example.com/x", prefixes) == "http://example.com/x"
    assert protocol.expand_curie("plain", prefixes) == "plain"


def test_encoders():
    assert json.loads(protocol.encode_welcome("sid", "srv/1")) == [0, "sid", 1, "srv/1"]
    assert json.loads(protocol.encode_prefix("p", "u")) == [1, "p", "u"]
    assert json.loads(protocol.encode_call_result("c", {"x": [1]})) == [3, "c", {"x": [1]}]
    assert json.loads(protocol.encode_call_error("c", "e", "d")) == [4, "c", "e", "d"]
    assert json.loads(protocol.encode_call_error("c", "e", "d", [1])) == [4, "c", "e", "d", [1]]
    assert json.loads(protocol.encode_event("t", "é")) == [8, "t", "é"]
    assert json.loads(protocol.event_from_json("t", '{"a":1}')) == [8, "t", {"a": 1}]
    with pytest.raises(ValueError):
        protocol.encode_call_result("c", float("nan"))
    with pytest.raises(TypeError):
        protocol.encode_event("t", object())


# -- over real sockets ------------------------------------------------------------------

class App(WampServerInterface):
    """Procedures for the tests; records every callback."""

    def __init__(self) -> None:
        self.events: List[tuple] = []
        self.cond = threading.Condition()
        self.pending: List[tuple] = []  # deferred calls: (conn, call_id, value)

    def record(self, *event: Any) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, kind: str, count: int = 1) -> List[tuple]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.of(kind)) >= count, 10), self.events
            return self.of(kind)

    def of(self, kind: str) -> List[tuple]:
        return [event for event in self.events if event[0] == kind]

    def on_open(self, conn):
        self.record("open", conn)

    def on_close(self, conn):
        self.record("close", conn)

    def on_error(self, conn, exc):
        self.record("error", conn, exc)

    def on_call(self, conn, call_id, topic, params):
        self.record("call", conn, topic.id, params)
        name = topic.id.rpartition("#")[2]
        if name == "add":
            conn.call_result(call_id, sum(params))
        elif name == "defer":  # answered later, in reverse order, by answer_deferred()
            self.pending.append((conn, call_id, params[0]))
        elif name == "divide":
            if params[1] == 0:
                raise CallError(BASE + "error#division-by-zero", "division by zero", {"dividend": params[0]})
            conn.call_result(call_id, params[0] / params[1])
        elif name == "fail":
            raise RuntimeError("the database is down")
        elif name == "own-error":
            conn.call_error(call_id, topic, "my own error")
        else:
            super().on_call(conn, call_id, topic, params)

    def answer_deferred(self):
        for conn, call_id, value in reversed(self.pending):
            conn.call_result(call_id, value * 10)
        self.pending.clear()

    def on_subscribe(self, conn, topic):
        self.record("subscribe", conn, topic.id)
        if topic.id.endswith("#explode"):
            raise ValueError("subscription refused")

    def on_unsubscribe(self, conn, topic):
        self.record("unsubscribe", conn, topic.id)

    def on_publish(self, conn, topic, event, exclude, eligible):
        self.record("publish", conn, topic.id, event, exclude, eligible)
        super().on_publish(conn, topic, event, exclude, eligible)


class Client(WsClient):
    """A WAMP v1 client on the test WebSocket client."""

    def __init__(self, port: int, subprotocol: Any = "wamp", path: str = "/") -> None:
        extra = [("Sec-WebSocket-Protocol", subprotocol)] if subprotocol else []
        super().__init__(port, path, extra=extra)
        assert self.status == 101
        welcome = self.recv_json()
        assert welcome[0] == 0 and welcome[2] == 1
        self.session_id = welcome[1]
        self.server_ident = welcome[3]

    def wamp(self, *elements: Any) -> None:
        self.send(json.dumps(list(elements)))

    def recv_json(self) -> Any:
        return json.loads(self.recv_message())


def wamp_server(app: Any = None, **kwargs: Any) -> ServerThread:
    return ServerThread(WsServer(WampServer(app if app is not None else App(), **kwargs)))


@pytest.fixture
def served():
    app = App()
    wamp = WampServer(app, max_topics_per_connection=5, max_prefixes_per_connection=3)
    with ServerThread(WsServer(wamp)) as st:
        st.app = app
        st.wamp = wamp
        yield st


def sync(st: ServerThread, client: Client) -> None:
    """Round trip through the server: everything the client sent before has been handled."""
    client.wamp(2, "sync", BASE + "rpc#add")
    assert client.recv_json() == [3, "sync", 0]


def test_welcome_session_ids_are_unique_and_subprotocol_wamp(served):
    clients = [Client(served.port) for _ in range(3)]
    assert clients[0].headers["sec-websocket-protocol"] == "wamp"
    assert clients[0].server_ident.startswith("ratchet_sel/")
    ids = {client.session_id for client in clients}
    assert len(ids) == 3
    assert all(len(sid) == 32 for sid in ids)
    opened = served.app.wait_for("open", 3)
    assert {event[1].session_id for event in opened} == ids
    # A client that offers no subprotocol (the wamp1 npm package) is served too.
    bare = Client(served.port, subprotocol=None)
    assert "sec-websocket-protocol" not in bare.headers
    assert served.wamp.subprotocols == ["wamp"]


def test_call_result_with_prefix_and_calls_in_flight(served):
    client = Client(served.port)
    client.wamp(1, "rpc", BASE + "rpc#")
    client.wamp(2, "c1", "rpc:add", 1, 2, 3.5)
    assert client.recv_json() == [3, "c1", 6.5]
    assert served.app.of("call")[0][2:] == (BASE + "rpc#add", [1, 2, 3.5])
    assert served.call(lambda: served.app.of("call")[0][1].prefixes) == {"rpc": BASE + "rpc#"}
    for n in range(5):
        client.wamp(2, "d%d" % n, "rpc:defer", n)
    served.app.wait_for("call", 6)
    served.call(served.app.answer_deferred)
    answers = [client.recv_json() for _ in range(5)]
    assert answers == [[3, "d%d" % n, n * 10] for n in reversed(range(5))]


def test_call_errors(served, caplog):
    client = Client(served.port)
    client.wamp(2, "e1", BASE + "rpc#divide", 1, 0)
    assert client.recv_json() == [4, "e1", BASE + "error#division-by-zero", "division by zero", {"dividend": 1}]
    client.wamp(2, "e2", BASE + "rpc#own-error")
    assert client.recv_json() == [4, "e2", BASE + "rpc#own-error", "my own error"]
    client.wamp(2, "e3", BASE + "rpc#nothing")
    assert client.recv_json() == [4, "e3", ERROR_NO_SUCH_PROCEDURE, "no procedure %srpc#nothing" % BASE]
    with caplog.at_level(logging.ERROR, logger="ratchet_sel.wamp"):
        client.wamp(2, "e4", BASE + "rpc#fail")
        assert client.recv_json() == [4, "e4", ERROR_GENERIC, "internal server error"]
    assert any("the database is down" in (record.exc_text or "") or record.exc_info
               for record in caplog.records if "on_call" in record.getMessage())
    # The connection survives every one of them.
    client.wamp(2, "ok", BASE + "rpc#divide", 9, 3)
    assert client.recv_json() == [3, "ok", 3.0]


def test_subscribe_publish_exclude_eligible_unsubscribe(served):
    topic = BASE + "topic#news"
    a, b, c = (Client(served.port) for _ in range(3))
    for client in (a, b, c):
        client.wamp(1, "t", BASE + "topic#")
        client.wamp(5, "t:news")
        client.wamp(5, topic)  # the same topic again: ignored
        sync(served, client)
    subscribed = served.app.of("subscribe")
    assert len(subscribed) == 3 and {event[2] for event in subscribed} == {topic}
    assert served.call(lambda: len(served.wamp.get_topic(topic))) == 3

    # Default (and excludeMe true): everybody but the publisher.
    a.wamp(7, "t:news", {"n": 1})
    assert b.recv_json() == [8, topic, {"n": 1}]
    assert c.recv_json() == [8, topic, {"n": 1}]
    a.wamp(7, topic, "two", True)
    assert b.recv_json() == [8, topic, "two"] and c.recv_json() == [8, topic, "two"]
    # excludeMe false: the publisher too.
    a.wamp(7, topic, 3, False)
    assert [x.recv_json() for x in (a, b, c)] == [[8, topic, 3]] * 3
    # exclude list: only those left out (the publisher gets it).
    a.wamp(7, topic, 4, [b.session_id])
    assert a.recv_json() == [8, topic, 4] and c.recv_json() == [8, topic, 4]
    # eligible: only those.
    a.wamp(7, topic, 5, [], [b.session_id])
    assert b.recv_json() == [8, topic, 5]
    # both: eligible minus excluded.
    a.wamp(7, topic, 6, [c.session_id], [a.session_id, c.session_id])
    assert a.recv_json() == [8, topic, 6]
    publishes = served.app.of("publish")
    assert publishes[0][4:] == ([a.session_id], [])
    assert publishes[-1][4:] == ([c.session_id], [a.session_id, c.session_id])
    # Nothing else arrived anywhere: a sync round trip comes back first.
    for client in (a, b, c):
        sync(served, client)

    b.wamp(6, "t:news")
    b.wamp(6, "t:news")  # not subscribed any more: ignored
    sync(served, b)
    assert len(served.app.of("unsubscribe")) == 1
    a.wamp(7, topic, 7, False)
    assert a.recv_json() == [8, topic, 7] and c.recv_json() == [8, topic, 7]
    sync(served, b)  # b got nothing


def test_close_leaves_every_topic(served):
    hub = served.wamp.topics
    a, b = Client(served.port), Client(served.port)
    for name in ("x", "y"):
        a.wamp(5, BASE + name)
    b.wamp(5, BASE + "x")
    sync(served, a)
    sync(served, b)
    conn_a = served.app.of("open")[0][1]
    assert served.call(lambda: {t.id for t in conn_a.topics}) == {BASE + "x", BASE + "y"}
    a.close()
    served.app.wait_for("close")
    assert served.call(lambda: sorted(hub.topic_names())) == [BASE + "x"]
    assert served.call(lambda: [t.id for t in served.wamp.topic_manager]) == [BASE + "x"]
    b.close()
    served.app.wait_for("close", 2)
    assert served.call(lambda: len(hub.topic_names())) == 0


def test_server_side_broadcast_prefix_and_event(served):
    client = Client(served.port)
    client.wamp(5, BASE + "t")
    sync(served, client)
    conn = served.app.of("open")[0][1]
    served.call(lambda: conn.prefix("srv", BASE + "server#"))
    assert client.recv_json() == [1, "srv", BASE + "server#"]
    client.wamp(2, "c", "srv:add", 2)  # the server's prefix expands the client's CURIEs too
    assert served.app.wait_for("call", 2)[-1][2] == BASE + "server#add"
    assert client.recv_json() == [3, "c", 2]
    served.call(lambda: conn.event(BASE + "direct", [1]))
    assert client.recv_json() == [8, BASE + "direct", [1]]
    served.call(lambda: served.wamp.broadcast(BASE + "t", {"from": "server"}))
    assert client.recv_json() == [8, BASE + "t", {"from": "server"}]
    served.call(lambda: served.wamp.broadcast(BASE + "t", "skip me", exclude=[conn]))
    served.call(lambda: served.wamp.get_topic(BASE + "t").broadcast("only me", eligible=conn.session_id))
    assert client.recv_json() == [8, BASE + "t", "only me"]


def test_raw_publications_become_events(served):
    """What other programs publish on the hub: JSON text is the payload decoded, other text a string."""
    client = Client(served.port)
    client.wamp(5, "news")
    sync(served, client)
    hub = served.wamp.topics
    served.call(lambda: hub.deliver_remote(Publication("news", '{"title": "Hello"}', origin="")))
    assert client.recv_json() == [8, "news", {"title": "Hello"}]
    served.call(lambda: hub.deliver_remote(Publication("news", "new post in category X", origin="")))
    assert client.recv_json() == [8, "news", "new post in category X"]
    served.call(lambda: hub.deliver_remote(Publication("news", b"[1, 2]", origin="")))
    assert client.recv_json() == [8, "news", [1, 2]]
    served.call(lambda: hub.deliver_remote(Publication("news", b"\xff\xfe", origin="")))  # dropped
    served.call(lambda: hub.publish("news", "NaN"))  # not strict JSON: a string
    assert client.recv_json() == [8, "news", "NaN"]


class RecordingBackplane(Backplane):
    def __init__(self) -> None:
        self.published: List[Publication] = []
        self.channels: List[str] = []

    def channel_added(self, topic: str) -> None:
        self.channels.append(topic)

    def channel_removed(self, topic: str) -> None:
        self.channels.remove(topic)

    def publish(self, publication: Publication) -> None:
        self.published.append(publication)


def test_topics_span_processes_through_the_hub_backplane():
    backplane = RecordingBackplane()
    app = App()
    wamp = WampServer(app, Topics(backplane))
    with ServerThread(WsServer(wamp)) as st:
        a, b = Client(st.port), Client(st.port)
        for client in (a, b):
            client.wamp(5, BASE + "t")
            sync(st, client)
        assert backplane.channels == [BASE + "t"]
        a.wamp(7, BASE + "t", {"k": "v"}, [], [b.session_id, "remote-session"])
        assert b.recv_json() == [8, BASE + "t", {"k": "v"}]
        sent = st.call(lambda: backplane.published[-1])
        assert sent.topic == BASE + "t" and json.loads(sent.message) == {"k": "v"}
        assert sent.eligible == {b.session_id, "remote-session"}
        # From another process: exclusion by session id works across the hub.
        remote = Publication(BASE + "t", '"from afar"', exclude=[a.session_id], origin="other-node")
        st.call(lambda: wamp.topics.deliver_remote(remote))
        assert b.recv_json() == [8, BASE + "t", "from afar"]
        sync(st, a)  # a got nothing
        a.close()
        b.close()
        app.wait_for("close", 2)
        assert backplane.channels == []


class WireBackplane(Backplane):
    """Carries publications to a peer hub on another loop, through the wire envelope."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.peer: Any = None
        self.loop: Any = None

    def publish(self, publication: Publication) -> None:
        from ratchet_sel.pubsub import envelope
        data = envelope.encode(publication)
        peer = self.peer

        def arrive() -> None:
            received = envelope.decode(publication.topic, data)
            # Both hubs live in this test process: give the copy the sender's own node id.
            peer.hub.deliver_remote(Publication(received.topic, received.message, received.exclude,
                                                received.eligible, origin=self.node))
        peer.loop.call_soon_threadsafe(arrive)


def test_a_wamp_topic_spans_two_servers_on_two_loops():
    one, two = WireBackplane("node-one"), WireBackplane("node-two")
    one.peer, two.peer = two, one
    app_one, app_two = App(), App()
    with ServerThread(WsServer(WampServer(app_one, Topics(one)))) as st1, \
            ServerThread(WsServer(WampServer(app_two, Topics(two)))) as st2:
        one.loop, two.loop = st1.loop, st2.loop
        a = Client(st1.port)
        b, c = Client(st2.port), Client(st2.port)
        for client, st in ((a, st1), (b, st2), (c, st2)):
            client.wamp(5, BASE + "t")
            sync(st, client)
        a.wamp(7, BASE + "t", {"n": 1})  # default: everybody but a, on both servers
        assert b.recv_json() == [8, BASE + "t", {"n": 1}] and c.recv_json() == [8, BASE + "t", {"n": 1}]
        a.wamp(7, BASE + "t", {"n": 2}, [b.session_id])
        assert a.recv_json() == [8, BASE + "t", {"n": 2}] and c.recv_json() == [8, BASE + "t", {"n": 2}]
        a.wamp(7, BASE + "t", {"n": 3}, [], [b.session_id])
        assert b.recv_json() == [8, BASE + "t", {"n": 3}]
        c.wamp(7, BASE + "t", "from two", [c.session_id], [a.session_id, c.session_id])
        assert a.recv_json() == [8, BASE + "t", "from two"]
        for client, st in ((a, st1), (b, st2), (c, st2)):
            sync(st, client)  # nothing else arrived anywhere


def test_topic_manager_without_a_server():
    manager = TopicManager()

    class Conn:
        session_id = "s"
        subscribed_topics: dict = {}

    conn = Conn()
    topic = manager.subscribe(conn, "t")
    assert isinstance(topic, Topic) and str(topic) == "t" and topic.has(conn) and list(topic) == [conn]
    assert manager.subscribe(conn, "t") is None
    assert "t" in manager and len(manager) == 1
    assert manager.unsubscribe(conn, "t") is topic
    assert manager.unsubscribe(conn, "t") is None
    assert "t" not in manager and manager.get_topic("t").subscribers == frozenset()


@pytest.mark.parametrize("text,code,reason", [
    ("not json", 1007, "not valid JSON"),
    ('{"a":1}', 1002, "non-empty JSON array"),
    ("[42]", 1002, "unknown message type 42"),
    ('[5,17]', 1002, "SUBSCRIBE topicURI must be"),
    ('[7,"t",1,"yes"]', 1002, "excludeMe"),
    ('[3,"c",1]', 1002, "sent by servers"),
])
def test_bad_input_closes_with_a_reason_and_spares_the_others(served, text, code, reason):
    bystander = Client(served.port)
    client = Client(served.port)
    client.send(text)
    close = client.expect_close()
    assert close.code == code and reason in close.reason
    client.send_frame(0x8, close.code.to_bytes(2, "big"))  # complete the closing handshake
    assert client.at_eof()
    assert not served.app.of("call") and not served.app.of("publish") and not served.app.of("error")
    served.app.wait_for("close")
    sync(served, bystander)


def test_binary_message_closes_1003(served):
    client = Client(served.port)
    client.send(b'[5,"t"]')
    assert client.expect_close().code == 1003


def test_limits_on_topics_and_prefixes(served):
    client = Client(served.port)
    for n in range(5):
        client.wamp(5, BASE + str(n))
    client.wamp(5, BASE + "0")  # already subscribed: not counted
    sync(served, client)
    client.wamp(5, BASE + "one-too-many")
    close = client.expect_close()
    assert close.code == 1008 and "more than 5 topics" in close.reason

    client = Client(served.port)
    for n in range(3):
        client.wamp(1, "p%d" % n, BASE)
    client.wamp(1, "p0", BASE + "again/")  # redefining is not a new prefix
    sync(served, client)
    client.wamp(1, "p3", BASE)
    close = client.expect_close()
    assert close.code == 1008 and "more than 3 prefixes" in close.reason
    conn = served.app.of("open")[-1][1]
    with pytest.raises(ValueError):
        served.call(lambda: conn.prefix("p9", BASE))


def test_application_errors_go_to_on_error_and_the_connection_survives(served):
    client = Client(served.port)
    client.wamp(5, BASE + "topic#explode")
    error = served.app.wait_for("error")[0]
    assert isinstance(error[2], ValueError) and error[1].session_id == client.session_id
    sync(served, client)


def test_default_interface_broadcasts_and_knows_no_procedures():
    with wamp_server(WampServerInterface()) as st:
        a, b = Client(st.port), Client(st.port)
        b.wamp(5, "t")
        sync_default = [2, "x", "nothing"]
        b.wamp(*sync_default)
        assert b.recv_json()[:3] == [4, "x", ERROR_NO_SUCH_PROCEDURE]
        a.wamp(7, "t", "hi")
        assert b.recv_json() == [8, "t", "hi"]


def test_behind_a_router_with_other_subprotocols():
    class Chat(App):
        subprotocols = ["chat.v2"]

    router = Router()
    router.add("/wamp", WsServer(WampServer(Chat())))
    with ServerThread(HttpServer(router)) as st:
        client = Client(st.port, path="/wamp")
        assert client.headers["sec-websocket-protocol"] == "wamp"
        client.wamp(2, "c", BASE + "rpc#add", 40, 2)
        assert client.recv_json() == [3, "c", 42]
        other = WsClient(st.port, "/wamp", extra=[("Sec-WebSocket-Protocol", "chat.v2, wamp")])
        assert other.headers["sec-websocket-protocol"] == "chat.v2"
        close = Client(st.port, path="/wamp").close()
        assert isinstance(close, Close) and close.code == 1000


def test_behind_app_route():
    from ratchet_sel import App as RatchetApp

    wamp_app = App()
    app = RatchetApp("127.0.0.1", 0)
    app.route("/wamp", WampServer(wamp_app), allowed_origins="*")
    thread = threading.Thread(target=app.loop.run, daemon=True)
    thread.start()
    try:
        client = Client(app.port, path="/wamp")
        assert client.headers["sec-websocket-protocol"] == "wamp"
        client.wamp(2, "c", BASE + "rpc#add", 1, 1)
        assert client.recv_json() == [3, "c", 2]
        assert wamp_app.wait_for("call")[0][2:] == (BASE + "rpc#add", [1, 1])
    finally:
        app.loop.call_soon_threadsafe(app.loop.stop)
        thread.join(10)
        app.server.close()
        app.loop.close()


# -- the push example, run as a real program ------------------------------------------------

@pytest.fixture
def push_example():
    import os
    import re
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, WAMP_PUSH_TOKEN="s3cret", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, os.path.join(root, "examples", "wamp_push.py"), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        for line in proc.stdout:
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if found:
                break
        else:
            raise AssertionError("the example exited without a listening line")
        yield int(found.group(1))
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def _post(port: int, body: bytes, token: Any = "s3cret") -> tuple:
    from wsclient import http_exchange
    headers = "Authorization: Bearer %s\r\n" % token if token else ""
    request = ("POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n%s"
               "Connection: close\r\n\r\n" % (len(body), headers)).encode() + body
    status, _, rest = http_exchange(port, request)
    return status, rest


@pytest.mark.timeout(60)
def test_push_example_web_app_publication_reaches_subscribers(push_example):
    port = push_example
    kittens, puppies = Client(port), Client(port)
    kittens.wamp(5, "kittens")
    puppies.wamp(5, "puppies")
    for client in (kittens, puppies):
        client.wamp(2, "sync", "http://example.com/push#add", 1)
        assert client.recv_json() == [3, "sync", 1]
    entry = {"category": "kittens", "title": "New kitten", "when": 1}
    assert _post(port, json.dumps(entry).encode())[0] == 202
    assert kittens.recv_json() == [8, "kittens", entry]
    puppies.wamp(2, "sync", "http://example.com/push#add")
    assert puppies.recv_json() == [3, "sync", 0]  # the kitten post did not come first
    assert _post(port, json.dumps(entry).encode(), token="wrong")[0] == 401
    assert _post(port, json.dumps(entry).encode(), token=None)[0] == 401
    assert _post(port, b"not json")[0] == 400
    assert _post(port, b'{"title": "no category"}')[0] == 400
    kittens.wamp(2, "c", "http://example.com/push#divide", 1, 0)
    assert kittens.recv_json()[:3] == [4, "c", "http://example.com/push#division-by-zero"]
    from wsclient import http_exchange
    status, _, page = http_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and b"/wamp1.js" in page
    status, _, script = http_exchange(port, b"GET /wamp1.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and b"class Wamp1" in script
