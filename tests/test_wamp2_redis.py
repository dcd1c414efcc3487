"""WAMP v2 across hosts: two routers on one real Redis share events (and v1 topics); calls stay per host.

Skips when ``redis-server`` is not installed; scripts/ci_wamp2.sh installs it
and fails if these tests were skipped.
"""

import json

import pytest

from redis_support import REDIS_SERVER, SKIP_REASON, RawRedis, RedisProcess, ServerProcess, wait_subscribers
from wamp2_client import Wamp2Client
from wsclient import WsClient

pytestmark = [pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON), pytest.mark.timeout(120)]


def router(redis: RedisProcess) -> ServerProcess:
    return ServerProcess(["-m", "ratchet_sel", "wamp", "--realm", "realm1", "--realm", "realm2", "--host",
                          "127.0.0.1", "--port", "0", "--redis", redis.url])


def test_events_cross_routers_on_one_redis_and_calls_do_not():
    with RedisProcess() as redis:
        first, second = router(redis), router(redis)
        try:
            with Wamp2Client(first.port, "wamp.2.msgpack") as subscriber, Wamp2Client(second.port) as publisher, \
                    WsClient(first.port, extra=[("Sec-WebSocket-Protocol", "wamp")]) as v1, \
                    Wamp2Client(first.port) as other_realm:
                subscriber.join()
                publisher.join()
                other_realm.join("realm2")
                subscription = subscriber.subscribe("com.hosts.news")
                other_realm.subscribe("com.hosts.news")
                json.loads(v1.recv_message())
                v1.send(json.dumps([5, "com.hosts.news"]))
                wait_subscribers(redis.port, "ratchet_sel:com.hosts.news", 1)
                publisher.send([16, 1, {"acknowledge": True}, "com.hosts.news", ["across"], {"n": b"\x01"}])
                assert publisher.recv()[0] == 17
                event = subscriber.recv()
                assert [event[1]] + event[4:] == [subscription, ["across"], {"n": b"\x01"}]
                assert json.loads(v1.recv_message()) == [8, "com.hosts.news",
                                                         {"args": ["across"], "kwargs": {"n": "\u0000AQ=="}}]
                # another program publishes on the channel: a v2 subscriber gets it as one argument
                with RawRedis(redis.port) as raw:
                    raw.command("PUBLISH", "ratchet_sel:com.hosts.news", '{"title": "raw"}')
                assert subscriber.recv()[4] == [{"title": "raw"}]
                # realm2's topics are other channels: nothing reached other_realm so far
                other_realm.send([16, 2, {"acknowledge": True, "exclude_me": False}, "com.hosts.news", ["r2"]])
                answers = sorted((other_realm.recv(), other_realm.recv()), key=lambda message: message[0])
                assert [answers[0][0], answers[1][0], answers[1][4]] == [17, 36, ["r2"]]  # EVENT first, no "across"
                # calls do not travel between hosts: a procedure of the first router is unknown on the second
                subscriber.register("com.hosts.proc")
                assert publisher.call("com.hosts.proc")[4] == "wamp.error.no_such_procedure"
        finally:
            assert first.stop() == 0
            assert second.stop() == 0
