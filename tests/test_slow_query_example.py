"""examples/slow_query.py: twenty slow SQLite queries run while another connection's echo keeps answering."""

import importlib.util
import os
import statistics
import threading
import time

import pytest

from ratchet_sel import WsServer
from support import ServerThread
from wsclient import WsClient

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "slow_query.py")
WAIT = 10.0
SLOW_CALLS = 20
ECHOES = 20


def load_example():
    spec = importlib.util.spec_from_file_location("slow_query_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Gate:
    """Stands for the slow part of each query: it counts who entered and holds them until opened."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = 0
        self.changed = threading.Condition()

    def pause(self, seconds: float) -> None:
        with self.changed:
            self.entered += 1
            self.changed.notify_all()
        assert self.opened.wait(WAIT), "the test never opened the gate"

    def wait_entered(self, n: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.entered >= n, WAIT), "only %d queries started" % self.entered


@pytest.fixture
def example():
    return load_example()


def test_echo_answers_while_twenty_slow_queries_run(example, tmp_path):
    path = str(tmp_path / "words.db")
    example.create_database(path)
    gate = Gate()
    component = example.SlowQueries(example.Words(path, delay=0.5, pause=gate.pause), timeout=WAIT * 2)
    with ServerThread(WsServer(component)) as st:
        threads = st.call(lambda: st.loop.threads.max_threads)
        with WsClient(st.port) as slow, WsClient(st.port) as fast:
            for _ in range(SLOW_CALLS):
                slow.send("query ap")
            gate.wait_entered(threads)   # every thread of the pool is inside a slow query...
            assert st.call(lambda: st.loop.threads.pending) == SLOW_CALLS - threads   # ...the rest wait
            round_trips = []
            for i in range(ECHOES):      # ...and the other connection is served all the same
                started = time.perf_counter()
                fast.send("ping %d" % i)
                assert fast.recv_message() == "ping %d" % i
                round_trips.append(time.perf_counter() - started)
            assert gate.entered == threads and not gate.opened.is_set()   # no slow answer could exist yet
            gate.opened.set()
            results = [slow.recv_message() for _ in range(SLOW_CALLS)]
    assert results == ["result ap: 2"] * SLOW_CALLS      # apple, apricot
    assert gate.entered == SLOW_CALLS
    print("echo round trip while %d slow queries ran on %d threads: median %.2f ms, max %.2f ms"
          % (SLOW_CALLS, threads, statistics.median(round_trips) * 1e3, max(round_trips) * 1e3))


def test_full_pool_answers_busy_at_once(example, tmp_path):
    path = str(tmp_path / "words.db")
    example.create_database(path)
    gate = Gate()
    component = example.SlowQueries(example.Words(path, pause=gate.pause))
    with ServerThread(WsServer(component)) as st:
        st.call(lambda: setattr(st.loop.threads, "max_threads", 1))
        st.call(lambda: setattr(st.loop.threads, "max_pending", 1))
        with WsClient(st.port) as client:
            client.send("query ap")
            gate.wait_entered(1)
            client.send("query b")          # waits for the thread
            client.send("query c")          # refused
            assert client.recv_message() == "busy c: try again later"
            gate.opened.set()
            assert [client.recv_message(), client.recv_message()] == ["result ap: 2", "result b: 2"]


def test_a_query_past_its_timeout_answers_timeout(example, tmp_path):
    path = str(tmp_path / "words.db")
    example.create_database(path)
    gate = Gate()
    component = example.SlowQueries(example.Words(path, pause=gate.pause), timeout=0.05)
    with ServerThread(WsServer(component)) as st:
        with WsClient(st.port) as client:
            client.send("query ap")
            assert client.recv_message() == "timeout ap"
            gate.opened.set()
            client.send("still there?")     # the late result was dropped: the next message is the echo
            assert client.recv_message() == "still there?"
