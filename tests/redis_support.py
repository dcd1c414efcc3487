"""A real redis-server for tests, a raw RESP client, and chat servers in child processes.

``RedisProcess(port)`` runs ``redis-server`` on 127.0.0.1 with persistence off
(``--save '' --appendonly no``), waits for its "Ready to accept connections"
line, and is stopped by PID.  ``REDIS_SERVER`` is the program's path, or
``None`` when it is not installed (tests then skip, saying so).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, List, Optional

from ratchet_sel.pubsub.resp import RespParser, encode_command

__all__ = ["REDIS_SERVER", "SKIP_REASON", "RedisProcess", "RawRedis", "ChatProcess", "ServerProcess", "Forwarder", "free_port",
           "wait_until"]

REDIS_SERVER = shutil.which("redis-server")
SKIP_REASON = "redis-server is not installed (apt-get install redis-server); the Redis tests need a real one"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is true (an external process's state has no event to wait on)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %g s waiting for %s" % (timeout, what))
        time.sleep(0.02)


class _LineLog:
    """Collects a child's output lines in a thread, so its pipe never fills."""

    def __init__(self, stream: Any) -> None:
        self.lines: List[str] = []
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            with self._condition:
                self.lines.append(line.rstrip("\n"))
                self._condition.notify_all()
        with self._condition:
            self.lines.append("<EOF>")
            self._condition.notify_all()

    def wait_for(self, pattern: str, timeout: float = 10.0, start: int = 0) -> "re.Match":
        """The first line from index ``start`` matching ``pattern`` (waiting for it)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                for line in self.lines[start:]:
                    match = regex.search(line)
                    if match:
                        return match
                if "<EOF>" in self.lines[start:]:
                    raise AssertionError("the process ended before logging %r:\n%s" % (pattern, self.text()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no line matching %r within %g s:\n%s" % (pattern, timeout, self.text()))
                self._condition.wait(left)

    def count(self, pattern: str) -> int:
        regex = re.compile(pattern)
        with self._condition:
            return sum(1 for line in self.lines if regex.search(line))

    def text(self) -> str:
        with self._condition:
            return "\n".join(self.lines[-60:])


class RedisProcess:
    """``redis-server`` on 127.0.0.1:``port``, started and stopped by PID."""

    def __init__(self, port: Optional[int] = None, *extra: str) -> None:
        self.port = port or free_port()
        self.extra = extra
        self.proc: Optional[subprocess.Popen] = None
        self.log: Optional[_LineLog] = None

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self, timeout: float = 15.0) -> "RedisProcess":
        assert REDIS_SERVER, SKIP_REASON
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--protected-mode", "no", "--loglevel", "notice", *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        self.log = _LineLog(self.proc.stdout)
        self.log.wait_for(r"Ready to accept connections", timeout)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> "RedisProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class RawRedis:
    """A blocking RESP client for tests (the library's parser; nothing else)."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.parser = RespParser()
        self.replies: List[Any] = []

    def send(self, *args: Any) -> None:
        self.sock.sendall(encode_command(*args))

    def reply(self) -> Any:
        while not self.replies:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.replies.extend(self.parser.feed(data))
        return self.replies.pop(0)

    def command(self, *args: Any) -> Any:
        self.send(*args)
        return self.reply()

    def numsub(self, channel: str) -> int:
        return int(self.command("PUBSUB", "NUMSUB", channel)[1])

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawRedis":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def wait_subscribers(port: int, channel: str, count: int) -> None:
    """Wait until ``channel`` has ``count`` subscribers on the Redis at ``port``."""
    with RawRedis(port) as raw:
        wait_until(lambda: raw.numsub(channel) == count, 15, "%d subscribers of %s" % (count, channel))


class ServerProcess:
    """A server in a child process, run from the checkout; ``port`` once it logs ``url_pattern``."""

    def __init__(self, argv: List[str], url_pattern: str = r"ws://127\.0\.0\.1:(\d+)/") -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen([sys.executable, *argv], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     text=True, errors="replace", env=env, cwd=ROOT)
        self.log = _LineLog(self.proc.stderr)
        self.port = int(self.log.wait_for(url_pattern, 30).group(1))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(timeout=10)
        return self.proc.returncode

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


class ChatProcess(ServerProcess):
    """``python -m ratchet_sel chat --host 127.0.0.1 --port 0 ARGS``."""

    def __init__(self, *args: str) -> None:
        super().__init__(["-m", "ratchet_sel", "chat", "--host", "127.0.0.1", "--port", "0", *args])


class Forwarder:
    """A TCP forwarder from a loopback port to ``target_port``, opened and closed at will.

    While closed nothing listens on ``port`` (connections are refused), which
    lets a test decide exactly when a client can reach Redis.
    """

    def __init__(self, target_port: int, port: Optional[int] = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self._listener: Optional[socket.socket] = None
        self._sockets: List[socket.socket] = []
        #: While true, bytes are swallowed instead of forwarded: a peer gone silent.
        self.silent = False

    def open(self) -> "Forwarder":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if not self.silent:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
        self._sockets = []
