"""Topics: the in-process hub, its backplane contract and the wire envelope."""

import threading

import pytest

from ratchet_sel.pubsub import Backplane, Publication, Topics, subscriber_key
from ratchet_sel.pubsub import envelope

from ratchet_sel import MessageComponent, WsServer
from support import ServerThread
from wsclient import WsClient


class FakeConn:
    """Just enough of a WsConnection for the hub: close listeners and send."""

    def __init__(self, name):
        self.name = name
        self.sent = []
        self._listeners = []

    def add_close_listener(self, fn):
        self._listeners.append(fn)

    def remove_close_listener(self, fn):
        if fn in self._listeners:
            self._listeners.remove(fn)

    def close_now(self):
        for fn in list(self._listeners):
            fn(self)


class RecordingBackplane(Backplane):
    def __init__(self):
        self.events = []

    def channel_added(self, topic):
        self.events.append(("add", topic))

    def channel_removed(self, topic):
        self.events.append(("remove", topic))

    def publish(self, publication):
        self.events.append(("publish", publication))


def test_membership_and_backplane_channels():
    bp = RecordingBackplane()
    hub = Topics(bp)
    a, b = FakeConn("a"), FakeConn("b")
    assert hub.subscribe(a, "t")
    assert not hub.subscribe(a, "t")
    assert hub.subscribe(b, "t")
    assert hub.subscribe(a, "u")
    assert hub.subscribers("t") == {a, b}
    assert hub.topics_of(a) == {"t", "u"}
    assert bp.events == [("add", "t"), ("add", "u")]
    assert hub.unsubscribe(b, "t")
    assert not hub.unsubscribe(b, "t")
    a.close_now()
    assert hub.topic_names() == frozenset()
    assert hub.topics_of(a) == frozenset()
    assert bp.events[2:] == [("remove", "t"), ("remove", "u")] or set(bp.events[2:]) == {
        ("remove", "t"), ("remove", "u")}
    assert a._listeners == []


def test_listener_keeps_channel_and_sees_every_publication():
    bp = RecordingBackplane()
    hub = Topics(bp)
    seen = []
    hub.add_listener("t", seen.append)
    assert "t" in hub
    hub.publish("t", "hi")
    remote = Publication("t", b"\x01", origin="elsewhere")
    hub.deliver_remote(remote)
    assert [p.message for p in seen] == ["hi", b"\x01"]
    hub.remove_listener("t", seen.append)
    assert bp.events[0] == ("add", "t") and bp.events[-1] == ("remove", "t")


def test_own_publications_echoed_back_are_dropped():
    hub = Topics()
    seen = []
    hub.add_listener("t", seen.append)
    assert hub.deliver_remote(Publication("t", "mine")) == 0
    assert seen == []


def test_keys_are_stable_and_respect_pubsub_key():
    a = FakeConn("a")
    assert subscriber_key(a) == subscriber_key(a)
    assert subscriber_key(a).startswith(envelope.NODE_ID)
    b = FakeConn("b")
    b.pubsub_key = "session-42"
    assert subscriber_key(b) == "session-42"


@pytest.mark.parametrize("message", ["text é", b"\x00\xff binary", "", b""])
def test_envelope_round_trip(message):
    pub = Publication("news", message, exclude={"k1"}, eligible={"k2", "k3"}, origin="node")
    back = envelope.decode("news", envelope.encode(pub))
    assert back == pub
    assert type(back.message) is type(message)


def test_raw_publications_from_other_programs():
    text = envelope.decode("news", "plain ünïcode".encode())
    assert text.message == "plain ünïcode" and text.origin == "" and not text.exclude
    binary = envelope.decode("news", b"\xff\xfe")
    assert binary.message == b"\xff\xfe"


@pytest.mark.parametrize("bad", [
    envelope.MAGIC + b"no newline",
    envelope.MAGIC + b"{not json}\n",
    envelope.MAGIC + b"[1]\n",
    envelope.MAGIC + b'{"o": 5}\n',
    envelope.MAGIC + b'{"o": "n", "x": [1]}\n',
    envelope.MAGIC + b'{"o": "n"}\n\xff',
])
def test_broken_envelopes_raise_envelope_error(bad):
    with pytest.raises(envelope.EnvelopeError):
        envelope.decode("t", bad)


class TopicChat(MessageComponent):
    """Subscribes on open to the topic named by the path; relays to the others."""

    def __init__(self, hub):
        self.hub = hub
        self.closed = threading.Event()

    def on_open(self, conn):
        self.hub.subscribe(conn, conn.request.path.strip("/"))

    def on_message(self, conn, msg):
        self.hub.publish(conn.request.path.strip("/"), msg, exclude=conn)

    def on_close(self, conn):
        self.closed.set()


def test_topics_over_real_connections():
    hub = Topics()
    app = TopicChat(hub)
    with ServerThread(WsServer(app)) as st:
        a, b, c = WsClient(st.port, "/room"), WsClient(st.port, "/room"), WsClient(st.port, "/other")
        try:
            a.send("hello")
            assert b.recv_message() == "hello"
            c.send("elsewhere")
            b.send("back")
            assert a.recv_message() == "back"
            # Binary stays binary; the excluded sender gets nothing.
            a.send(b"\x00\x01")
            assert b.recv_message() == b"\x00\x01"
            assert st.call(lambda: len(hub.subscribers("room"))) == 2
            b.close()
            assert app.closed.wait(10)
            # The closed connection left by itself, without the application's help
            # (the listener runs right after on_close, in the same loop callback).
            assert st.call(lambda: len(hub.subscribers("room"))) == 1
            a.send("alone")
            c.send("still here")
        finally:
            for client in (a, c):
                client.close()
    assert hub.topic_names() == frozenset()
