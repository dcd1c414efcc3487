"""The examples run as real programs, from a checkout, as a user would run them."""

import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from support import DEFAULT_TIMEOUT

pytestmark = pytest.mark.timeout(60)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINE_CHAT = os.path.join(ROOT, "examples", "line_chat.py")

LISTENING = re.compile(r"listening on (\S+):(\d+)")


class LineClient:
    """A blocking line-oriented client (what nc would show)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise AssertionError("EOF while waiting for a line; have %r" % self.buf)
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode()

    def rest(self):
        """Everything until EOF."""
        data = self.buf
        while True:
            chunk = self.sock.recv(4096)
            if not chunk:
                self.buf = b""
                return data
            data += chunk

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()


@pytest.fixture
def line_chat(tmp_path):
    """Start examples/line_chat.py on port 0 from elsewhere than the checkout; yields (proc, port)."""
    procs = []

    def start(*extra):
        proc = subprocess.Popen([sys.executable, LINE_CHAT, "--port", "0", *extra],
                                cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        procs.append(proc)
        seen = []
        for line in proc.stderr:
            seen.append(line)
            match = LISTENING.search(line)
            if match:
                assert match.group(1) == "127.0.0.1"
                port = int(match.group(2))
                assert port != 0
                return proc, port
        proc.wait(DEFAULT_TIMEOUT)
        pytest.fail("line_chat.py did not start (exit %s): %s" % (proc.returncode, "".join(seen)))

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=DEFAULT_TIMEOUT)


def my_tag(greeting):
    match = re.search(r"you are (\[\d+\])", greeting)
    assert match, greeting
    return match.group(1)


def test_line_chat_relays_lines_between_clients(line_chat):
    proc, port = line_chat()
    a = LineClient(port)
    b = None
    try:
        greeting_a = a.line()
        assert greeting_a.startswith("* welcome")
        tag_a = my_tag(greeting_a)

        b = LineClient(port)
        greeting_b = b.line()
        tag_b = my_tag(greeting_b)
        assert tag_a != tag_b
        assert "1 other(s)" in greeting_b
        assert a.line() == "* %s joined" % tag_b

        # A partial line is held until its newline arrives; CRLF works too.
        a.send(b"hello ")
        a.send(b"from a\r\n")
        assert b.line() == "%s hello from a" % tag_a

        # Several lines in one write, the last one completed later.
        b.send(b"one\ntwo\nthr")
        assert a.line() == "%s one" % tag_b
        assert a.line() == "%s two" % tag_b
        b.send(b"ee\n")
        assert a.line() == "%s three" % tag_b   # and nothing of A's own lines came back to A

        b.send(b"/quit\n")
        assert b.line() == "* bye"
        assert b.rest() == b""
        b.close()                           # (else the server waits for our FIN)
        assert a.line() == "* %s left" % tag_b

        proc.send_signal(signal.SIGTERM)
        assert a.line() == "* server shutting down, bye"
        assert a.rest() == b""
        a.close()
        out, err = proc.communicate(timeout=DEFAULT_TIMEOUT)
    finally:
        a.close()
        if b is not None:
            b.close()
    assert proc.returncode == 0, err
    assert "stopped" in err
    assert "Traceback" not in err


def test_line_chat_limits_line_length(line_chat):
    proc, port = line_chat("--max-line", "64")
    a = LineClient(port)
    b = LineClient(port)
    try:
        a.line()
        b.line()
        a.line()                          # "* [b] joined"
        b.send(b"x" * 65)                 # no newline, already too long
        assert b.line() == "* line too long (limit 64 bytes); bye"
        assert b.rest() == b""
        assert re.fullmatch(r"\* \[\d+\] left", a.line())
        a.send(b"y" * 64 + b"\n")         # exactly at the limit is fine
        a.send(b"z" * 100 + b"\n")        # a complete line over the limit is not
        assert a.line() == "* line too long (limit 64 bytes); bye"
        assert a.rest() == b""
    finally:
        a.close()
        b.close()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=DEFAULT_TIMEOUT)
    assert proc.returncode == 0, err


def test_line_chat_reports_a_busy_port(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        result = subprocess.run([sys.executable, LINE_CHAT, "--port", str(busy.getsockname()[1])],
                                cwd=str(tmp_path), capture_output=True, text=True,
                                timeout=DEFAULT_TIMEOUT)
    finally:
        busy.close()
    assert result.returncode == 1
    assert "cannot listen" in result.stderr
