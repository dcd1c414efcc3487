"""The I/O engine: the loop, the one transport, and the listening server.

- :mod:`~ratchet_sel.io.loop`: :class:`Loop`, one thread, one selector, timers.
- :mod:`~ratchet_sel.io.threads`: ``Loop.run_in_thread``, blocking work on a bounded pool.
- :mod:`~ratchet_sel.io.stream`: the transport of one stream socket (plain or TLS).
- :mod:`~ratchet_sel.io.listener`: :class:`IoServer`, listening sockets and accepting.
"""

from .loop import Handle, Loop, TimerHandle
from .listener import IoServer, bind_listener, exit_on_startup_error
from .stream import Connection
from .threads import ThreadJob, ThreadJobTimeout, ThreadPoolFull

__all__ = ["Loop", "Handle", "TimerHandle", "Connection", "IoServer", "bind_listener",
           "exit_on_startup_error", "ThreadJob", "ThreadJobTimeout", "ThreadPoolFull"]
