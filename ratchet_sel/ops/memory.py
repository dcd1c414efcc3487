"""A long-running server's heap on glibc: give large buffers back when they are freed.

glibc serves a request of at least its *mmap threshold* (128 KiB to start with) with a
mapping of its own, returned to the system by ``free()``.  But when such a block is
freed, glibc raises the threshold to that block's size (its "dynamic threshold", up to
32 MiB) and its heap-trim threshold to twice that.  A server meets this once a client
stops reading: the client's write buffer grows to ``write_limit`` (8 MiB), the
slow-client policy closes the connection, the 8 MiB are freed, and from then on every
buffer up to 8 MiB comes from the heap, which keeps up to 16 MiB it no longer uses.
scripts/soak.py saw a worker stay 8-9 MiB (25 %) bigger for good after one slow consumer
(docs/endurance.md, "What the soak found").

:func:`fix_mmap_threshold` sets the threshold once, which turns the dynamic adjustment
off: blocks of 4 MiB or more are always mapped and given back, smaller ones come from
the heap as before, and the heap is trimmed at glibc's default (128 KiB).  The command
line's servers call it at start (``echo``, ``chat``, ``wamp``, and with them their
workers, which inherit it); an application with its own entry point may call it too.
``MALLOC_MMAP_THRESHOLD_`` in the environment (glibc's own setting) wins over it.

The price, measured with scripts/bench.py: echo of 1 MiB messages 3.6 % slower at the
medians (within the spread), since a 1 MiB buffer freed at the top of the heap is now
trimmed and asked for again.  The trim threshold is left at its default on purpose:
at 4 MiB it kept 4.6 MiB after a slow consumer instead of 1.3 MiB (tests/test_memory.py).
"""

import logging
import os

log = logging.getLogger(__name__)

#: The default threshold: above the messages a server usually handles (1 MiB is common),
#: below ``write_limit`` (8 MiB), so that a slow client's buffer is mapped and returned.
DEFAULT_MMAP_THRESHOLD = 4 * 1024 * 1024

_M_MMAP_THRESHOLD = -3   # from glibc's <malloc.h>


def fix_mmap_threshold(threshold: int = DEFAULT_MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process (and its forks).

    Returns True when it was set; False on another C library, where ``ctypes`` is
    missing, or when ``MALLOC_MMAP_THRESHOLD_`` is set in the environment (the
    operator's choice is kept).  Never raises.
    """
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        import ctypes   # imported here: only a glibc server that wants this pays for it
        mallopt = ctypes.CDLL(None).mallopt
    except (ValueError, OSError, AttributeError, ImportError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, int(threshold)) != 1:
        log.debug("mallopt(M_MMAP_THRESHOLD, %d) refused", threshold)
        return False
    return True
