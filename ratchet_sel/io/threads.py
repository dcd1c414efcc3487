"""Blocking work off the loop, results back on it: :meth:`Loop.run_in_thread`.

A callback that blocks (a database query, an HTTP call to another service, a
file read on a slow disk) stops every other connection of the loop while it
runs.  :meth:`Loop.run_in_thread` runs such a function on a small pool of
threads owned by the loop and hands its result (or its exception) back to the
loop thread, where the application may touch connections again::

    def on_message(self, conn, msg):
        conn.loop.run_in_thread(lookup, msg,
                                callback=lambda row: conn.send(row),
                                errback=lambda exc: conn.send("error: %s" % exc))

Every job ends in exactly one of ``callback(result)`` or ``errback(exc)``, both
called on the loop thread:

- the function raised: ``errback(exc)`` with its exception;
- ``timeout`` seconds passed since the call: ``errback(ThreadJobTimeout(...))``.
  A thread cannot be interrupted, so a function still running keeps its
  thread until it returns; its late result is then dropped (logged at DEBUG);
- the pool is full (``max_threads`` busy and ``max_pending`` already
  waiting): ``errback(ThreadPoolFull(...))`` on the next loop iteration,
  without waiting and without queuing the job;
- the job was cancelled (:meth:`ThreadJob.cancel`): neither is called.

Without an ``errback`` a failure is logged at ERROR.  An exception raised by
``callback`` or ``errback`` themselves is logged like that of any loop
callback, and the loop goes on.

Threads start on demand up to ``max_threads`` and stay until the loop is
closed; :meth:`Loop.close` drops the waiting jobs, lets idle threads end and
waits for them briefly (they are daemon threads: one stuck in a blocking call
never keeps the process alive).
"""

import logging
import os
import threading
from collections import deque
from typing import Any, Callable, Deque, List, Optional

__all__ = ["ThreadPool", "ThreadJob", "ThreadJobTimeout", "ThreadPoolFull", "LoopThreads",
           "DEFAULT_MAX_THREADS", "DEFAULT_MAX_PENDING"]

log = logging.getLogger(__name__)

#: Threads per loop.  Blocking work here is mostly waiting (for a database, a
#: remote service), so more threads than cores pay off, as in
#: ``concurrent.futures`` (``min(32, cpus + 4)``); but every thread running
#: Python code competes with the loop thread for the GIL, and each usually
#: holds a database connection, so the default stays small: 8 threads.
DEFAULT_MAX_THREADS = min(8, (os.cpu_count() or 1) + 4)

#: Jobs waiting for a thread.  At 8 threads and half a second a job, 256 waiting
#: jobs is 16 s of backlog: past that an answer is usually too late to be useful,
#: and the caller hears at once that the server is busy.
DEFAULT_MAX_PENDING = 256


class ThreadJobTimeout(TimeoutError):
    """A job did not finish within its ``timeout`` (its thread may still be running it)."""


class ThreadPoolFull(RuntimeError):
    """A job was refused at once: every thread was busy and the waiting queue was full."""


class ThreadJob:
    """One call of :meth:`Loop.run_in_thread`: cancel it, or look at its state."""

    __slots__ = ("fn", "args", "callback", "errback", "started", "settled", "timer", "pool")

    def __init__(self, fn: Callable[..., Any], args: tuple, callback: Optional[Callable[[Any], Any]],
                 errback: Optional[Callable[[BaseException], Any]]) -> None:
        self.fn = fn
        self.args = args
        self.callback = callback
        self.errback = errback
        #: Set by the pool's thread when it takes the job.
        self.started = False
        #: Set on the loop thread once the outcome was delivered, timed out or cancelled.
        self.settled = False
        self.timer: Any = None
        #: The pool that queued the job (it forgets a waiting job that is settled).
        self.pool: Optional["ThreadPool"] = None

    def cancel(self) -> None:
        """Call neither ``callback`` nor ``errback`` (loop thread); a waiting job never runs.

        A job already running in a thread runs to its end; its result is dropped.
        """
        self._settle()

    def _settle(self) -> bool:
        # True for the first caller only: the one that delivers (or drops) the outcome.
        if self.settled:
            return False
        self.settled = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.started and self.pool is not None:
            self.pool.discard(self)   # a timed-out or cancelled job leaves room in the queue at once
        return True

    def finish(self, result: Any, error: Optional[BaseException]) -> None:
        """Deliver the outcome on the loop thread (the pool's threads schedule this)."""
        if not self._settle():
            log.debug("dropped the late result of %r (timed out or cancelled)", self.fn)
            return
        if error is None:
            if self.callback is not None:
                self.callback(result)
        elif self.errback is not None:
            self.errback(error)
        else:
            log.error("%r raised in a thread: %s: %s", self.fn, type(error).__name__, error,
                      exc_info=(type(error), error, error.__traceback__))

    def expire(self, timeout: float) -> None:
        """The timer's end: the errback gets :class:`ThreadJobTimeout` (loop thread)."""
        self.timer = None
        if not self.settled:
            fate = ("still running; its result will be dropped" if self.started
                    else "not started; it will not run")
            self.finish(None, ThreadJobTimeout("%s did not finish within %g s (%s)"
                                               % (getattr(self.fn, "__name__", "the job"), timeout, fate)))


class ThreadPool:
    """The bounded pool behind :meth:`Loop.run_in_thread` (one per loop, made on first use).

    ``max_threads`` and ``max_pending`` may be changed at any time; they
    apply to the next jobs.
    """

    def __init__(self, loop: Any, max_threads: int = DEFAULT_MAX_THREADS,
                 max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.loop = loop
        self.max_threads = max_threads
        self.max_pending = max_pending
        self._lock = threading.Condition(threading.Lock())
        self._pending: Deque[ThreadJob] = deque()
        self._threads: List[threading.Thread] = []
        self._idle = 0
        self._closed = False

    @property
    def threads(self) -> int:
        """How many threads the pool has now."""
        return len(self._threads)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called: no job is taken any more."""
        return self._closed

    @property
    def pending(self) -> int:
        """How many jobs wait for a thread."""
        return len(self._pending)

    def submit(self, job: ThreadJob) -> bool:
        """Queue ``job``; False (nothing queued) when the pool is full or closed."""
        with self._lock:
            if self._closed:
                return False
            if self._idle <= len(self._pending):
                if len(self._threads) < self.max_threads:
                    self._start_thread()
                elif len(self._pending) >= self.max_pending:
                    return False
            self._pending.append(job)
            job.pool = self
            self._lock.notify()
        return True

    def discard(self, job: ThreadJob) -> None:
        """Forget ``job`` if it still waits for a thread."""
        with self._lock:
            try:
                self._pending.remove(job)
            except ValueError:
                pass     # a thread took it meanwhile

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._work, name="ratchet_sel-pool-%d" % (len(self._threads) + 1),
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def _next_job(self) -> Optional[ThreadJob]:
        with self._lock:
            while True:
                while not self._pending and not self._closed:
                    self._idle += 1
                    self._lock.wait()
                    self._idle -= 1
                if self._closed:
                    return None
                job = self._pending.popleft()
                if not job.settled:  # else cancelled or timed out while it waited
                    job.started = True
                    return job

    def _work(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            result, error = None, None
            try:
                result = job.fn(*job.args)
            except BaseException as exc:  # handed to the errback, on the loop thread
                error = exc
            if self._closed:
                continue   # the loop is gone: nobody to tell
            self.loop.call_soon_threadsafe(job.finish, result, error)
            del job, result, error   # hold no reference while idle

    def close(self, wait: float = 1.0) -> None:
        """Drop the waiting jobs and stop the threads, waiting at most ``wait`` seconds for them."""
        with self._lock:
            self._closed = True
            self._pending.clear()
            self._lock.notify_all()
            threads, self._threads = self._threads, []
        deadline = self.loop.time() + wait
        for thread in threads:
            thread.join(max(0.0, deadline - self.loop.time()))
        busy = sum(thread.is_alive() for thread in threads)
        if busy:
            log.warning("closing the loop: %d thread(s) still busy in a blocking call; left to finish "
                        "(their results are dropped)", busy)


class LoopThreads:
    """The part of :class:`~ratchet_sel.Loop` that runs blocking functions on threads."""

    _thread_pool: Optional[ThreadPool] = None

    @property
    def threads(self) -> ThreadPool:
        """The loop's :class:`ThreadPool` (made on first use; no thread starts before a job)."""
        if self._thread_pool is None:
            self._thread_pool = ThreadPool(self)
        return self._thread_pool

    def run_in_thread(self, fn: Callable[..., Any], *args: Any, callback: Optional[Callable[[Any], Any]] = None,
                      errback: Optional[Callable[[BaseException], Any]] = None,
                      timeout: Optional[float] = None) -> ThreadJob:
        """Run ``fn(*args)`` on one of the loop's threads; its outcome comes back on the loop thread.

        ``callback(result)`` or ``errback(exc)`` is called on the loop thread
        (never both; neither after :meth:`ThreadJob.cancel`).  ``timeout``
        (seconds from this call, waiting included) gives ``errback`` a
        :class:`ThreadJobTimeout` and drops a result that comes later.  A full
        pool gives ``errback`` a :class:`ThreadPoolFull` on the next iteration,
        at once, and the job never runs.  Call from the loop thread.  See
        :mod:`ratchet_sel.io.threads`.
        """
        job = ThreadJob(fn, args, callback, errback)
        pool = self.threads
        if not pool.submit(job):
            error = ThreadPoolFull("%s refused: %d threads busy and %d jobs waiting (max_pending)"
                                   % (getattr(fn, "__name__", "the job"), pool.threads, pool.pending)
                                   if not pool.closed else "the loop's thread pool is closed")
            self.call_soon(job.finish, None, error)  # type: ignore[attr-defined]
            return job
        if timeout is not None:
            job.timer = self.call_later(timeout, job.expire, timeout)  # type: ignore[attr-defined]
        return job

    def close_threads(self, wait: float = 1.0) -> None:
        """Stop the pool's threads (:meth:`Loop.close` does), waiting at most ``wait`` seconds."""
        self.threads.close(wait)   # made if need be, closed: a later job is refused, not run

    def forget_threads(self) -> None:
        """After ``fork``: the pool's threads do not exist in the child; start afresh on next use."""
        self._thread_pool = None
