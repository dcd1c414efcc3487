"""Memory a server gives back: regressions found by scripts/soak.py (docs/endurance.md).

A client that never reads makes the server buffer up to ``write_limit`` (8 MiB) for it
in one ``bytearray``; when the slow-client policy ends that connection the buffer is
freed.  glibc then raises its mmap threshold to the size of that block (its "dynamic
threshold"), so every later allocation up to 8 MiB comes from the heap, and the heap
keeps what it once held: the process stayed about 8 MiB bigger for good (+25 % on one
soak worker).  These tests run a real ``chat`` server process and read its RSS.
"""

import os
import socket
import struct
import subprocess
import sys
import time

import pytest
from support import ROOT, connect, start_cli, stop_cli
from wsclient import read_response, upgrade_request

from ratchet_sel.websocket.rfc6455 import OP_PING, encode_frame

TCP_ESTABLISHED = 1


def on_glibc_linux():
    try:
        return sys.platform.startswith("linux") and bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):     # another C library does not know the name
        return False


pytestmark = pytest.mark.skipif(not on_glibc_linux(), reason="reads /proc and is about glibc's allocator")


def rss_mib(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1048576.0


def slow_consumer(port, deadline):
    """Upgrade, never read, flood pings until the server gives up on us (its write limit)."""
    sock = connect(port, rcvbuf=4096)
    try:
        sock.sendall(upgrade_request())
        status, _, _ = read_response(sock)
        assert status == 101
        batch = encode_frame(OP_PING, b"p" * 125, mask=b"abcd") * 500
        sock.settimeout(0.5)
        while time.monotonic() < deadline:
            state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
            if state != TCP_ESTABLISHED:
                return                      # the server closed (the close timeout ended it)
            try:
                sock.sendall(batch)
            except socket.timeout:
                time.sleep(0.05)            # the server stopped reading us: it is closing
            except OSError:
                return
        raise AssertionError("the server never dropped a client that does not read")
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


@pytest.mark.timeout(90)
def test_slow_consumers_do_not_leave_their_write_buffer_in_rss():
    proc, port = start_cli("chat")
    try:
        idle = [connect(port) for _ in range(20)]
        for sock in idle:
            sock.sendall(upgrade_request())
            assert read_response(sock)[0] == 101
        time.sleep(0.5)
        before = rss_mib(proc.pid)
        after = []
        for _ in range(3):
            slow_consumer(port, time.monotonic() + 30)
            time.sleep(0.5)
            after.append(rss_mib(proc.pid))
        grown = max(after) - before
        assert grown < 3.0, "RSS %.1f MiB before, %s after each slow consumer: %.1f MiB kept" % (
            before, ", ".join("%.1f" % r for r in after), grown)
        for sock in idle:
            sock.close()
    finally:
        stop_cli(proc)


def test_fix_mmap_threshold_sets_glibc_threshold_in_a_fresh_process():
    code = "from ratchet_sel.ops.memory import fix_mmap_threshold; print(fix_mmap_threshold())"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "True", out.stderr


def test_fix_mmap_threshold_keeps_the_operators_setting():
    code = "from ratchet_sel.ops.memory import fix_mmap_threshold; print(fix_mmap_threshold())"
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "False", out.stderr
