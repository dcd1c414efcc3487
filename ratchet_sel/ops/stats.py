"""The process's event counters: plain integers the layers bump, read by :mod:`ratchet_sel.metrics`.

Each event costs one integer increment where it happens (a read, a write,
a message, a close); nothing is computed until someone asks.  The counters
are process-wide: several servers in one process add up, and a forked worker
starts from its own copy (:func:`reset` in the child).  This module imports
nothing from the rest of the package, so every layer may use it.
"""

from typing import Dict, Optional

__all__ = ["Stats", "STATS", "reset"]


class Stats:
    """What has happened in this process so far (see the attribute comments)."""

    __slots__ = ("connections_accepted", "bytes_received", "bytes_sent", "messages_received", "messages_sent",
                 "websockets_open", "closes", "refused", "slow_clients_closed", "slow_clients_dropping",
                 "messages_dropped", "loop_lag", "loop_busy")

    def __init__(self) -> None:
        self.connections_accepted = 0            # TCP connections accepted (refused ones too)
        self.bytes_received = 0                  # bytes read from sockets (after TLS)
        self.bytes_sent = 0                      # bytes the kernel took from us (before TLS)
        self.messages_received = 0               # WebSocket messages delivered to the application
        self.messages_sent = 0                   # WebSocket messages handed to a transport
        self.websockets_open: Dict[str, int] = {}  # open WebSocket connections by version
        self.closes: Dict[int, int] = {}         # ended WebSocket connections by close code (1006: no close)
        self.refused: Dict[int, int] = {}        # HTTP refusals (4xx/5xx with a reason) by status
        self.slow_clients_closed = 0             # closed (1008) for not reading
        self.slow_clients_dropping = 0           # began to lose messages for not reading (policy "drop")
        self.messages_dropped = 0                # messages not sent to clients that were not reading
        self.loop_lag: Optional[float] = None    # seconds a timer fired late, at the last look
        self.loop_busy: Optional[float] = None   # CPU seconds per second over the last interval


#: The counters of this process.
STATS = Stats()


def reset() -> None:
    """Start counting from zero (a forked worker's first step, or a test's)."""
    STATS.__init__()  # type: ignore[misc]
