"""RedisPubSub without a Redis server: what happens before it is bound or connected."""

import pytest

from ratchet_sel import Loop
from ratchet_sel.pubsub import RedisPubSub, envelope
from ratchet_sel.pubsub.resp import RespParser


def queued_payloads(hub):
    """The publications waiting in the queue, decoded from their PUBLISH commands."""
    commands = RespParser().feed(b"".join(hub.backplane._pending))
    return [envelope.decode("t", command[2]).message for command in commands]


def test_publications_wait_in_a_bounded_queue_until_the_hub_is_bound():
    hub = RedisPubSub("redis://127.0.0.1:1/0", max_pending=3)
    for n in range(5):
        assert hub.publish("t", "p%d" % n) == 0
    assert hub.stats()["queued"] == 3 and hub.stats()["dropped"] == 2
    assert queued_payloads(hub) == ["p2", "p3", "p4"]
    assert not hub.connected


def test_the_queue_is_bounded_in_bytes_too():
    hub = RedisPubSub("redis://127.0.0.1:1/0", max_pending=1000, max_buffer=3000)
    for n in range(10):
        hub.publish("t", "%d" % n + "x" * 999)
    stats = hub.stats()
    assert stats["queued"] == 2 and stats["dropped"] == 8
    assert [m[0] for m in queued_payloads(hub)] == ["8", "9"]
    hub.publish("t", b"y" * 5000)      # larger than the whole budget: dropped at once
    assert hub.stats()["dropped"] == 9 and hub.stats()["queued"] == 2


def test_channel_mapping_and_prefix():
    hub = RedisPubSub("redis://127.0.0.1:1/0", prefix="app1:")
    assert hub.backplane.channel("news") == b"app1:news"
    assert hub.backplane.channel("café") == "app1:café".encode()


def test_binding_to_a_second_loop_is_an_error_and_bad_settings_are_refused():
    first, second = Loop(), Loop()
    hub = RedisPubSub("redis://127.0.0.1:1/0", min_backoff=0.05)
    try:
        hub.bind(first)
        hub.bind(first)  # the same loop again: nothing happens
        with pytest.raises(RuntimeError):
            hub.bind(second)
    finally:
        hub.close()
        first.close()
        second.close()
    with pytest.raises(ValueError):
        RedisPubSub("redis://h", min_backoff=0)
    with pytest.raises(ValueError):
        RedisPubSub("redis://h", min_backoff=2, max_backoff=1)
    with pytest.raises(ValueError):
        RedisPubSub("memcached://h")


def test_the_health_check_fails_a_link_only_for_an_unanswered_ping(caplog):
    # A link that connected just after the health timer started was once
    # dropped with "no answer to PING for 30 s" on the second tick, without a
    # PING ever sent: at the first tick it had been silent for a hair under
    # one interval (no PING), at the second for a hair over two (when the
    # tick ran a little late).  The clock here is the test's.
    import socket

    clock = [0.0]
    loop = Loop()
    loop.time = lambda: clock[0]          # type: ignore[method-assign]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    hub = RedisPubSub("redis://127.0.0.1:%d/0" % listener.getsockname()[1], loop=loop, health_interval=15.0)
    try:
        clock[0] = 0.001                   # connected a millisecond after the timer started
        for _ in range(200):
            loop.run_once(0.01)
            if hub.connected:
                break
        assert hub.connected
        peers = [listener.accept()[0] for _ in range(2)]
        for peer in peers:
            peer.settimeout(5)

        def tick(when):
            clock[0] = when
            loop.run_once(0)
            loop.run_once(0)               # the end-of-iteration flush

        tick(15.0)                         # silent 14.999 s: not yet a PING
        tick(30.005)                       # the tick 5 ms late: a PING, not a failure
        assert hub.connected and "no answer" not in caplog.text
        for peer in peers:
            assert peer.recv(100) == b"*1\r\n$4\r\nPING\r\n"
            peer.sendall(b"+PONG\r\n")
        for _ in range(20):
            loop.run_once(0.01)
        tick(45.01)                        # answered at 30.005, silent since: PING again
        for peer in peers:
            assert peer.recv(100) == b"*1\r\n$4\r\nPING\r\n"
        tick(60.02)                        # that PING unanswered for an interval: dropped
        assert not hub.connected and "connection lost (no answer to PING for 15 s)" in caplog.text
    finally:
        hub.backplane.close()
        listener.close()
        loop.close()
