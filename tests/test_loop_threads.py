"""Loop.run_in_thread: results, errors, timeouts, overload, cancel and close, synchronised on events."""

import logging
import queue
import threading

import pytest

from ratchet_sel import Loop
from ratchet_sel.io.threads import DEFAULT_MAX_PENDING, DEFAULT_MAX_THREADS, ThreadJobTimeout, ThreadPoolFull

WAIT = 10.0


class RunningLoop:
    """A loop running in a thread of its own; outcomes land in ``self.outcomes`` with the thread they ran on."""

    def __init__(self) -> None:
        self.loop = Loop()
        self.outcomes: "queue.Queue" = queue.Queue()
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()

    def submit(self, fn, *args, **kwargs):
        """Call run_in_thread on the loop thread; returns the job."""
        jobs: "queue.Queue" = queue.Queue()
        kwargs.setdefault("callback", lambda result: self.outcomes.put(("ok", result, threading.get_ident())))
        kwargs.setdefault("errback", lambda exc: self.outcomes.put(("error", exc, threading.get_ident())))
        self.loop.call_soon_threadsafe(lambda: jobs.put(self.loop.run_in_thread(fn, *args, **kwargs)))
        return jobs.get(timeout=WAIT)

    def on_loop(self, fn, *args):
        """Run fn on the loop thread and return its result."""
        results: "queue.Queue" = queue.Queue()
        self.loop.call_soon_threadsafe(lambda: results.put(fn(*args)))
        return results.get(timeout=WAIT)

    def next_outcome(self):
        return self.outcomes.get(timeout=WAIT)

    def stop(self) -> None:
        self.loop.stop()
        self.thread.join(WAIT)
        self.loop.close()


@pytest.fixture
def running():
    loop = RunningLoop()
    yield loop
    if loop.thread.is_alive():
        loop.stop()


def test_defaults_are_bounded():
    assert 1 <= DEFAULT_MAX_THREADS <= 8
    assert DEFAULT_MAX_PENDING == 256
    loop = Loop()
    assert loop.threads.threads == 0       # no thread before the first job
    loop.close()


def test_result_comes_back_on_the_loop_thread(running):
    worker_threads = []

    def blocking_sum(a, b):
        worker_threads.append(threading.get_ident())
        return a + b

    running.submit(blocking_sum, 2, 3)
    kind, value, thread_id = running.next_outcome()
    assert (kind, value) == ("ok", 5)
    assert thread_id == running.thread.ident            # the callback ran on the loop thread
    assert worker_threads and worker_threads[0] != running.thread.ident   # the function did not


def test_exception_goes_to_errback(running):
    def failing():
        raise LookupError("no such row")

    running.submit(failing)
    kind, exc, thread_id = running.next_outcome()
    assert kind == "error" and isinstance(exc, LookupError) and str(exc) == "no such row"
    assert thread_id == running.thread.ident


def test_exception_without_errback_is_logged(running, caplog):
    done = threading.Event()

    def failing():
        raise LookupError("nobody listens")

    with caplog.at_level(logging.ERROR, logger="ratchet_sel.io.threads"):
        running.submit(failing, errback=None)
        running.submit(done.set)      # one thread: this one's outcome comes after the first's
        assert done.wait(WAIT)
        running.next_outcome()
    assert any("nobody listens" in record.getMessage() for record in caplog.records)


def test_timeout_gives_errback_a_timeout_and_drops_the_late_result(running):
    running.loop.threads.max_threads = 1
    gate, entered = threading.Event(), threading.Event()

    def slow():
        entered.set()
        gate.wait(WAIT)
        return "late"

    running.submit(slow, timeout=0.05)
    assert entered.wait(WAIT)
    kind, exc, thread_id = running.next_outcome()
    assert kind == "error" and isinstance(exc, ThreadJobTimeout) and isinstance(exc, TimeoutError)
    assert "did not finish within 0.05 s (still running; its result will be dropped)" in str(exc)
    gate.set()
    running.submit(lambda: "next")   # same single thread: its outcome follows the late one's drop
    assert running.next_outcome()[:2] == ("ok", "next")
    assert running.outcomes.empty()  # "late" never reached the callback


def test_overload_refuses_at_once_with_a_clear_error(running):
    running.loop.threads.max_threads = 1
    running.loop.threads.max_pending = 1
    gate, entered = threading.Event(), threading.Event()

    def busy():
        entered.set()
        gate.wait(WAIT)
        return "first"

    running.submit(busy)
    assert entered.wait(WAIT)                       # the only thread is busy
    running.submit(lambda: "second")                # waits: the queue holds one
    running.submit(lambda: "third")                 # refused
    kind, exc, thread_id = running.next_outcome()
    assert kind == "error" and isinstance(exc, ThreadPoolFull)
    assert "1 threads busy and 1 jobs waiting" in str(exc)
    assert thread_id == running.thread.ident
    gate.set()
    assert [running.next_outcome()[:2] for _ in range(2)] == [("ok", "first"), ("ok", "second")]


def test_exception_in_callback_is_logged_and_the_loop_goes_on(running, caplog):
    def bad_callback(result):
        raise ValueError("callback broke")

    with caplog.at_level(logging.ERROR, logger="ratchet_sel.io.loop"):
        running.submit(lambda: 1, callback=bad_callback)
        running.submit(lambda: 2)
        assert running.next_outcome()[:2] == ("ok", 2)
    assert running.thread.is_alive()
    assert any(record.exc_info and "callback broke" in str(record.exc_info[1]) for record in caplog.records)


def test_cancelled_waiting_job_never_runs(running):
    running.loop.threads.max_threads = 1
    gate, entered = threading.Event(), threading.Event()
    ran = []

    def busy():
        entered.set()
        gate.wait(WAIT)
        return "busy"

    running.submit(busy)
    assert entered.wait(WAIT)
    job = running.submit(ran.append, "cancelled")
    running.on_loop(job.cancel)
    gate.set()
    assert running.next_outcome()[:2] == ("ok", "busy")
    running.submit(lambda: "after")
    assert running.next_outcome()[:2] == ("ok", "after")
    assert ran == [] and running.outcomes.empty()


def test_close_does_not_hang_on_a_busy_thread(running):
    gate, entered = threading.Event(), threading.Event()

    def stuck():
        entered.set()
        gate.wait(WAIT)

    running.submit(stuck)
    assert entered.wait(WAIT)
    pool_threads = [t for t in threading.enumerate() if t.name.startswith("ratchet_sel-pool-")]
    assert pool_threads and all(t.daemon for t in pool_threads)
    running.loop.stop()
    running.thread.join(WAIT)
    running.loop.threads.close(wait=0.05)   # what Loop.close does (with 1 s): bounded, even with a stuck thread
    running.loop.close()
    gate.set()                               # the thread ends by itself; its result goes nowhere
    for thread in pool_threads:
        thread.join(WAIT)
        assert not thread.is_alive()


def test_close_ends_idle_threads(running):
    running.submit(lambda: None)
    running.next_outcome()
    pool = running.loop.threads
    assert pool.threads == 1
    pool_threads = [t for t in threading.enumerate() if t.name.startswith("ratchet_sel-pool-")]
    running.stop()
    assert pool.closed and pool.threads == 0
    assert not any(t.is_alive() for t in pool_threads)


def test_after_close_a_job_is_refused():
    loop = Loop()
    outcomes = []
    loop.close_threads()
    loop.run_in_thread(lambda: 1, callback=outcomes.append, errback=outcomes.append)
    loop.run_once()
    assert len(outcomes) == 1 and isinstance(outcomes[0], ThreadPoolFull) and "closed" in str(outcomes[0])
    loop.close()


def test_a_timed_out_waiting_job_leaves_room_in_the_queue(running):
    running.loop.threads.max_threads = 1
    running.loop.threads.max_pending = 1
    gate, entered = threading.Event(), threading.Event()

    def busy():
        entered.set()
        gate.wait(WAIT)
        return "busy"

    running.submit(busy)
    assert entered.wait(WAIT)
    running.submit(lambda: "never", timeout=0.01)       # waits, then times out while it waits
    kind, exc, _ = running.next_outcome()
    assert kind == "error" and "(not started; it will not run)" in str(exc)
    assert running.on_loop(lambda: running.loop.threads.pending) == 0
    running.submit(lambda: "room again")                # accepted: the queue has room
    gate.set()
    assert [running.next_outcome()[:2] for _ in range(2)] == [("ok", "busy"), ("ok", "room again")]
