"""Shared bits of the benchmark servers: file limit, the port line, the stop signal.

Every server of scripts/bench/ listens on 127.0.0.1, port 0, prints
``LISTENING <port>`` on stdout once it accepts connections, echoes every
text and binary message, and answers a text message ``broadcast:<payload>``
by sending ``<payload>`` to every connected client (the sender included) with
the implementation's own broadcast method, without echoing the trigger.
"""

import os
import resource
import signal
import sys

BROADCAST_PREFIX = "broadcast:"
BACKLOG = 1024


def raise_nofile(want: int = 65536) -> int:
    """Raise the soft RLIMIT_NOFILE as far as the hard limit allows; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def announce(port: int) -> None:
    sys.stdout.write("LISTENING %d\n" % port)
    sys.stdout.flush()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into a quick exit (for servers without their own handling)."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))


def start_profile():
    """Start cProfile when BENCH_PROFILE=path is set; the caller writes the stats on exit."""
    path = os.environ.get("BENCH_PROFILE")
    if not path:
        return None
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    return prof


def stop_profile(prof) -> None:
    if prof is not None:
        prof.disable()
        prof.dump_stats(os.environ["BENCH_PROFILE"])
