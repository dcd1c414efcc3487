"""ratchet_sel.pubsub.publish / Publisher: a blocking publisher, against a real redis-server and a real endpoint."""

import socket
import threading
import time

import pytest
from redis_support import (REDIS_SERVER, SKIP_REASON, ChatProcess, RawRedis, RedisProcess, free_port,
                           wait_subscribers, wait_until)
from support import ServerThread
from wsclient import WsClient

from ratchet_sel import WsServer
from ratchet_sel.demo import Chat, chat_http_handler
from ratchet_sel.pubsub import PublishEndpoint, PublishError, Publisher, RedisPubSub, Topics, publish

needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)
pytestmark = pytest.mark.timeout(60)

CHANNEL = "ratchet_sel:chat"
CONNECTED = r"redis redis://127\.0\.0\.1:\d+/\d+: connected"
TOKEN = "publisher-test-token"


@pytest.fixture
def redis():
    with RedisProcess() as server:
        yield server


# -- Redis -----------------------------------------------------------------------------------
@needs_redis
def test_publish_through_redis_reaches_a_chat_server_text_and_binary(redis):
    with ChatProcess("--redis", redis.url) as server, WsClient(server.port) as alice:
        server.log.wait_for(CONNECTED, 15)
        wait_subscribers(redis.port, CHANNEL, 1)
        assert publish(redis.url, "chat", "hello from cron") == 1
        assert publish(redis.url, "chat", b"\x00\xffbinary") == 1
        assert publish(redis.url, "chat", b"valid utf-8 but binary") == 1
        assert publish(redis.url, "nobody-listens", "lost") == 0
        assert alice.recv_message() == "hello from cron"
        assert alice.recv_message() == b"\x00\xffbinary"
        assert alice.recv_message() == b"valid utf-8 but binary"   # the envelope keeps binary binary


@needs_redis
def test_a_publisher_reaches_a_redis_chat_in_the_same_process_and_reconnects_after_a_kill(redis):
    topics = RedisPubSub(redis.url)
    with ServerThread(WsServer(Chat(topics))) as st, WsClient(st.port) as alice:
        st.call(topics.bind, st.server.loop)
        wait_subscribers(redis.port, CHANNEL, 1)
        with Publisher(redis.url, timeout=5) as publisher:
            assert [publisher.publish("chat", "m%d" % n) for n in range(3)] == [1, 1, 1]
            with RawRedis(redis.port) as raw:   # drop the publisher's idle connection (not the server's)
                raw.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            wait_subscribers(redis.port, CHANNEL, 1)
            assert publisher.publish("chat", "after the kill") == 1
        assert [alice.recv_message() for _ in range(4)] == ["m0", "m1", "m2", "after the kill"]
        st.call(topics.close)


@needs_redis
def test_password_db_and_prefix():
    with RedisProcess(None, "--requirepass", "pa ss") as redis, \
            ChatProcess("--redis", "redis://:pa%%20ss@127.0.0.1:%d/3" % redis.port,
                        "--redis-prefix", "site1/") as server, WsClient(server.port) as alice:
        server.log.wait_for(CONNECTED, 15)
        url = "redis://:pa%%20ss@127.0.0.1:%d/3" % redis.port
        with RawRedis(redis.port) as raw:
            raw.command("AUTH", "pa ss")
            wait_until(lambda: raw.numsub("site1/chat") == 1, 15, "the server's subscription")
        assert publish(url, "chat", "prefixed", prefix="site1/") == 1
        assert alice.recv_message() == "prefixed"
        with pytest.raises(PublishError) as refused:
            publish("redis://:wrong@127.0.0.1:%d/3" % redis.port, "chat", "no")
        message = str(refused.value)
        assert "redis://127.0.0.1:%d/3" % redis.port in message and "WRONGPASS" in message
        assert "wrong" not in message.replace("WRONGPASS", "")   # the password is never shown
        with pytest.raises(PublishError, match="NOAUTH"):
            publish("redis://127.0.0.1:%d" % redis.port, "chat", "no")


def test_nothing_listening_and_a_silent_peer_name_the_address():
    port = free_port()
    with pytest.raises(ConnectionRefusedError, match=r"redis://127\.0\.0\.1:%d/0" % port):
        publish("redis://127.0.0.1:%d" % port, "chat", "x", timeout=2)
    with pytest.raises(ConnectionRefusedError, match=r"http://127\.0\.0\.1:%d/publish" % port):
        publish("http://127.0.0.1:%d/publish?token=t" % port, "chat", "x", timeout=2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        address = "127.0.0.1:%d" % silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=address):
            publish("redis://%s" % address, "chat", "x", timeout=0.3)
        assert time.monotonic() - started < 3


def test_bad_urls_and_messages_are_value_errors():
    with pytest.raises(ValueError, match="redis://, rediss://, http:// or https://"):
        Publisher("ftp://example.com/")
    with pytest.raises(ValueError, match="publish token"):
        Publisher("http://127.0.0.1:1/publish")
    with pytest.raises(ValueError, match="timeout"):
        Publisher("redis://127.0.0.1", timeout=0)
    publisher = Publisher("redis://127.0.0.1:1")
    with pytest.raises(ValueError, match="topic"):
        publisher.publish("", "x")
    with pytest.raises(TypeError, match="str .text. or bytes"):
        publisher.publish("chat", 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="text only"):
        Publisher("http://127.0.0.1:1/publish", token="t").publish("chat", b"\xff")
    assert repr(Publisher("http://h:8000/publish?token=secret")) == "<Publisher http://h:8000/publish>"


# -- HTTP: POST /publish --------------------------------------------------------------------------
@pytest.fixture
def endpoint_server():
    topics = Topics()
    ws = WsServer(Chat(topics), http_handler=chat_http_handler(PublishEndpoint(topics, TOKEN)))
    with ServerThread(ws) as st:
        yield st


def test_publish_over_http_with_the_right_token(endpoint_server):
    port = endpoint_server.port
    with WsClient(port) as alice, WsClient(port) as bob:
        url = "http://127.0.0.1:%d/publish" % port
        assert publish(url + "?token=" + TOKEN, "chat", "from a view") == {"topic": "chat", "local_subscribers": 2}
        with Publisher(url, token=TOKEN) as publisher:
            answers = [publisher.publish("chat", "n%d" % n) for n in range(3)]
            assert publisher.publish("unknown-topic", "nobody") == {"topic": "unknown-topic",
                                                                    "local_subscribers": 0}
        assert [a["local_subscribers"] for a in answers] == [2, 2, 2]
        for member in (alice, bob):
            assert [member.recv_message() for _ in range(4)] == ["from a view", "n0", "n1", "n2"]


def test_a_wrong_token_is_a_publish_error_naming_the_url(endpoint_server):
    url = "http://127.0.0.1:%d/publish" % endpoint_server.port
    with pytest.raises(PublishError) as refused:
        publish(url, "chat", "x", token="not-it")
    assert refused.value.status == 403 and refused.value.url == url
    assert url in str(refused.value) and "not-it" not in str(refused.value)
    with pytest.raises(PublishError) as missing_path:
        publish("http://127.0.0.1:%d/elsewhere" % endpoint_server.port, "chat", "x", token=TOKEN)
    assert missing_path.value.status == 405   # the chat page answers only GET there


def test_a_publisher_is_shared_by_threads(endpoint_server):
    with WsClient(endpoint_server.port) as alice, \
            Publisher("http://127.0.0.1:%d/publish" % endpoint_server.port, token=TOKEN) as publisher:
        threads = [threading.Thread(target=lambda n=n: [publisher.publish("chat", "t%d-%d" % (n, i))
                                                        for i in range(5)]) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(alice.recv_message() for _ in range(20)) == sorted(
            "t%d-%d" % (n, i) for n in range(4) for i in range(5))
