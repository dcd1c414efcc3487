"""RateLimitedLog: a warning that repeats is logged once per interval, with its count.

Under stress the same event can happen thousands of times a second (accepts
failing for want of descriptors, connections refused past the limit, a
Redis server that does not answer).  One line per occurrence drowns the log
and costs CPU when the server has least of it; none hides the trouble.  So
each *kind* of event is logged at once the first time, then counted: while
it keeps happening, one summary line per interval carries the latest
message and how many times it happened, e.g.::

    accept failing: [Errno 24] Too many open files; pausing accepts for 100 ms (97 times in the last 10 s)

A kind that stopped happening is forgotten after one quiet interval, so that
its next occurrence is logged at once again.  No thread: the clock is the
loop's (or :func:`time.monotonic`), and the summary of a window is written
either by a timer (when ``call_later`` is given, e.g. ``loop.call_later``)
or by the next occurrence after the window.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, Hashable, Optional

__all__ = ["RateLimitedLog", "DEFAULT_INTERVAL"]

#: Seconds between two lines of one kind.
DEFAULT_INTERVAL = 10.0


class _Window:
    """One kind's current interval: when it began, what was held back, and its flush timer."""

    __slots__ = ("start", "count", "level", "text", "timer")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0
        self.level = logging.WARNING
        # The latest message, formatted at once: its arguments (connections, often) must
        # not be kept alive by the log until the summary.
        self.text = ""
        self.timer: Any = None


class RateLimitedLog:
    """Logs each kind of repeated event at most once per ``interval`` seconds, with a count.

    ``logger`` is the :class:`logging.Logger` written to; ``clock`` returns
    monotonic seconds (``loop.time``; :func:`time.monotonic` by default);
    ``call_later(delay, callback)`` (``loop.call_later``), when given, writes
    the last summary of a burst when its interval ends even if nothing
    happens afterwards.  :meth:`log` returns whether a line was written now.
    """

    def __init__(self, logger: logging.Logger, interval: float = DEFAULT_INTERVAL, *,
                 clock: Optional[Callable[[], float]] = None,
                 call_later: Optional[Callable[..., Any]] = None) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive, not %r" % (interval,))
        self.logger = logger
        self.interval = interval
        self.clock = clock if clock is not None else time.monotonic
        self.call_later = call_later
        self._windows: Dict[Hashable, _Window] = {}

    def warning(self, kind: Hashable, msg: str, *args: Any) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, kind, msg, *args)

    def info(self, kind: Hashable, msg: str, *args: Any) -> bool:
        """:meth:`log` at INFO."""
        return self.log(logging.INFO, kind, msg, *args)

    def log(self, level: int, kind: Hashable, msg: str, *args: Any) -> bool:
        """One occurrence of ``kind``: written now if it is the first of an interval, else counted."""
        now = self.clock()
        window = self._windows.get(kind)
        if window is not None and now - window.start >= self.interval:
            if not window.count:  # a quiet interval: this occurrence starts afresh
                if window.timer is not None:
                    window.timer.cancel()
                del self._windows[kind]
                return self.log(level, kind, msg, *args)
            # The interval is over and no timer closed it: its summary includes this occurrence.
            window.count += 1
            window.level, window.text = level, _format(msg, args)
            self._summarise(kind, window, now)
            return True
        if window is None:
            self._windows[kind] = _Window(now)
            if self.logger.isEnabledFor(level):
                self.logger.log(level, msg, *args)
            return True
        window.count += 1
        window.level = level
        if self.logger.isEnabledFor(level):  # (a level not logged costs no formatting)
            window.text = _format(msg, args)
        if window.timer is None and self.call_later is not None:
            window.timer = self.call_later(max(0.0, window.start + self.interval - now), self._on_timer, kind)
        return False

    def held(self, kind: Hashable) -> int:
        """How many occurrences of ``kind`` are counted and not yet written."""
        window = self._windows.get(kind)
        return window.count if window is not None else 0

    def flush(self) -> None:
        """Write the summary of every kind with held occurrences now (e.g. at shutdown)."""
        now = self.clock()
        for kind, window in list(self._windows.items()):
            if window.count:
                self._summarise(kind, window, now)

    def _on_timer(self, kind: Hashable) -> None:
        window = self._windows.get(kind)
        if window is None:
            return
        window.timer = None
        if window.count:
            self._summarise(kind, window, self.clock())
        else:
            del self._windows[kind]

    def _summarise(self, kind: Hashable, window: _Window, now: float) -> None:
        if window.timer is not None:
            window.timer.cancel()
        if self.logger.isEnabledFor(window.level):
            self.logger.log(window.level, "%s (%d times in the last %.0f s)", window.text, window.count,
                            max(now - window.start, self.interval))
        # A new interval begins: quiet through it, the kind is forgotten (see _on_timer).
        fresh = _Window(now)
        self._windows[kind] = fresh
        if self.call_later is not None:
            fresh.timer = self.call_later(self.interval, self._on_timer, kind)


def _format(msg: str, args: tuple) -> str:
    """``msg % args`` as logging would make it (a bad format is shown, never raised)."""
    if not args:
        return msg
    try:
        return msg % args
    except (TypeError, ValueError):
        return "%s %r" % (msg, args)
