"""The loop's two ways of waiting: epoll polled directly (the Linux default) and any selectors selector.

Both dispatch the same callbacks; both survive a callback that raises; both
cope with a callback that forgets another descriptor ready in the same
iteration.  Real sockets on 127.0.0.1.
"""

import os
import selectors
import socket
import threading

import pytest
from support import Recorder, ServerThread, connect, recv_exactly

from ratchet_sel import Loop

pytestmark = pytest.mark.timeout(60)

POLLERS = {
    "default": lambda: None,
    "select": selectors.SelectSelector,
    "poll": getattr(selectors, "PollSelector", selectors.SelectSelector),
}


@pytest.mark.parametrize("poller", sorted(POLLERS))
def test_echo_over_each_poller(poller):
    rec = Recorder(echo=True)
    with ServerThread(rec, loop=Loop(selector=POLLERS[poller]())) as st:
        clients = [connect(st.port) for _ in range(5)]
        blobs = [os.urandom(70000 + i) for i in range(5)]
        for client, blob in zip(clients, blobs):
            client.sendall(blob)
        for client, blob in zip(clients, blobs):
            assert recv_exactly(client, len(blob)) == blob
            client.close()


def test_default_loop_polls_epoll_directly_where_there_is_one():
    loop = Loop()
    try:
        assert (loop._epoll is not None) == hasattr(__import__("select"), "epoll")
    finally:
        loop.close()


@pytest.mark.parametrize("poller", sorted(POLLERS))
def test_raising_reader_and_a_forgotten_descriptor_do_not_stop_the_loop(poller):
    loop = Loop(selector=POLLERS[poller]())
    a_recv, a_send = socket.socketpair()
    b_recv, b_send = socket.socketpair()
    seen = []
    done = threading.Event()

    def on_a():
        a_recv.recv(10)
        seen.append("a")
        loop.forget(b_recv)   # b is ready in this same iteration: it must simply not run
        raise RuntimeError("a reader that fails")

    def on_b():
        b_recv.recv(10)
        seen.append("b")

    def after():
        seen.append("after")
        done.set()
        loop.stop()

    try:
        loop.add_reader(a_recv, on_a)
        loop.add_reader(b_recv, on_b)
        a_send.send(b"x")
        b_send.send(b"y")
        loop.call_later(0.2, after)
        loop.run()
        assert done.is_set()
        assert seen[0] in ("a", "b") and seen[-1] == "after"
        assert seen.count("a") == 1 and seen.count("b") <= 1
    finally:
        loop.close()
        for s in (a_recv, a_send, b_recv, b_send):
            s.close()
