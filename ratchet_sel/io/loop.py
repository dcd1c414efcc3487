"""The event loop: one thread, one ``selectors`` selector, a timer heap.

Everything in ratchet_sel runs on a :class:`Loop`.  It multiplexes readiness
callbacks for sockets, runs timers in deadline order, runs callbacks queued with
:meth:`Loop.call_soon` (also from other threads, through a socketpair that wakes
the selector), and turns SIGINT/SIGTERM into a callback on the loop thread.
"""

import heapq
import itertools
import logging
import select
import selectors
import signal
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional

from .stream import Waker
from .threads import LoopThreads

__all__ = ["Loop", "Handle", "TimerHandle"]

log = logging.getLogger(__name__)

_MAX_SELECT_TIMEOUT = 3600.0
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE

_HAS_EPOLL = hasattr(select, "epoll")
if _HAS_EPOLL:
    _EPOLL_MASKS = {_READ: select.EPOLLIN, _WRITE: select.EPOLLOUT, _READ | _WRITE: select.EPOLLIN | select.EPOLLOUT}
    # As selectors does: an error or hang-up wakes the reader and the writer alike.
    _EPOLL_READABLE = ~select.EPOLLOUT
    _EPOLL_WRITABLE = ~select.EPOLLIN


class _Epoll:
    """The three registration calls of a selector, straight on ``select.epoll`` (Linux).

    The loop keeps its own ``{fd: _Registration}`` map, so the selector's key
    map and the Python-level ``select()`` wrapper (a few calls per event) are
    not needed on the hot path: the loop polls :attr:`epoll` itself.
    """

    def __init__(self) -> None:
        self.epoll = select.epoll()

    def register(self, fileobj: Any, events: int, data: Any = None) -> None:
        self.epoll.register(_fd(fileobj), _EPOLL_MASKS[events])

    def modify(self, fileobj: Any, events: int, data: Any = None) -> None:
        self.epoll.modify(_fd(fileobj), _EPOLL_MASKS[events])

    def unregister(self, fileobj: Any) -> None:
        try:
            self.epoll.unregister(_fd(fileobj))
        except OSError as exc:  # the fd was closed already: the kernel dropped it by itself
            raise KeyError(fileobj) from exc

    def close(self) -> None:
        self.epoll.close()


class Handle:
    """A scheduled callback; :meth:`cancel` keeps it from running."""

    __slots__ = ("callback", "args", "cancelled")

    def __init__(self, callback: Callable[..., Any], args: tuple) -> None:
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run this callback (again)."""
        self.cancelled = True

    def run(self) -> None:
        """Call the callback with its arguments (the loop does, unless cancelled)."""
        self.callback(*self.args)


class TimerHandle(Handle):
    """A callback due at a loop time; periodic when ``interval`` is set."""

    __slots__ = ("when", "interval", "_seq")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple,
                 interval: Optional[float], seq: int) -> None:
        super().__init__(callback, args)
        self.when = when
        self.interval = interval
        self._seq = seq

    def __lt__(self, other: "TimerHandle") -> bool:
        # Equal deadlines run in the order they were scheduled.
        return (self.when, self._seq) < (other.when, other._seq)


def _fd(fileobj: Any) -> int:
    return fileobj if isinstance(fileobj, int) else fileobj.fileno()


class _Registration:
    """The reader and writer callbacks of one file descriptor."""

    __slots__ = ("reader", "writer")

    def __init__(self) -> None:
        self.reader: Optional[Callable[[], Any]] = None
        self.writer: Optional[Callable[[], Any]] = None


class Loop(LoopThreads):
    """A single-threaded selectors loop with timers, thread-safe wake-up and a thread pool for blocking work.

    ``selector`` defaults to epoll on Linux (polled directly, so there is no
    1,024-descriptor ceiling and no per-event wrapper call) and to
    :class:`selectors.DefaultSelector` elsewhere; any :mod:`selectors`
    selector may be passed.  All methods except :meth:`call_soon_threadsafe`
    and :meth:`stop` must be called from the loop thread; :meth:`run_in_thread`
    runs blocking functions elsewhere (:mod:`ratchet_sel.io.threads`).

    ``flush_soon(callback)`` runs ``callback()`` at the end of the current loop iteration, after
    every event of it (flushes queued by a flush run too, in order).  Streams use it to write
    what callbacks sent during the iteration in one system call instead of one per message.  It
    is an attribute, the bound ``append`` of the loop's flush list, not a method: it is called
    once per message sent, and a Python-level method would add a call to each.
    """

    flush_soon: Callable[[Callable[[], Any]], None]

    def __init__(self, selector: Optional[selectors.BaseSelector] = None) -> None:
        self._epoll: Any = None
        if selector is not None:
            self._selector: Any = selector
        elif _HAS_EPOLL:
            self._selector = _Epoll()
            self._epoll = self._selector.epoll
        else:
            self._selector = selectors.DefaultSelector()
        self._registrations: Dict[int, _Registration] = {}
        self._ready: Deque[Handle] = deque()
        self._flushers: List[Callable[[], Any]] = []
        # One list for the loop's life, so that flush_soon can be its bound
        # append: no Python-level call per message sent (see the class).
        self.flush_soon = self._flushers.append
        self._timers: List[TimerHandle] = []
        self._timer_seq = itertools.count()
        self._running = False
        self._stopping = False
        self._thread_id: Optional[int] = None
        self._signal_handlers: Dict[int, Callable[[], Any]] = {}
        self._pending_signals: Deque[int] = deque()
        # Other threads (and signal handlers, through signal.set_wakeup_fd)
        # write a byte to the waker to interrupt select().
        self._waker = Waker()
        self._threadsafe_lock = threading.Lock()
        self._threadsafe: Deque[Handle] = deque()
        self.add_reader(self._waker.read_fd, self._drain_wakeup)

    # -- time -------------------------------------------------------------
    @staticmethod
    def time() -> float:
        """The loop's clock (monotonic seconds)."""
        return time.monotonic()

    # -- file descriptors -------------------------------------------------
    def _update(self, fileobj: Any, reg: _Registration, existed: bool) -> None:
        events = (_READ if reg.reader is not None else 0) | (_WRITE if reg.writer is not None else 0)
        if not events:
            if existed:
                del self._registrations[_fd(fileobj)]
                self._selector.unregister(fileobj)
        elif existed:
            self._selector.modify(fileobj, events, reg)
        else:
            self._selector.register(fileobj, events, reg)
            self._registrations[_fd(fileobj)] = reg

    def _registration(self, fileobj: Any):
        # Our own map: the selector's get_key() formats the socket's repr (two
        # system calls) into the KeyError of every first registration.
        reg = self._registrations.get(_fd(fileobj))
        if reg is None:
            return _Registration(), False
        return reg, True

    def add_reader(self, fileobj: Any, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` whenever ``fileobj`` is readable."""
        reg, existed = self._registration(fileobj)
        if reg.reader is callback:
            return
        reg.reader = callback
        self._update(fileobj, reg, existed)

    def remove_reader(self, fileobj: Any) -> None:
        """Stop watching ``fileobj`` for readability."""
        reg, existed = self._registration(fileobj)
        if existed and reg.reader is not None:
            reg.reader = None
            self._update(fileobj, reg, existed)

    def add_writer(self, fileobj: Any, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` whenever ``fileobj`` is writable."""
        reg, existed = self._registration(fileobj)
        if reg.writer is callback:
            return
        reg.writer = callback
        self._update(fileobj, reg, existed)

    def remove_writer(self, fileobj: Any) -> None:
        """Stop watching ``fileobj`` for writability."""
        reg, existed = self._registration(fileobj)
        if existed and reg.writer is not None:
            reg.writer = None
            self._update(fileobj, reg, existed)

    def forget(self, fileobj: Any) -> None:
        """Drop every callback of ``fileobj`` (call before closing it)."""
        try:
            fd = _fd(fileobj)
        except (OSError, ValueError):
            return
        if self._registrations.pop(fd, None) is not None:
            try:
                self._selector.unregister(fileobj)
            except (KeyError, ValueError):
                pass

    # -- callbacks and timers ----------------------------------------------
    def call_soon(self, callback: Callable[..., Any], *args: Any) -> Handle:
        """Run ``callback(*args)`` on the next loop iteration."""
        handle = Handle(callback, args)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> Handle:
        """Like :meth:`call_soon`, callable from any thread; wakes the loop."""
        handle = Handle(callback, args)
        with self._threadsafe_lock:
            self._threadsafe.append(handle)
        self._waker.wake()
        return handle

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` once, ``delay`` seconds from now."""
        return self._schedule(self.time() + max(0.0, delay), callback, args, None)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` once, at loop time ``when``."""
        return self._schedule(when, callback, args, None)

    def call_every(self, interval: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` every ``interval`` seconds until cancelled."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        return self._schedule(self.time() + interval, callback, args, interval)

    def _schedule(self, when: float, callback: Callable[..., Any], args: tuple,
                  interval: Optional[float]) -> TimerHandle:
        timer = TimerHandle(when, callback, args, interval, next(self._timer_seq))
        heapq.heappush(self._timers, timer)
        return timer

    # -- signals ------------------------------------------------------------
    def add_signal_handler(self, signum: int, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` on the loop thread when ``signum`` arrives.

        Takes effect while :meth:`run` runs in the main thread; the previous
        Python-level handler is restored when :meth:`run` returns.
        """
        self._signal_handlers[signum] = callback

    def remove_signal_handler(self, signum: int) -> None:
        """Forget the handler of ``signum``."""
        self._signal_handlers.pop(signum, None)

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Runs in the main thread between bytecodes: only record it; the
        # wake-up fd makes select() return so the loop dispatches it.
        self._pending_signals.append(signum)

    def _install_signals(self) -> Dict[int, Any]:
        previous: Dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return previous
        for signum in self._signal_handlers:
            previous[signum] = signal.signal(signum, self._on_signal)
        if previous:
            previous[-1] = signal.set_wakeup_fd(self._waker.write_fd, warn_on_full_buffer=False)
        return previous

    @staticmethod
    def _restore_signals(previous: Dict[int, Any]) -> None:
        old_fd = previous.pop(-1, None)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if old_fd is not None:
            signal.set_wakeup_fd(old_fd)

    # -- running ------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        """True while :meth:`run` is running."""
        return self._running

    def in_loop_thread(self) -> bool:
        """True when called from the thread running the loop."""
        return self._thread_id == threading.get_ident()

    def stop(self) -> None:
        """Make :meth:`run` return after the current iteration (any thread)."""
        self._stopping = True
        if not self.in_loop_thread():
            self._waker.wake()

    def run(self) -> None:
        """Run until :meth:`stop` is called."""
        if self._running:
            raise RuntimeError("the loop is already running")
        self._running = True
        self._thread_id = threading.get_ident()
        previous = self._install_signals()
        try:
            while not self._stopping:
                self._run_once()
        finally:
            self._restore_signals(previous)
            self._stopping = False
            self._running = False
            self._thread_id = None

    def run_once(self, timeout: Optional[float] = 0.0) -> None:
        """Run one iteration, waiting at most ``timeout`` for I/O (for tests)."""
        self._thread_id = threading.get_ident()
        self._run_once(timeout)

    def _run_once(self, max_timeout: Optional[float] = None) -> None:
        timers = self._timers
        if self._ready or self._stopping or self._pending_signals or self._flushers:
            timeout: Optional[float] = 0.0
        elif timers:
            while timers and timers[0].cancelled:
                heapq.heappop(timers)
            timeout = max(0.0, timers[0].when - self.time()) if timers else None
        else:
            timeout = None
        if max_timeout is not None:
            timeout = max_timeout if timeout is None else min(timeout, max_timeout)
        if timeout is not None and timeout > _MAX_SELECT_TIMEOUT:
            timeout = _MAX_SELECT_TIMEOUT  # epoll cannot wait weeks; wake and look again

        # The guard is inline rather than a call: this runs once per I/O event.
        if self._epoll is not None:
            registrations = self._registrations
            for fd, mask in self._epoll.poll(-1 if timeout is None else timeout):
                reg = registrations.get(fd)
                if reg is None:
                    continue  # forgotten by an earlier callback of this iteration
                try:
                    if mask & _EPOLL_READABLE and reg.reader is not None:
                        reg.reader()
                    if mask & _EPOLL_WRITABLE and reg.writer is not None:
                        reg.writer()
                except Exception:  # a failing callback must never stop the loop
                    log.exception("unhandled exception in I/O callback of fd %d", fd)
        else:
            for key, events in self._selector.select(timeout):
                reg = key.data
                try:
                    if events & _READ and reg.reader is not None:
                        reg.reader()
                    if events & _WRITE and reg.writer is not None:
                        reg.writer()
                except Exception:
                    log.exception("unhandled exception in I/O callback of %r", key.fileobj)

        while self._pending_signals:
            callback = self._signal_handlers.get(self._pending_signals.popleft())
            if callback is not None:
                self._guard(callback)

        if timers:
            now = self.time()
            while timers and timers[0].when <= now:
                timer = heapq.heappop(timers)
                if timer.cancelled:
                    continue
                if timer.interval is not None:
                    # Re-arm from the due time, not from now, so a periodic
                    # timer does not drift; skip beats the loop missed.
                    timer.when += timer.interval
                    if timer.when <= now:
                        timer.when = now + timer.interval
                    heapq.heappush(timers, timer)
                self._ready.append(timer)

        # Run only what is ready now; callbacks queued meanwhile wait a turn
        # so that I/O is never starved.
        ready = self._ready
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle.cancelled:
                self._guard(handle.run)

        flushers = self._flushers
        if flushers:
            # A list iterator also yields what is appended while it runs, so
            # flushes queued by flushes run too, in order.
            for flush in flushers:
                try:
                    flush()
                except Exception:
                    log.exception("unhandled exception in flush callback %r", flush)
            flushers.clear()

    @staticmethod
    def _guard(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:  # a failing callback must never stop the loop
            log.exception("unhandled exception in loop callback %r", fn)

    def _drain_wakeup(self) -> None:
        self._waker.drain()
        with self._threadsafe_lock:
            self._ready.extend(self._threadsafe)
            self._threadsafe.clear()

    def close_after_fork(self) -> None:
        """Drop a loop inherited through ``fork`` in the child, leaving the parent's loop intact.

        The child's copy of an epoll selector is the parent's kernel object:
        unregistering anything from it would change the parent's loop, so the
        descriptors are only closed.  Signal handlers this loop installed are
        reset to the defaults and the signal wake-up descriptor is cleared.
        Must not be called on a running loop of this process.
        """
        if threading.current_thread() is threading.main_thread():
            signal.set_wakeup_fd(-1)
            for signum in self._signal_handlers:
                signal.signal(signum, signal.SIG_DFL)
        self._signal_handlers.clear()
        self._pending_signals.clear()
        self._timers.clear()
        self._ready.clear()
        self._flushers.clear()
        self._registrations.clear()
        self._running = False
        self.forget_threads()
        self._selector.close()  # closes the descriptor; no unregister reaches the shared kernel object
        self._waker.close()

    def close(self) -> None:
        """Release the selector, the waker and the threads of :meth:`run_in_thread` (waiting 1 s at most)."""
        if self._running:
            raise RuntimeError("cannot close a running loop")
        self.close_threads()
        self.forget(self._waker.read_fd)
        self._selector.close()
        self._waker.close()
