"""RateLimitedLog: a repeated warning is one line per interval with its count; a real EMFILE burst stays quiet."""

import logging
import os
import resource
import socket
import subprocess
import sys
import textwrap
import weakref
from typing import Any, Callable, List, Tuple

import pytest

from ratchet_sel.ops.ratelimit import RateLimitedLog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeClock:
    """A clock the test moves, and a call_later that the test fires by moving it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.timers: List[List[Any]] = []   # [when, callback, args, cancelled]

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> "FakeTimer":
        entry = [self.now + delay, callback, args, False]
        self.timers.append(entry)
        return FakeTimer(entry)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = sorted((t for t in self.timers if t[0] <= self.now and not t[3]), key=lambda t: t[0])
        for entry in due:
            self.timers.remove(entry)
            entry[1](*entry[2])


class FakeTimer:
    def __init__(self, entry: List[Any]) -> None:
        self.entry = entry

    def cancel(self) -> None:
        self.entry[3] = True


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: List[Tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, record.getMessage()))


@pytest.fixture
def captured():
    logger = logging.getLogger("test.ratelimit")
    logger.setLevel(logging.DEBUG)
    handler = Lines()
    logger.addHandler(handler)
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)


def test_the_first_occurrence_is_written_at_once_and_the_rest_summarised_once_per_interval(captured):
    logger, handler = captured
    clock = FakeClock()
    quiet = RateLimitedLog(logger, 10.0, clock=clock, call_later=clock.call_later)
    assert quiet.warning("accept", "accept failing: %s", "too many open files") is True
    assert handler.lines == [(logging.WARNING, "accept failing: too many open files")]
    for _ in range(97):  # ten a second for 9.7 s
        clock.advance(0.1)
        assert quiet.warning("accept", "accept failing: %s", "too many open files") is False
    assert quiet.held("accept") == 97 and len(handler.lines) == 1
    clock.advance(0.5)  # the interval ends: the timer writes the summary
    assert handler.lines[1] == (logging.WARNING, "accept failing: too many open files (97 times in the last 10 s)")
    assert quiet.held("accept") == 0
    clock.advance(10.0)  # a quiet interval: the kind is forgotten
    assert len(handler.lines) == 2
    assert quiet.warning("accept", "accept failing: %s", "again") is True
    assert handler.lines[2] == (logging.WARNING, "accept failing: again")


def test_kinds_are_counted_apart_and_the_summary_carries_the_latest_message(captured):
    logger, handler = captured
    clock = FakeClock()
    quiet = RateLimitedLog(logger, 10.0, clock=clock, call_later=clock.call_later)
    quiet.info(("refused", 503), "%s: refused with 503", "a")
    quiet.info(("refused", 400), "%s: refused with 400", "b")
    quiet.info(("refused", 503), "%s: refused with 503", "c")
    quiet.info(("refused", 503), "%s: refused with 503", "d")
    assert [m for _, m in handler.lines] == ["a: refused with 503", "b: refused with 400"]
    clock.advance(10.0)
    assert handler.lines[2] == (logging.INFO, "d: refused with 503 (2 times in the last 10 s)")
    assert len(handler.lines) == 3  # 400 happened once: nothing held, no summary


def test_without_a_timer_the_next_occurrence_after_the_interval_writes_the_summary(captured):
    logger, handler = captured
    clock = FakeClock()
    quiet = RateLimitedLog(logger, 10.0, clock=clock)
    quiet.warning("k", "boom")
    clock.advance(1)
    quiet.warning("k", "boom")
    clock.advance(12)
    assert quiet.warning("k", "boom") is True
    assert [m for _, m in handler.lines] == ["boom", "boom (2 times in the last 13 s)"]
    clock.advance(30)  # a quiet interval went by: the next one is new again
    assert quiet.warning("k", "boom") is True
    assert handler.lines[-1][1] == "boom"


def test_flush_writes_what_is_held_and_a_bad_interval_is_refused(captured):
    logger, handler = captured
    clock = FakeClock()
    quiet = RateLimitedLog(logger, 10.0, clock=clock)
    quiet.warning("k", "x %d", 1)
    quiet.warning("k", "x %d", 2)
    quiet.flush()
    assert handler.lines[-1][1] == "x 2 (1 times in the last 10 s)"
    with pytest.raises(ValueError):
        RateLimitedLog(logger, 0)


def test_a_held_message_keeps_no_reference_to_its_arguments(captured):
    # A refused connection must not stay alive in the log's memory until the summary.
    logger, handler = captured
    clock = FakeClock()
    quiet = RateLimitedLog(logger, 10.0, clock=clock)

    class Conn:
        def __repr__(self) -> str:
            return "<Conn>"

    quiet.info("refused", "%r: refused", Conn())
    conn = Conn()
    ref = weakref.ref(conn)
    quiet.info("refused", "%r: refused", conn)
    del conn
    assert ref() is None
    quiet.flush()
    assert handler.lines[-1][1] == "<Conn>: refused (1 times in the last 10 s)"


SERVER = textwrap.dedent("""
    import logging, sys
    from ratchet_sel.io.listener import IoServer

    class Echo:
        def on_open(self, conn): pass
        def on_message(self, conn, data): conn.send(data)
        def on_close(self, conn): pass
        def on_error(self, conn, exc): conn.close()

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    server = IoServer(Echo(), "127.0.0.1", 0)
    ticks = [0]
    def tick():
        ticks[0] += 1
        print("tick %d" % ticks[0], file=sys.stderr, flush=True)
    server.loop.call_every(0.1, tick)
    print(server.port, flush=True)
    server.run()
""")


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24))


@pytest.mark.timeout(60)
def test_a_server_out_of_descriptors_logs_the_accept_failure_a_bounded_number_of_times_and_recovers(tmp_path):
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, preexec_fn=_limit_fds)
    clients: List[socket.socket] = []
    lines: List[str] = []
    try:
        port = int(proc.stdout.readline())
        # More clients than the server has descriptors: the kernel queues them, accept() fails with EMFILE.
        for _ in range(40):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=20))
        # Wait on the server's own clock: 30 ticks (3 s, about 30 pauses of 100 ms) after the first failure.
        first_tick = None
        while True:
            line = proc.stderr.readline()
            assert line, "the server ended:\n" + "\n".join(lines)
            lines.append(line.rstrip("\n"))
            if first_tick is None and "accept failing" in line:
                first_tick = sum(1 for l in lines if l.startswith("tick "))
            if first_tick is not None and line.startswith("tick ") and int(line.split()[1]) >= first_tick + 30:
                break
        failures = [l for l in lines if "accept failing" in l]
        assert "Too many open files" in failures[0], failures
        # Unlimited it would be one line per pause (about 30 by now); limited: the first, maybe one summary.
        assert 1 <= len(failures) <= 2, failures
        for client in clients:
            client.close()
        clients.clear()
        # Recovered: a new client is accepted and served.
        with socket.create_connection(("127.0.0.1", port), timeout=20) as fresh:
            fresh.sendall(b"still serving")
            received = b""
            while len(received) < len(b"still serving"):
                chunk = fresh.recv(64)
                assert chunk, "closed without an answer"
                received += chunk
            assert received == b"still serving"
    finally:
        for client in clients:
            client.close()
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
