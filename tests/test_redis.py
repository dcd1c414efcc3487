"""RedisPubSub against a real redis-server (never a mock): chat servers in separate processes.

Every test here skips when ``redis-server`` is not installed; CI installs it
and fails when these tests were skipped (scripts/ci_redis.sh).
"""

import json
import logging
import socket
import ssl
import threading
import time
from typing import Any, List

import pytest
from redis_support import (REDIS_SERVER, SKIP_REASON, ChatProcess, Forwarder, RawRedis, RedisProcess, free_port,
                           wait_subscribers, wait_until)
from support import ServerThread
from wsclient import WsClient

from ratchet_sel import MessageComponent
from ratchet_sel.pubsub import RedisPubSub, envelope

pytestmark = [pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON), pytest.mark.timeout(120)]

CHANNEL = "ratchet_sel:chat"
CONNECTED = r"redis redis://127\.0\.0\.1:\d+/\d+: connected"
TOKEN = "s3cret-token"


@pytest.fixture
def redis():
    with RedisProcess() as server:
        yield server


def chat_pair(redis: RedisProcess, *extra: str):
    a = ChatProcess("--redis", redis.url, *extra)
    b = ChatProcess("--redis", redis.url, *extra)
    a.log.wait_for(CONNECTED, 15)
    b.log.wait_for(CONNECTED, 15)
    return a, b


# -- two servers, one Redis ---------------------------------------------------------------
def test_a_message_from_a_client_of_one_server_reaches_the_other_server_but_not_the_sender(redis):
    a, b = chat_pair(redis)
    with a, b, WsClient(a.port) as alice, WsClient(a.port) as anne, WsClient(b.port) as bob:
        assert alice.status == anne.status == bob.status == 101
        wait_subscribers(redis.port, CHANNEL, 2)
        alice.send("hello from A")
        assert bob.recv_message() == "hello from A"
        assert anne.recv_message() == "hello from A"
        bob.send(b"\x00binary\xff")
        assert anne.recv_message() == b"\x00binary\xff"
        # alice was excluded from her own message: the first thing she gets is bob's.
        assert alice.recv_message() == b"\x00binary\xff"
        # bob is excluded from his own message although it came back to B through Redis
        alice.send("second")
        assert bob.recv_message() == "second"


def test_a_raw_publish_from_any_redis_client_reaches_websocket_subscribers(redis):
    with ChatProcess("--redis", redis.url) as a, WsClient(a.port) as alice:
        a.log.wait_for(CONNECTED, 15)
        wait_subscribers(redis.port, CHANNEL, 1)
        with RawRedis(redis.port) as raw:
            assert raw.command("PUBLISH", CHANNEL, "pushed by redis-cli") == 1
            assert raw.command("PUBLISH", CHANNEL, b"\xff\xfe not utf-8") == 1
            assert raw.command("PUBLISH", "ratchet_sel:other", "not this topic") == 0
        assert alice.recv_message() == "pushed by redis-cli"
        assert alice.recv_message() == b"\xff\xfe not utf-8"


def test_redis_prefix_changes_the_channel(redis):
    with ChatProcess("--redis", redis.url, "--redis-prefix", "site1/") as a, WsClient(a.port) as alice:
        a.log.wait_for(CONNECTED, 15)
        wait_subscribers(redis.port, "site1/chat", 1)
        with RawRedis(redis.port) as raw:
            assert raw.numsub(CHANNEL) == 0
            raw.command("PUBLISH", "site1/chat", "prefixed")
        assert alice.recv_message() == "prefixed"


# -- faults ------------------------------------------------------------------------------------
def test_local_delivery_goes_on_while_redis_is_down_and_cross_server_delivery_resumes_after_restart(redis):
    a, b = chat_pair(redis)
    with a, b, WsClient(a.port) as alice, WsClient(a.port) as anne, WsClient(b.port) as bob:
        wait_subscribers(redis.port, CHANNEL, 2)
        alice.send("before")
        assert bob.recv_message() == "before"
        assert anne.recv_message() == "before"

        redis.stop()
        a.log.wait_for(r"connection lost", 15)
        for n in range(20):
            alice.send("local %d" % n)
        for n in range(20):
            assert anne.recv_message() == "local %d" % n

        restarted = time.monotonic()
        redis.start()
        # Probe until bob hears from A; it must happen within 10 s of the restart.
        bob.sock.settimeout(0.3)
        heard = None
        while heard is None and time.monotonic() - restarted < 10:
            alice.send("probe")
            try:
                while True:
                    message = bob.recv_message()
                    if message == "probe":
                        heard = time.monotonic() - restarted
                        break
            except socket.timeout:
                continue
        assert heard is not None, "cross-server delivery did not resume within 10 s:\n" + a.log.text()
        a.log.wait_for(r"restored after", 15)
        b.log.wait_for(r"restored after", 15)
        for server in (a, b):
            # each transition once per outage, not once per message
            assert server.log.count(r"connection lost") == 1, server.log.text()
            assert server.log.count(r"reconnecting") == 1, server.log.text()
            assert server.log.count(r"restored after") == 1, server.log.text()
        assert a.proc.poll() is None and b.proc.poll() is None


def test_ten_thousand_messages_arrive_in_order_on_the_other_server(redis):
    a, b = chat_pair(redis)
    total = 10000
    with a, b, WsClient(a.port) as alice, WsClient(b.port) as bob:
        wait_subscribers(redis.port, CHANNEL, 2)
        received: List[Any] = []

        def read() -> None:
            while len(received) < total:
                received.append(bob.recv_message())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        for n in range(total):
            alice.send("m%05d" % n)
        reader.join(90)
        assert not reader.is_alive(), "only %d of %d arrived" % (len(received), total)
        assert received == ["m%05d" % n for n in range(total)]


def test_a_server_pointed_at_a_silent_address_starts_logs_and_connects_once_redis_is_there():
    port = free_port()
    with ChatProcess("--redis", "redis://127.0.0.1:%d/0" % port) as a:
        a.log.wait_for(r"ERROR .*redis redis://127\.0\.0\.1:%d/0: cannot connect .*retrying" % port, 15)
        with WsClient(a.port) as alice, WsClient(a.port) as anne:
            alice.send("local works")
            assert anne.recv_message() == "local works"
            with RedisProcess(port):
                a.log.wait_for(r"connected after", 15)
                wait_subscribers(port, CHANNEL, 1)
                with RawRedis(port) as raw:
                    raw.command("PUBLISH", CHANNEL, "now through redis")
                assert alice.recv_message() == "now through redis"
        assert a.log.count(r"cannot connect") == 1, a.log.text()


# -- in-process: the backplane on a loop thread --------------------------------------------------
class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> List[str]:
        return [record.getMessage() for record in self.records]


@pytest.fixture
def captured():
    handler = _Capture()
    logger = logging.getLogger("ratchet_sel.pubsub.redis")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


def _subscribe_raw(port: int, channel: str) -> RawRedis:
    raw = RawRedis(port)
    assert raw.command("SUBSCRIBE", channel)[0] == b"subscribe"
    return raw


def _payloads(raw: RawRedis, count: int) -> List[Any]:
    return [envelope.decode("t", raw.reply()[2]).message for _ in range(count)]


def test_publications_made_while_down_are_queued_up_to_the_limit_and_sent_in_order_on_connect(redis, captured):
    # The hub reaches Redis through a forwarder that is closed at first: nothing listens there.
    forwarder = Forwarder(redis.port)
    with ServerThread(MessageComponent()) as st:
        hub = st.call(lambda: RedisPubSub("redis://127.0.0.1:%d/0" % forwarder.port, loop=st.loop, max_pending=3,
                                          min_backoff=0.05, max_backoff=0.2))
        for n in range(5):
            st.call(hub.publish, "t", "p%d" % n)
        stats = st.call(hub.stats)
        assert stats["queued"] == 3 and stats["dropped"] == 2
        raw = _subscribe_raw(redis.port, "ratchet_sel:t")
        forwarder.open()
        try:
            wait_until(lambda: st.call(lambda: hub.connected), 10, "the hub to connect")
            st.call(hub.publish, "t", "after")
            assert _payloads(raw, 4) == ["p2", "p3", "p4", "after"]
            assert st.call(hub.stats)["queued"] == 0
        finally:
            raw.close()
            st.call(hub.close)
            forwarder.close()
    messages = captured.messages()
    assert sum("cannot connect" in m for m in messages) == 1, messages
    assert sum("dropping the oldest" in m for m in messages) == 1, messages
    assert sum(": connected after" in m for m in messages) == 1, messages


def test_auth_and_select_from_the_url_and_a_refused_password_is_logged_and_retried(captured):
    with RedisProcess(None, "--requirepass", "pa ss") as server, ServerThread(MessageComponent()) as st:
        good = st.call(lambda: RedisPubSub("redis://:pa%%20ss@127.0.0.1:%d/3" % server.port, loop=st.loop))
        bad = st.call(lambda: RedisPubSub("redis://:wrong@127.0.0.1:%d/3" % server.port, loop=st.loop,
                                          min_backoff=0.05, max_backoff=0.1))
        wait_until(lambda: st.call(lambda: good.connected), 10, "login with the right password")
        wait_until(lambda: st.call(lambda: bad.stats()["reconnects"]) >= 2, 10, "retries of the bad login")
        assert not st.call(lambda: bad.connected)
        received: List[Any] = []
        st.call(good.add_listener, "news", received.append)
        with RawRedis(server.port) as raw:
            assert raw.command("AUTH", "pa ss") == "OK"
            wait_until(lambda: raw.numsub("ratchet_sel:news") == 1, 10, "the subscription")
            raw.command("PUBLISH", "ratchet_sel:news", "authenticated")
        wait_until(lambda: received, 10, "the publication")
        assert received[0].message == "authenticated"
        st.call(good.close)
        st.call(bad.close)
    refused = [m for m in captured.messages() if "cannot connect" in m]
    assert len(refused) == 1 and "login refused: WRONGPASS" in refused[0], refused


def test_a_redis_gone_silent_is_found_by_ping_and_the_connection_made_again(redis, captured):
    forwarder = Forwarder(redis.port).open()
    with ServerThread(MessageComponent()) as st:
        hub = st.call(lambda: RedisPubSub("redis://127.0.0.1:%d/0" % forwarder.port, loop=st.loop,
                                          health_interval=0.2, min_backoff=0.05, max_backoff=0.2))
        received: List[Any] = []
        st.call(hub.add_listener, "t", received.append)
        wait_until(lambda: st.call(lambda: hub.connected), 10, "the hub to connect")
        forwarder.silent = True   # the TCP connections stay open, nothing comes back
        wait_until(lambda: any("no answer to PING" in m for m in captured.messages()), 10, "the health check")
        forwarder.silent = False
        wait_until(lambda: st.call(lambda: hub.connected), 10, "the hub to reconnect")
        with RawRedis(redis.port) as raw:
            wait_until(lambda: raw.numsub("ratchet_sel:t") == 1, 10, "the subscription made again")
            raw.command("PUBLISH", "ratchet_sel:t", "after the silence")
        wait_until(lambda: received, 10, "the publication")
        assert received[0].message == "after the silence"
        st.call(hub.close)
    forwarder.close()


def test_a_broken_envelope_from_another_program_is_counted_and_logged_once(redis, captured):
    with ServerThread(MessageComponent()) as st, RawRedis(redis.port) as raw:
        hub = st.call(lambda: RedisPubSub(redis.url, loop=st.loop))
        received: List[Any] = []
        st.call(hub.add_listener, "t", received.append)
        wait_until(lambda: raw.numsub("ratchet_sel:t") == 1, 10, "the subscription")
        for _ in range(3):
            raw.command("PUBLISH", "ratchet_sel:t", envelope.MAGIC + b"{not json\npayload")
        raw.command("PUBLISH", "ratchet_sel:t", "fine")
        wait_until(lambda: received, 10, "the good publication")
        assert [p.message for p in received] == ["fine"]
        assert st.call(hub.stats)["malformed"] == 3
        assert st.call(lambda: hub.connected)  # a bad publication is no reason to reconnect
        st.call(hub.close)
    warnings = [r for r in captured.records if "malformed" in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(warnings) == 1


def test_channels_follow_local_subscriptions(redis):
    with ServerThread(MessageComponent()) as st, RawRedis(redis.port) as raw:
        hub = st.call(lambda: RedisPubSub(redis.url, loop=st.loop, prefix="p:"))

        def listener(publication: Any) -> None:
            pass

        st.call(hub.add_listener, "a", listener)
        st.call(hub.add_listener, "b", listener)
        wait_until(lambda: raw.numsub("p:a") == 1 and raw.numsub("p:b") == 1, 10, "two channels")
        st.call(hub.remove_listener, "a", listener)
        wait_until(lambda: raw.numsub("p:a") == 0, 10, "channel a to be unsubscribed")
        assert raw.numsub("p:b") == 1
        st.call(hub.close)


def test_a_garbage_reply_is_a_logged_reconnect_and_never_reaches_the_application(captured):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: List[socket.socket] = []

    def garbage_server() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            accepted.append(conn)
            conn.sendall(b"!this is not RESP\r\n")

    thread = threading.Thread(target=garbage_server, daemon=True)
    thread.start()
    with ServerThread(MessageComponent()) as st:
        hub = st.call(lambda: RedisPubSub("redis://127.0.0.1:%d/0" % listener.getsockname()[1], loop=st.loop,
                                          min_backoff=0.05, max_backoff=0.1))
        thread.join(15)
        assert not thread.is_alive(), "the client did not reconnect after garbage"
        wait_until(lambda: st.call(hub.stats)["garbage"] >= 2, 10, "both garbage replies to be seen")
        assert st.call(hub.publish, "t", "still fine") == 0  # publishing never raises
        st.call(hub.close)
    for conn in accepted:
        conn.close()
    listener.close()
    assert any("garbage from the server" in m and "reconnecting" in m for m in captured.messages())


def test_rediss_connects_over_tls_with_a_verified_certificate(tmp_path):
    import os

    certs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "certs")
    port = free_port()
    with RedisProcess(None, "--port", "0", "--tls-port", str(port), "--tls-cert-file",
                      os.path.join(certs, "localhost.pem"), "--tls-key-file", os.path.join(certs, "localhost.key"),
                      "--tls-auth-clients", "no"), ServerThread(MessageComponent()) as st:
        context = ssl.create_default_context(cafile=os.path.join(certs, "localhost.pem"))
        hub = st.call(lambda: RedisPubSub("rediss://127.0.0.1:%d/0" % port, loop=st.loop, ssl_context=context))
        wait_until(lambda: st.call(lambda: hub.connected), 10, "the TLS connection")
        received: List[Any] = []
        st.call(hub.add_listener, "secure", received.append)
        st.call(hub.publish, "secure", b"\x00over tls")
        # our own publication comes back from Redis but is recognised and not delivered twice
        raw_context = ssl.create_default_context(cafile=os.path.join(certs, "localhost.pem"))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
            with raw_context.wrap_socket(plain, server_hostname="127.0.0.1") as tls:
                from ratchet_sel.pubsub.resp import RespParser, encode_command

                def numsub() -> int:
                    tls.sendall(encode_command("PUBSUB", "NUMSUB", "ratchet_sel:secure"))
                    return RespParser().feed(tls.recv(4096))[0][1]

                wait_until(lambda: numsub() == 1, 10, "the subscription over TLS")
                tls.sendall(encode_command("PUBLISH", "ratchet_sel:secure", "from outside"))
                tls.recv(4096)
        wait_until(lambda: len(received) >= 2, 10, "the publications")
        assert [p.message for p in received] == [b"\x00over tls", "from outside"]
        st.call(hub.close)


# -- push over HTTP, spanning servers --------------------------------------------------------
def _post(port: int, body: bytes, token: Any = TOKEN) -> Any:
    from wsclient import http_exchange

    headers = "POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n" % len(body)
    if token is not None:
        headers += "Authorization: Bearer %s\r\n" % token
    return http_exchange(port, headers.encode() + b"\r\n" + body)


def test_the_http_publish_endpoint_delivers_to_members_on_every_server(redis):
    a, b = chat_pair(redis, "--publish-token", TOKEN)
    with a, b, WsClient(a.port) as alice, WsClient(b.port) as bob:
        wait_subscribers(redis.port, CHANNEL, 2)
        assert _post(a.port, b"nope", token=None)[0] == 401
        assert _post(a.port, b"nope", token="wrong")[0] == 403
        assert _post(a.port, b"x" * (64 * 1024 + 1))[0] == 413
        status, _, body = _post(a.port, "new post in category X".encode())
        assert status == 200 and json.loads(body)["local_subscribers"] == 1
        assert alice.recv_message() == "new post in category X"
        assert bob.recv_message() == "new post in category X"


# -- WAMP topics on a Redis hub -------------------------------------------------------------------
WAMP_SERVER = """
import logging, sys
from ratchet_sel import IoServer, WsServer
from ratchet_sel.pubsub import RedisPubSub
from ratchet_sel.wamp import WampServer, WampServerInterface
logging.basicConfig(level=logging.INFO)
hub = RedisPubSub(sys.argv[1])
server = IoServer(WsServer(WampServer(WampServerInterface(), topics=hub)), "127.0.0.1", 0)
hub.bind(server.loop)
logging.getLogger("wamp-test").info("WAMP server on ws://127.0.0.1:%d/", server.port)
server.run()
"""


class WampClient(WsClient):
    def __init__(self, port: int) -> None:
        super().__init__(port, extra=[("Sec-WebSocket-Protocol", "wamp")])
        welcome = self.recv_json()
        assert welcome[0] == 0
        self.session_id = welcome[1]

    def wamp(self, *elements: Any) -> None:
        self.send(json.dumps(list(elements)))

    def recv_json(self) -> Any:
        return json.loads(self.recv_message())


def test_a_wamp_topic_spans_two_processes_through_redis_with_session_exclusion_and_eligibility(redis):
    from redis_support import ServerProcess

    topic = "http://example.com/news"
    with ServerProcess(["-c", WAMP_SERVER, redis.url]) as a, ServerProcess(["-c", WAMP_SERVER, redis.url]) as b:
        a.log.wait_for(CONNECTED, 15)
        b.log.wait_for(CONNECTED, 15)
        a1, a2, b1 = WampClient(a.port), WampClient(a.port), WampClient(b.port)
        for client in (a1, a2, b1):
            client.wamp(5, topic)
        wait_subscribers(redis.port, "ratchet_sel:" + topic, 2)
        a1.wamp(7, topic, {"n": 1}, True)                     # excludeMe
        assert b1.recv_json() == [8, topic, {"n": 1}]
        assert a2.recv_json() == [8, topic, {"n": 1}]
        a1.wamp(7, topic, "for b1 only", [], [b1.session_id])  # eligible: a session on the other server
        assert b1.recv_json() == [8, topic, "for b1 only"]
        b1.wamp(7, topic, {"n": 2}, [a2.session_id])          # exclude a session on the other server
        assert b1.recv_json() == [8, topic, {"n": 2}]          # an explicit list replaces excludeMe
        # a1 was excluded from its own event and not eligible for the second: b1's is its first
        assert a1.recv_json() == [8, topic, {"n": 2}]
        b1.wamp(7, topic, {"n": 3}, True)
        assert a1.recv_json() == [8, topic, {"n": 3}]
        # a2 got n=1, then nothing until n=3: excluded from n=2, not eligible for "for b1 only"
        assert a2.recv_json() == [8, topic, {"n": 3}]
        for client in (a1, a2, b1):
            client.shutdown()


def test_every_address_of_a_host_name_is_tried(redis, monkeypatch):
    # "localhost" often resolves to ::1 first while Redis listens on 127.0.0.1 only.
    import socket as socket_module

    real = socket_module.getaddrinfo
    closed_port = free_port()

    def both(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if host == "redis.test":
            return real("127.0.0.1", closed_port, *args, **kwargs) + real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket_module, "getaddrinfo", both)
    with ServerThread(MessageComponent()) as st:
        hub = st.call(lambda: RedisPubSub("redis://redis.test:%d/0" % redis.port, loop=st.loop))
        wait_until(lambda: st.call(lambda: hub.connected), 10, "the second address to answer")
        assert st.call(hub.stats)["reconnects"] == 0
        st.call(hub.close)
