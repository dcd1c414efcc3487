"""The selectors loop: timers, callbacks, thread-safe wake-up, file descriptors, signals."""

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections import defaultdict

import pytest

from ratchet_sel import Loop
from support import DEFAULT_TIMEOUT

pytestmark = pytest.mark.timeout(60)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def loop():
    lp = Loop()
    yield lp
    if not lp.is_running:
        lp.close()


def run_loop(loop, timeout=5.0):
    """Run ``loop`` in this thread until something stops it; fail if a safety timer had to."""
    fired = []

    def safety():
        fired.append(True)
        loop.stop()

    guard = loop.call_later(timeout, safety)
    loop.run()
    guard.cancel()
    assert not fired, "the loop did not stop by itself within %.1f s" % timeout


class LoopThread:
    """A loop running in a background thread (for the cross-thread tests)."""

    def __init__(self, loop):
        self.loop = loop
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ident = None

    def _run(self):
        self.ident = threading.get_ident()
        self.loop.call_soon(self.started.set)
        self.loop.run()

    def __enter__(self):
        self.thread.start()
        assert self.started.wait(DEFAULT_TIMEOUT), "the loop did not start"
        return self

    def __exit__(self, *exc):
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(DEFAULT_TIMEOUT)
        assert not self.thread.is_alive()


# -- timers -------------------------------------------------------------------------

def test_timers_fire_in_deadline_order(loop):
    fired = []
    loop.call_later(0.03, fired.append, "c")
    loop.call_later(0.01, fired.append, "a")
    loop.call_later(0.05, loop.stop)
    loop.call_later(0.02, fired.append, "b")
    loop.call_later(0.0, fired.append, "now")
    run_loop(loop)
    assert fired == ["now", "a", "b", "c"]


def test_timers_due_in_the_same_iteration_still_run_in_deadline_order(loop):
    # All deadlines are in the past when the loop first looks: the heap order decides.
    now = loop.time()
    fired = []
    for offset in (0.5, 0.1, 0.4, 0.2, 0.3):
        loop.call_at(now - offset, fired.append, offset)
    loop.call_at(now, loop.stop)
    run_loop(loop)
    assert fired == [0.5, 0.4, 0.3, 0.2, 0.1]


def test_equal_deadlines_run_in_scheduling_order(loop):
    when = loop.time() + 0.01
    fired = []
    for i in range(50):
        loop.call_at(when, fired.append, i)
    loop.call_at(when, loop.stop)
    run_loop(loop)
    assert fired == list(range(50))


def test_negative_delay_runs_soon(loop):
    fired = []
    loop.call_later(-5, fired.append, 1)
    loop.call_later(0, loop.stop)
    run_loop(loop)
    assert fired == [1]


def test_cancelled_timer_does_not_fire(loop):
    fired = []
    handle = loop.call_later(0.01, fired.append, "cancelled")
    loop.call_later(0.02, fired.append, "kept")
    handle.cancel()
    loop.call_later(0.04, loop.stop)
    run_loop(loop)
    assert fired == ["kept"]


def test_timer_cancelled_by_an_earlier_timer_of_the_same_iteration(loop):
    # Both are due at once; the first cancels the second, which must not run.
    now = loop.time()
    fired = []
    second = loop.call_at(now - 0.1, fired.append, "second")
    first_box = []

    def first():
        fired.append("first")
        second.cancel()

    first_box.append(loop.call_at(now - 0.2, first))
    loop.call_at(now, loop.stop)
    run_loop(loop)
    assert fired == ["first"]


def test_cancelling_the_earliest_timer_does_not_stall_the_others(loop):
    fired = []
    early = loop.call_later(0.5, fired.append, "early")   # would make select wait 0.5 s
    loop.call_later(0.01, fired.append, "later")
    early.cancel()
    loop.call_later(0.02, loop.stop)
    run_loop(loop, timeout=2.0)
    assert fired == ["later"]


def test_call_every_repeats_until_cancelled_from_its_callback(loop):
    ticks = []

    def tick():
        ticks.append(loop.time())
        if len(ticks) == 5:
            handle.cancel()
            # Give a cancelled timer ample chances to fire again before stopping.
            loop.call_later(0.05, loop.stop)

    handle = loop.call_every(0.005, tick)
    run_loop(loop)
    assert len(ticks) == 5
    assert ticks == sorted(ticks)


def test_call_every_cancelled_from_another_callback(loop):
    ticks = []
    handle = loop.call_every(0.005, ticks.append, "tick")

    def cancel_after_three():
        if len(ticks) >= 3:
            handle.cancel()
            loop.call_later(0.05, loop.stop)
        else:
            loop.call_later(0.001, cancel_after_three)

    loop.call_soon(cancel_after_three)
    run_loop(loop)
    assert len(ticks) == 3


def test_call_every_keeps_its_args_and_survives_exceptions(loop, caplog):
    seen = []

    def tick(tag):
        seen.append(tag)
        if len(seen) == 2:
            raise RuntimeError("tick failed")
        if len(seen) == 4:
            handle.cancel()
            loop.stop()

    handle = loop.call_every(0.002, tick, "x")
    with caplog.at_level(logging.ERROR, logger="ratchet_sel.io.loop"):
        run_loop(loop)
    assert seen == ["x"] * 4
    assert any("tick failed" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_call_every_rejects_non_positive_interval(loop):
    with pytest.raises(ValueError):
        loop.call_every(0, lambda: None)
    with pytest.raises(ValueError):
        loop.call_every(-1, lambda: None)


# -- call_soon ------------------------------------------------------------------------

def test_call_soon_runs_in_order(loop):
    fired = []
    for i in range(100):
        loop.call_soon(fired.append, i)
    loop.call_soon(loop.stop)
    run_loop(loop)
    assert fired == list(range(100))


def test_call_soon_from_a_callback_waits_for_the_next_iteration(loop):
    fired = []

    def first():
        fired.append("first")
        loop.call_soon(fired.append, "queued-by-first")

    loop.call_soon(first)
    loop.call_soon(fired.append, "second")
    loop.run_once()
    assert fired == ["first", "second"]
    loop.run_once()
    assert fired == ["first", "second", "queued-by-first"]


def test_flush_soon_runs_after_the_iterations_callbacks_and_flushes_queued_by_flushes(loop, caplog):
    order = []

    def first_flush():
        order.append("flush 1")
        loop.flush_soon(lambda: order.append("flush 3, queued by flush 1"))
        raise RuntimeError("a failing flush must not stop the others")

    def callback():
        order.append("callback a")
        loop.flush_soon(first_flush)
        loop.flush_soon(lambda: order.append("flush 2"))

    loop.call_soon(callback)
    loop.call_soon(lambda: order.append("callback b"))
    with caplog.at_level(logging.ERROR):
        loop.run_once()
    assert order == ["callback a", "callback b", "flush 1", "flush 2", "flush 3, queued by flush 1"]
    assert "a failing flush must not stop the others" in caplog.text
    loop.run_once()  # nothing is run twice
    assert len(order) == 5


def test_cancelled_call_soon_does_not_run(loop):
    fired = []
    handle = loop.call_soon(fired.append, "no")
    loop.call_soon(fired.append, "yes")
    handle.cancel()
    loop.run_once()
    assert fired == ["yes"]


def test_call_soon_passes_args(loop):
    got = []
    loop.call_soon(lambda *a: got.append(a), 1, "two", None)
    loop.run_once()
    assert got == [(1, "two", None)]


# -- call_soon_threadsafe -----------------------------------------------------------------

def test_call_soon_threadsafe_from_many_threads(loop):
    n_threads, per_thread = 8, 500
    total = n_threads * per_thread
    calls = []          # only touched on the loop thread
    loop_threads = set()
    done = threading.Event()

    def record(tag, i):
        calls.append((tag, i))
        loop_threads.add(threading.get_ident())
        if len(calls) == total:
            done.set()

    barrier = threading.Barrier(n_threads)

    def producer(tag):
        barrier.wait()
        for i in range(per_thread):
            loop.call_soon_threadsafe(record, tag, i)

    with LoopThread(loop) as lt:
        producers = [threading.Thread(target=producer, args=(t,)) for t in range(n_threads)]
        for p in producers:
            p.start()
        for p in producers:
            p.join(DEFAULT_TIMEOUT)
        assert done.wait(DEFAULT_TIMEOUT), "only %d of %d calls ran" % (len(calls), total)
        # A round trip proves nothing more runs afterwards.
        flushed = threading.Event()
        loop.call_soon_threadsafe(flushed.set)
        assert flushed.wait(DEFAULT_TIMEOUT)
        assert len(calls) == total
        assert loop_threads == {lt.ident}

    assert len(set(calls)) == total        # each exactly once
    per_producer = defaultdict(list)
    for tag, i in calls:
        per_producer[tag].append(i)
    for tag in range(n_threads):          # FIFO per calling thread
        assert per_producer[tag] == list(range(per_thread))


def test_call_soon_threadsafe_wakes_a_loop_blocked_without_timers(loop):
    with LoopThread(loop):
        # Nothing is scheduled: the loop sits in select() with no timeout.
        ran = threading.Event()
        loop.call_soon_threadsafe(ran.set)
        assert ran.wait(DEFAULT_TIMEOUT)


def test_call_soon_threadsafe_before_run_is_kept(loop):
    fired = []
    loop.call_soon_threadsafe(fired.append, "early")
    loop.call_soon_threadsafe(loop.stop)
    run_loop(loop)
    assert fired == ["early"]


def test_call_soon_threadsafe_handle_can_be_cancelled(loop):
    fired = []
    with LoopThread(loop):
        gate = threading.Event()
        loop.call_soon_threadsafe(gate.wait, DEFAULT_TIMEOUT)   # hold the loop busy
        handle = loop.call_soon_threadsafe(fired.append, "cancelled")
        handle.cancel()
        done = threading.Event()
        loop.call_soon_threadsafe(done.set)
        gate.set()
        assert done.wait(DEFAULT_TIMEOUT)
    assert fired == []


# -- errors -------------------------------------------------------------------------------

def test_exception_in_callback_is_logged_and_loop_keeps_running(loop, caplog):
    fired = []

    def boom():
        raise ValueError("boom in call_soon")

    def timer_boom():
        raise KeyError("boom in timer")

    loop.call_soon(boom)
    loop.call_soon(fired.append, "after-soon")
    loop.call_later(0.001, timer_boom)
    loop.call_later(0.002, fired.append, "after-timer")
    loop.call_later(0.003, loop.stop)
    with caplog.at_level(logging.ERROR, logger="ratchet_sel.io.loop"):
        run_loop(loop)
    assert fired == ["after-soon", "after-timer"]
    logged = [r.exc_info[1] for r in caplog.records if r.name == "ratchet_sel.io.loop" and r.exc_info]
    assert any(isinstance(e, ValueError) and "boom in call_soon" in str(e) for e in logged)
    assert any(isinstance(e, KeyError) for e in logged)
    assert all(r.levelno >= logging.ERROR for r in caplog.records if r.name == "ratchet_sel.io.loop")


def test_exception_in_reader_callback_is_logged_and_loop_keeps_running(loop, caplog):
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        fired = []

        def bad_reader():
            a.recv(100)
            raise RuntimeError("reader failed")

        loop.add_reader(a, bad_reader)
        b.send(b"x")
        loop.call_later(0.01, fired.append, "timer")
        loop.call_later(0.02, loop.stop)
        with caplog.at_level(logging.ERROR, logger="ratchet_sel.io.loop"):
            run_loop(loop)
        assert fired == ["timer"]
        assert any(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in caplog.records)
        loop.forget(a)
    finally:
        a.close()
        b.close()


# -- running and stopping ------------------------------------------------------------------

def test_stop_from_another_thread_ends_run(loop):
    returned = threading.Event()
    started = threading.Event()

    def target():
        loop.call_soon(started.set)
        loop.run()
        returned.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert started.wait(DEFAULT_TIMEOUT)
    assert loop.is_running
    # The loop is blocked in select() with no timers and no I/O: stop() must wake it.
    loop.stop()
    assert returned.wait(DEFAULT_TIMEOUT), "run() did not return after stop()"
    thread.join(DEFAULT_TIMEOUT)
    assert not loop.is_running


def test_loop_can_run_again_after_stop(loop):
    fired = []
    loop.call_soon(loop.stop)
    run_loop(loop)
    loop.call_soon(fired.append, "second run")
    loop.call_soon(loop.stop)
    run_loop(loop)
    assert fired == ["second run"]


def test_run_while_running_raises(loop):
    errors = []

    def nested():
        try:
            loop.run()
        except RuntimeError as exc:
            errors.append(exc)
        loop.stop()

    loop.call_soon(nested)
    run_loop(loop)
    assert len(errors) == 1


def test_in_loop_thread(loop):
    seen = []
    loop.call_soon(lambda: seen.append(loop.in_loop_thread()))
    loop.call_soon(loop.stop)
    run_loop(loop)
    assert seen == [True]
    assert not loop.in_loop_thread()


def test_close_running_loop_raises(loop):
    errors = []

    def try_close():
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(exc)
        loop.stop()

    loop.call_soon(try_close)
    run_loop(loop)
    assert len(errors) == 1


def test_a_timer_weeks_away_does_not_break_the_loop(loop):
    # epoll cannot wait longer than ~24.8 days (INT_MAX ms): a 30-day timer at
    # the head of the heap must not make select() raise OverflowError and kill run().
    fired = []
    loop.call_later(30 * 86400, fired.append, "a month later")
    stopper = threading.Thread(target=loop.call_soon_threadsafe, args=(loop.stop,), daemon=True)
    loop.call_soon(stopper.start)
    loop.run()
    stopper.join(DEFAULT_TIMEOUT)
    assert fired == []


def test_stop_before_run_is_not_lost(loop):
    # A thread that starts a loop thread and stops it at once must not hang:
    # asyncio's stop() before run_forever() makes it run one iteration and return.
    loop.stop()
    run_loop(loop, timeout=1.0)


# -- file descriptors ----------------------------------------------------------------------

@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_add_reader_fires_when_readable_and_remove_reader_stops_it(loop, pair):
    a, b = pair
    got = []

    def on_readable():
        got.append(a.recv(100))

    loop.add_reader(a, on_readable)
    loop.run_once(0)
    assert got == []                    # nothing to read yet
    b.send(b"hello")
    loop.run_once(1.0)
    assert got == [b"hello"]

    loop.remove_reader(a)
    b.send(b"more")                     # readable now, but nobody watches
    for _ in range(3):
        loop.run_once(0)
    assert got == [b"hello"]

    loop.add_reader(a, on_readable)     # watching again sees what is waiting
    loop.run_once(1.0)
    assert got == [b"hello", b"more"]
    loop.remove_reader(a)
    loop.remove_reader(a)               # removing twice is harmless


def test_add_reader_replaces_the_previous_callback(loop, pair):
    a, b = pair
    got = []
    loop.add_reader(a, lambda: got.append(("old", a.recv(100))))
    loop.add_reader(a, lambda: got.append(("new", a.recv(100))))
    b.send(b"x")
    loop.run_once(1.0)
    assert got == [("new", b"x")]
    loop.remove_reader(a)


def test_add_writer_fires_when_writable_and_remove_writer_stops_it(loop, pair):
    a, b = pair
    calls = []
    loop.add_writer(a, lambda: calls.append("w"))
    loop.run_once(1.0)
    assert calls == ["w"]               # an idle socket is writable at once
    loop.run_once(1.0)
    assert calls == ["w", "w"]          # level-triggered: again while writable
    loop.remove_writer(a)
    for _ in range(3):
        loop.run_once(0)
    assert calls == ["w", "w"]


def test_add_writer_waits_while_the_socket_is_full(loop, pair):
    a, b = pair
    try:
        while True:
            a.send(b"\0" * 65536)
    except BlockingIOError:
        pass
    calls = []
    loop.add_writer(a, lambda: calls.append("w"))
    for _ in range(3):
        loop.run_once(0)
    assert calls == []                  # full: not writable
    drained = 0
    try:
        while True:
            drained += len(b.recv(1 << 20))
    except BlockingIOError:
        pass
    assert drained > 0
    loop.run_once(1.0)
    assert calls == ["w"]
    loop.remove_writer(a)


def test_reader_and_writer_on_the_same_socket_are_independent(loop, pair):
    a, b = pair
    events = []
    loop.add_reader(a, lambda: events.append(("r", a.recv(100))))
    loop.add_writer(a, lambda: events.append("w"))
    b.send(b"data")
    loop.run_once(1.0)
    assert ("r", b"data") in events and "w" in events

    loop.remove_writer(a)               # the reader stays
    events.clear()
    b.send(b"again")
    loop.run_once(1.0)
    assert events == [("r", b"again")]

    loop.add_writer(a, lambda: events.append("w"))
    loop.remove_reader(a)               # the writer stays
    events.clear()
    b.send(b"ignored")
    loop.run_once(1.0)
    assert events == ["w"]

    loop.forget(a)                      # drops both
    events.clear()
    for _ in range(3):
        loop.run_once(0)
    assert events == []
    loop.forget(a)                      # forgetting twice is harmless


def test_remove_on_unknown_socket_is_harmless(loop, pair):
    a, _ = pair
    loop.remove_reader(a)
    loop.remove_writer(a)
    loop.forget(a)


def test_reader_removed_by_an_earlier_callback_of_the_same_iteration(loop, pair):
    # Two sockets readable at once; whichever callback runs first removes the
    # other's reader and closes it.  The survivor must not crash the loop.
    a, b = pair
    c, d = socket.socketpair()
    c.setblocking(False)
    try:
        calls = []

        def on_a():
            calls.append("a")
            a.recv(100)
            loop.remove_reader(c)

        def on_c():
            calls.append("c")
            c.recv(100)
            loop.remove_reader(a)

        loop.add_reader(a, on_a)
        loop.add_reader(c, on_c)
        b.send(b"1")
        d.send(b"1")
        loop.run_once(1.0)
        assert len(calls) == 1            # the removed reader was not called
        loop.forget(a)
        loop.forget(c)
    finally:
        c.close()
        d.close()


# -- signals ---------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_signal_handler_runs_on_the_loop_and_previous_handler_is_restored(loop):
    previous_calls = []

    def previous(signum, frame):
        previous_calls.append(signum)

    old = signal.signal(signal.SIGUSR1, previous)
    try:
        seen = []

        def on_usr1():
            seen.append(threading.get_ident())
            loop.stop()

        loop.add_signal_handler(signal.SIGUSR1, on_usr1)
        loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        run_loop(loop)
        assert seen == [threading.get_ident()]
        assert previous_calls == []
        assert signal.getsignal(signal.SIGUSR1) is previous
        # The wake-up fd was restored as well (none before).
        assert signal.set_wakeup_fd(-1) == -1
    finally:
        signal.signal(signal.SIGUSR1, old)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_signal_from_another_thread_wakes_a_blocked_loop(loop):
    old = signal.signal(signal.SIGUSR1, lambda s, f: None)
    try:
        seen = []
        blocked = threading.Event()

        def on_usr1():
            seen.append("usr1")
            loop.stop()

        loop.add_signal_handler(signal.SIGUSR1, on_usr1)
        loop.call_soon(blocked.set)     # after this, the loop sits in select()

        def killer():
            if blocked.wait(DEFAULT_TIMEOUT):
                os.kill(os.getpid(), signal.SIGUSR1)

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        run_loop(loop, timeout=DEFAULT_TIMEOUT)
        thread.join(DEFAULT_TIMEOUT)
        assert seen == ["usr1"]
    finally:
        signal.signal(signal.SIGUSR1, old)


SERVER_SCRIPT = textwrap.dedent("""
    import signal, sys
    sys.path.insert(0, %(root)r)
    from ratchet_sel import IoServer, MessageComponent

    class Component(MessageComponent):
        def on_open(self, conn):
            print("open", conn.remote_port, flush=True)
        def on_close(self, conn):
            print("close", conn.remote_port, flush=True)

    server = IoServer(Component(), "127.0.0.1", 0)
    # Announce readiness from the loop, i.e. once run() installed its handlers.
    server.loop.call_soon(lambda: print("ready", server.port, flush=True))
    server.run()
    print("stopped", flush=True)
    print("restored",
          signal.getsignal(signal.SIGINT) is signal.default_int_handler,
          signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
          signal.set_wakeup_fd(-1) == -1, flush=True)
""")


def _start_server_process():
    proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT % {"root": ROOT}],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    if not line or line[0] != "ready":
        proc.kill()
        out, err = proc.communicate(timeout=DEFAULT_TIMEOUT)
        pytest.fail("server did not start: %r %s %s" % (line, out, err))
    return proc, int(line[1])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_makes_run_return_and_process_exit_0(signum):
    proc, port = _start_server_process()
    try:
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=DEFAULT_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in out.split("\n")
    assert "restored True True True" in out, out
    assert "Traceback" not in err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_closes_open_connections_gracefully(signum):
    proc, port = _start_server_process()
    client = socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)
    try:
        line = proc.stdout.readline().split()
        assert line == ["open", str(client.getsockname()[1])]
        proc.send_signal(signum)
        assert client.recv(100) == b""      # the server closed its side
        client.close()                      # ...and waits for ours
        out, err = proc.communicate(timeout=DEFAULT_TIMEOUT)
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    lines = out.split("\n")
    assert lines.index("close %d" % int(line[1])) < lines.index("stopped")
