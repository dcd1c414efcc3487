"""Reusable test helpers: a server on a background loop thread, and a recording component.

Typical use::

    from support import Recorder, ServerThread, connect

    rec = Recorder(echo=True)
    with ServerThread(rec) as st:
        client = connect(st.port)
        client.sendall(b"hi")
        conn = rec.wait_conn_for(client)
        rec.wait_data(conn, 2)
        assert st.call(lambda: conn.buffered_amount) == 0

Tests synchronise on recorded events (a condition variable) or on
``ServerThread.call`` round trips, never on sleeps.
"""

import os
import re
import socket
import struct
import subprocess
import sys
import threading
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Tuple

from ratchet_sel import IoServer, MessageComponent

__all__ = ["ServerThread", "Recorder", "connect", "recv_exactly", "recv_until_eof", "DEFAULT_TIMEOUT"]

#: How long helpers wait for anything before failing the test.
DEFAULT_TIMEOUT = 10.0


class ServerThread:
    """``IoServer(component, host, port, **kwargs)`` whose loop runs in a daemon thread.

    Exposes ``server``, ``loop``, ``port``, ``host`` and ``thread``.  ``call(fn,
    *args)`` runs ``fn`` on the loop thread and returns its result (or raises
    its exception).  On exit, the server's connections and listeners are
    dropped, the loop is stopped from its own thread, the thread is joined and
    the loop closed.  With ``use_server_run=True`` the thread runs
    ``server.run()`` instead of ``server.loop.run()`` (signal handlers are not
    installed off the main thread, so the two behave alike there).
    """

    def __init__(self, component: Any, host: str = "127.0.0.1", port: int = 0, *,
                 use_server_run: bool = False, timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> None:
        self.component = component
        self.host = host
        self._requested_port = port
        self._kwargs = kwargs
        self._use_server_run = use_server_run
        self.timeout = timeout
        self.server: Any = None
        self.loop: Any = None
        self.port = 0
        self.thread: Optional[threading.Thread] = None
        self.run_error: Optional[BaseException] = None
        self.loop_thread_id: Optional[int] = None

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> "ServerThread":
        self.server = IoServer(self.component, self.host, self._requested_port, **self._kwargs)
        self.loop = self.server.loop
        self.port = self.server.port
        self.thread = threading.Thread(target=self._run, name="ratchet-loop", daemon=True)
        self.thread.start()
        try:
            # Also proves the loop is running before the test starts.
            self.loop_thread_id = self.call(threading.get_ident)
        except BaseException:
            self.close()
            raise
        return self

    def _run(self) -> None:
        try:
            if self._use_server_run:
                self.server.run()
            else:
                self.loop.run()
        except BaseException as exc:  # pragma: no cover - reported by __exit__
            self.run_error = exc

    @property
    def running(self) -> bool:
        """True while the loop thread is alive."""
        return self.thread is not None and self.thread.is_alive()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the loop thread to end (e.g. after ``shutdown``); True if it did."""
        assert self.thread is not None
        self.thread.join(self.timeout if timeout is None else timeout)
        return not self.thread.is_alive()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Drop everything, stop the loop from its own thread, join, close the loop."""
        if self.server is None:
            return
        if self.running:
            try:
                self.call(self.server.close)
            except Exception:
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            if not self.join():
                raise RuntimeError("the loop thread did not stop within %.1f s" % self.timeout)
        else:
            # The loop already ended (shutdown, stop): nothing runs it any more.
            self.server.close()
        self.loop.close()
        self.server = None
        if self.run_error is not None:
            raise RuntimeError("the loop thread raised") from self.run_error

    # -- running things on the loop thread ---------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, timeout: Optional[float] = None) -> Any:
        """Run ``fn(*args)`` on the loop thread and return its result (or raise its exception)."""
        done = threading.Event()
        box: Dict[str, Any] = {}

        def runner() -> None:
            try:
                box["result"] = fn(*args)
            except BaseException as exc:
                box["error"] = exc
            finally:
                done.set()

        self.loop.call_soon_threadsafe(runner)
        if not done.wait(self.timeout if timeout is None else timeout):
            raise TimeoutError("the loop did not run %r in time" % (fn,))
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def sync(self) -> None:
        """Return once the loop has finished the iteration in progress (a round trip)."""
        self.call(lambda: None)

    def connect(self, **kwargs: Any) -> socket.socket:
        """A blocking client socket connected to the server."""
        return connect(self.port, self.host, **kwargs)


def connect(port: int, host: str = "127.0.0.1", *, timeout: float = DEFAULT_TIMEOUT,
            rcvbuf: Optional[int] = None) -> socket.socket:
    """A blocking client socket (with a timeout) connected to ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def recv_exactly(sock: socket.socket, n: int, chunk: int = 1 << 20) -> bytes:
    """Read exactly ``n`` bytes (fails on EOF before that)."""
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(min(chunk, n - len(buf)))
        if not data:
            raise AssertionError("EOF after %d of %d bytes" % (len(buf), n))
        buf += data
    return bytes(buf)


def recv_until_eof(sock: socket.socket, chunk: int = 1 << 20) -> bytes:
    """Read until the peer's FIN; returns everything read."""
    buf = bytearray()
    while True:
        data = sock.recv(chunk)
        if not data:
            return bytes(buf)
        buf += data


class Recorder(MessageComponent):
    """A component that records its events, thread-safely, for tests to wait on.

    ``events`` is a list of ``(kind, conn, payload)`` with kind in ``"open"``,
    ``"message"``, ``"close"``, ``"error"`` (payload: the bytes, the exception,
    or ``None``).  Optional hooks run on the loop thread *after* the event is
    recorded: ``on_open_hook(conn)``, ``on_message_hook(conn, msg)``,
    ``on_close_hook(conn)``, ``on_error_hook(conn, exc)``; an exception raised
    by a hook propagates to the server like any callback's.  ``echo=True``
    sends every message back.  ``on_error`` closes the connection (the
    default behaviour) unless ``close_on_error=False`` or an ``on_error_hook``
    is given.
    """

    def __init__(self, echo: bool = False, *,
                 on_open_hook: Optional[Callable[[Any], Any]] = None,
                 on_message_hook: Optional[Callable[[Any, Any], Any]] = None,
                 on_close_hook: Optional[Callable[[Any], Any]] = None,
                 on_error_hook: Optional[Callable[[Any, BaseException], Any]] = None,
                 close_on_error: bool = True) -> None:
        self.echo = echo
        self.on_open_hook = on_open_hook
        self.on_message_hook = on_message_hook
        self.on_close_hook = on_close_hook
        self.on_error_hook = on_error_hook
        self.close_on_error = close_on_error
        self.cond = threading.Condition()
        self.events: List[Tuple[str, Any, Any]] = []
        self.opened: List[Any] = []
        self.closed: List[Any] = []
        self.errors: List[Tuple[Any, BaseException]] = []
        self.data: Dict[Any, bytearray] = {}
        self.threads = set()

    # -- the component -------------------------------------------------------------
    def _record(self, kind: str, conn: Any, payload: Any = None) -> None:
        with self.cond:
            self.events.append((kind, conn, payload))
            self.threads.add(threading.get_ident())
            if kind == "open":
                self.opened.append(conn)
                self.data.setdefault(conn, bytearray())
            elif kind == "message":
                self.data.setdefault(conn, bytearray()).extend(payload)
            elif kind == "close":
                self.closed.append(conn)
            elif kind == "error":
                self.errors.append((conn, payload))
            self.cond.notify_all()

    def on_open(self, conn: Any) -> None:
        self._record("open", conn)
        if self.on_open_hook is not None:
            self.on_open_hook(conn)

    def on_message(self, conn: Any, msg: Any) -> None:
        self._record("message", conn, msg)
        if self.echo:
            conn.send(msg)
        if self.on_message_hook is not None:
            self.on_message_hook(conn, msg)

    def on_close(self, conn: Any) -> None:
        self._record("close", conn)
        if self.on_close_hook is not None:
            self.on_close_hook(conn)

    def on_error(self, conn: Any, exc: BaseException) -> None:
        self._record("error", conn, exc)
        if self.on_error_hook is not None:
            self.on_error_hook(conn, exc)
        elif self.close_on_error:
            conn.close()

    # -- inspecting ---------------------------------------------------------------
    def snapshot(self) -> List[Tuple[str, Any, Any]]:
        """A copy of the events so far."""
        with self.cond:
            return list(self.events)

    def kinds(self, conn: Any) -> List[str]:
        """The kinds of the events of ``conn``, in order."""
        with self.cond:
            return [kind for kind, c, _ in self.events if c is conn]

    def received(self, conn: Any) -> bytes:
        """All bytes ``conn`` delivered so far."""
        with self.cond:
            return bytes(self.data.get(conn, b""))

    def close_counts(self) -> Counter:
        """How many times each connection was closed."""
        with self.cond:
            return Counter(id(c) for c in self.closed)

    # -- waiting ----------------------------------------------------------------------
    def wait_for(self, predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT,
                 what: str = "condition") -> Any:
        """Wait until ``predicate()`` (called with the lock held) is truthy; return its value."""
        with self.cond:
            result = self.cond.wait_for(predicate, timeout)
        if not result:
            raise AssertionError("timed out after %.1f s waiting for %s; events: %s"
                                 % (timeout, what, self._summary()))
        return result

    def _summary(self) -> str:
        with self.cond:
            counts = Counter(kind for kind, _, _ in self.events)
        return dict(counts).__repr__()

    def wait_opened(self, n: int = 1, timeout: float = DEFAULT_TIMEOUT) -> List[Any]:
        """Wait for at least ``n`` on_open; returns the first ``n`` connections."""
        self.wait_for(lambda: len(self.opened) >= n, timeout, "%d open(s)" % n)
        with self.cond:
            return self.opened[:n]

    def wait_closed(self, n: int = 1, timeout: float = DEFAULT_TIMEOUT) -> List[Any]:
        """Wait for at least ``n`` on_close; returns the first ``n`` closed connections."""
        self.wait_for(lambda: len(self.closed) >= n, timeout, "%d close(s)" % n)
        with self.cond:
            return self.closed[:n]

    def wait_closed_conn(self, conn: Any, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait for ``conn``'s on_close."""
        self.wait_for(lambda: any(c is conn for c in self.closed), timeout, "close of %r" % (conn,))

    def wait_errors(self, n: int = 1, timeout: float = DEFAULT_TIMEOUT) -> List[Tuple[Any, BaseException]]:
        """Wait for at least ``n`` on_error; returns the first ``n`` ``(conn, exc)``."""
        self.wait_for(lambda: len(self.errors) >= n, timeout, "%d error(s)" % n)
        with self.cond:
            return self.errors[:n]

    def wait_data(self, conn: Any, nbytes: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Wait until ``conn`` delivered at least ``nbytes``; returns all it delivered."""
        self.wait_for(lambda: len(self.data.get(conn, b"")) >= nbytes, timeout,
                      "%d bytes from %r" % (nbytes, conn))
        return self.received(conn)

    def wait_conn_for(self, client: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """The server-side connection of ``client`` (matched by its local port), once opened."""
        host, port = client.getsockname()[:2]

        def find() -> Any:
            for conn in self.opened:
                if conn.remote_port == port:
                    return conn
            return None

        return self.wait_for(find, timeout, "on_open of the client from port %d" % port)


def read_all_or_reset(sock: socket.socket) -> Tuple[bytes, bool]:
    """Read until EOF; a reset also ends the stream.  Returns (bytes, reset?)."""
    buf = bytearray()
    try:
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return bytes(buf), False
            buf += data
    except ConnectionResetError:
        return bytes(buf), True


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def ensure_fd_limit(needed: int) -> Tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to ``needed`` (skip the test if the hard limit forbids)."""
    import pytest
    try:
        import resource
    except ImportError:
        pytest.skip("needs the resource module")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, needed))
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return soft, hard


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_cli(*args: str) -> Tuple[subprocess.Popen, int]:
    """``python -m ratchet_sel ARGS --host 127.0.0.1 --port 0``; returns (process, port)."""
    proc = subprocess.Popen([sys.executable, "-m", "ratchet_sel", *args, "--host", "127.0.0.1", "--port", "0"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
        if match:
            # Keep draining stderr so that the server never blocks on a full pipe.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(match.group(1))
    proc.kill()
    proc.wait()
    raise AssertionError("the server did not log its URL")


def stop_cli(proc: subprocess.Popen) -> None:
    """Kill a :func:`start_cli` server (if still running) and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
