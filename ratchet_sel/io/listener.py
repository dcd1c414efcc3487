"""IoServer: listening sockets, accepting, and the server's shutdown.

Each accepted socket becomes a :class:`~ratchet_sel.io.stream.Connection`
(the transport), and the server drives its component with it.  The server is
the connections' :class:`~ratchet_sel.io.stream.StreamOwner`: they report
their opening, end and release to it through its ``stream_*`` methods.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
from typing import Any, Dict, Iterator, List, Optional, Set

from ..ops.ratelimit import RateLimitedLog
from ..ops.stats import STATS
from .loop import Loop
from .stream import (WOULD_BLOCK, Connection, StreamOwner, StreamState, address_family, describe_address,
                     kernel_unsent_bytes)

__all__ = ["IoServer", "Connection", "bind_listener", "exit_on_startup_error", "DEFAULT_MAX_CONNECTIONS"]

log = logging.getLogger(__name__)

# IoServer has a property named ``socket``, which hides the module inside its class body.
_Socket = socket.socket


#: Default cap on simultaneous connections per server.
DEFAULT_MAX_CONNECTIONS = 10000

_ACCEPT_RETRY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

# How often shutdown looks again at connections whose last bytes are in flight.
_DELIVERY_POLL = 0.02


def bind_listener(address: str, port: int, *, backlog: Optional[int] = 1024,
                  reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``address``/``port`` (``"::"`` is dual-stack), listening unless ``backlog`` is None.

    ``reuse_port`` sets ``SO_REUSEPORT`` (Linux: the kernel spreads the
    connections over every socket of the port).  A failure raises
    :class:`OSError` whose message names the address and the port, with the
    errno of the cause (``errno.EADDRINUSE`` for a busy port).
    """
    family = address_family(address) or socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            option = getattr(socket, "SO_REUSEPORT", None)
            if option is None:
                raise OSError(errno.ENOPROTOOPT, "SO_REUSEPORT is not available on this platform")
            sock.setsockopt(socket.SOL_SOCKET, option, 1)
        if family == socket.AF_INET6 and address in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((address, port))
        if backlog is not None:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        where = "[%s]:%d" % (address, port) if family == socket.AF_INET6 else "%s:%d" % (address, port)
        raise OSError(exc.errno, "cannot listen on %s: %s" % (where, exc.strerror or exc)) from exc
    return sock


@contextlib.contextmanager
def exit_on_startup_error(status: int = 1) -> Iterator[None]:
    """Turn an :class:`OSError` raised inside the block into one logged line and ``SystemExit(status)``.

    For a program's start, where a busy port or a missing certificate is
    the user's to fix, not a bug to trace::

        with exit_on_startup_error():
            server = IoServer.factory(WsServer(Chat()), args.port, args.host)
        server.run()

    The listening calls' errors already name the address and the port
    (``cannot listen on 0.0.0.0:8080: Address already in use``); the line
    is logged at ERROR on the ``ratchet_sel`` logger.
    """
    try:
        yield
    except OSError as exc:
        logging.getLogger("ratchet_sel").error("%s", startup_error_text(exc))
        raise SystemExit(status) from None


def startup_error_text(exc: OSError) -> str:
    """The one-line message of a start-up :class:`OSError` (no ``[Errno N]`` prefix when it has a text)."""
    if exc.strerror and exc.filename is not None:
        return "%s: %s" % (exc.filename, exc.strerror)
    return str(exc.strerror or exc)


class IoServer(StreamOwner):
    """Accepts TCP connections and drives ``component`` for each of them.

    ``component`` gets ``on_open(conn)``, ``on_message(conn, data: bytes)``,
    ``on_close(conn)`` and ``on_error(conn, exc)``.  ``address`` may be IPv4 or
    IPv6 (``"::"`` listens dual-stack); ``port=0`` picks a free port, readable as
    :attr:`port`.  ``ssl_context`` makes the listener speak TLS; :meth:`listen`
    adds more listeners (plain and TLS side by side).

    Limits: ``max_connections`` (10,000; ``None`` for no limit): on a plain
    listener a connection past it is handed to ``component.on_refuse(conn)``
    (WebSocket and HTTP servers answer 503) or closed; on a TLS listener it
    is closed at once, before any TLS handshake (an answer would first cost
    the handshake the limit is there to spare); either way it is logged.  ``close_timeout`` (5 s) bounds
    how long a closing connection may take to flush and to see the peer's FIN;
    ``shutdown_timeout`` (5 s) bounds a graceful :meth:`shutdown`.

    ``reuse_port`` sets ``SO_REUSEPORT`` so that several processes accept on
    one port (prefork workers, see :mod:`ratchet_sel.workers`); off by
    default, so that a second server started by mistake on a busy port fails.
    ``sock`` serves an already listening socket instead of binding
    ``address`` and ``port``.
    """

    def __init__(self, component: Any, address: str = "0.0.0.0", port: int = 80,
                 loop: Optional[Loop] = None, *, backlog: int = 1024,
                 max_connections: Optional[int] = DEFAULT_MAX_CONNECTIONS,
                 ssl_context: Any = None, tls_handshake_timeout: float = 10.0,
                 close_timeout: float = 5.0, shutdown_timeout: float = 5.0,
                 reuse_port: bool = False, sock: Optional[socket.socket] = None) -> None:
        self.component = component
        self._handler_of: Any = None
        self._handler: Any = None
        self.max_connections = max_connections
        self.tls_handshake_timeout = tls_handshake_timeout
        self._contexts: Dict[socket.socket, Any] = {}
        self._handshaking: Set[Connection] = set()
        own_loop = loop is None
        self.loop = loop if loop is not None else Loop()
        self.close_timeout = close_timeout
        self.shutdown_timeout = shutdown_timeout
        self.connections: Set[Connection] = set()
        self._lingering: Set[Connection] = set()
        self._listeners: List[socket.socket] = []
        self._accept_paused = False
        # Accept failures and refusals repeat under a burst: one line per kind per 10 s, with a count.
        self._quiet_log = RateLimitedLog(log, clock=self.loop.time, call_later=self.loop.call_later)
        self._shutting_down = False
        self._shutdown_timer: Any = None
        self._delivery_timer: Any = None
        try:
            if sock is not None:
                self.adopt(sock, ssl_context=ssl_context)
            else:
                self.listen(address, port, backlog=backlog, ssl_context=ssl_context, reuse_port=reuse_port)
        except BaseException:
            if own_loop:
                self.loop.close()
            raise

    @classmethod
    def factory(cls, component: Any, port: int = 80, address: str = "0.0.0.0", **kwargs: Any) -> "IoServer":
        """Ratchet's ``IoServer::factory``: a server on a new loop."""
        return cls(component, address, port, **kwargs)

    # -- listening -----------------------------------------------------------
    def listen(self, address: str, port: int, *, backlog: int = 1024,
               ssl_context: Any = None, reuse_port: bool = False) -> socket.socket:
        """Listen on one more address (IPv6 beside IPv4, TLS beside plain); returns the socket.

        With ``ssl_context`` (an :class:`ssl.SSLContext` for the server side)
        connections on this address speak TLS (``wss://``).  ``reuse_port``:
        see the class.  A failure raises :class:`OSError` naming the address
        and the port.
        """
        return self.adopt(bind_listener(address, port, backlog=backlog, reuse_port=reuse_port),
                          ssl_context=ssl_context)

    def adopt(self, sock: socket.socket, *, ssl_context: Any = None) -> socket.socket:
        """Serve an already bound and listening socket (e.g. one a prefork master made); returns it."""
        sock.setblocking(False)
        if not self._listeners:
            self._bound = sock.getsockname()
        self._listeners.append(sock)
        self._contexts[sock] = ssl_context
        self._watch(sock)
        return sock

    def _watch(self, listener: socket.socket) -> None:
        self.loop.add_reader(listener, lambda: self._on_acceptable(listener))

    @property
    def socket(self) -> socket.socket:
        """The first listening socket."""
        return self._listeners[0]

    @property
    def address(self) -> str:
        """The address the first listening socket is (or was) bound to."""
        return self._bound[0]

    @property
    def port(self) -> int:
        """The port the first listening socket is (or was) bound to (the real one for port 0)."""
        return self._bound[1]

    def _on_acceptable(self, listener: _Socket) -> None:
        while True:
            try:
                sock, addr = listener.accept()
            except WOULD_BLOCK:
                return
            except OSError as exc:
                if exc.errno in _ACCEPT_RETRY_ERRNOS:
                    # Out of descriptors or memory: stop accepting for a moment
                    # instead of spinning on a listener that stays readable.
                    self._quiet_log.warning("accept", "accept failing: %s; pausing accepts for 100 ms", exc)
                    self._pause_accepting(0.1)
                    return
                log.debug("accept failed: %s", exc)
                continue
            self._open(sock, addr, self._contexts.get(listener))

    def _pause_accepting(self, delay: float) -> None:
        if self._accept_paused:
            return
        self._accept_paused = True
        for listener in self._listeners:
            self.loop.remove_reader(listener)

        def resume() -> None:
            self._accept_paused = False
            if not self._shutting_down:
                for listener in self._listeners:
                    self._watch(listener)

        self.loop.call_later(delay, resume)

    def _open(self, sock: _Socket, addr: Any, ssl_context: Any = None) -> None:
        STATS.connections_accepted += 1
        over_limit = (self.max_connections is not None
                      and len(self.connections) + len(self._handshaking) >= self.max_connections)
        if ssl_context is None:
            conn = Connection(self, sock, addr)
            if over_limit:
                self._refuse(conn)
            else:
                self.stream_opened(conn)
            return
        if over_limit:  # no room: not even worth a TLS handshake
            self._quiet_log.warning("capacity", "%s: refused, %d connections is the limit",
                                    describe_address(addr), self.max_connections)
            sock.close()
            return
        try:
            tls_sock = ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError) as exc:
            log.info("cannot start TLS with %s: %s", addr, exc)
            sock.close()
            return
        tls_conn = Connection(self, tls_sock, addr)
        self._handshaking.add(tls_conn)
        tls_conn.start_tls(self.tls_handshake_timeout)

    def _refuse(self, conn: Connection) -> None:
        self._quiet_log.warning("capacity", "%r: refused, %d connections is the limit", conn, self.max_connections)
        self._lingering.add(conn)  # until its answer is delivered: shutdown waits for it too
        handler = getattr(self.component, "on_refuse", None)
        try:
            if handler is not None:
                handler(conn)
        finally:
            conn.close()

    # -- what connections report (StreamOwner) ---------------------------------------
    def data_handler(self) -> Any:
        """The component's ``on_message``, bound once and shared by every connection's reads.

        Each connection calls it straight from its read callback; one bound
        method per server instead of one per connection saves 64 bytes of
        every idle connection.
        """
        component = self.component
        if self._handler_of is not component:
            self._handler_of, self._handler = component, component.on_message
        return self._handler

    def stream_opened(self, conn: Any) -> None:
        """A connection is ready (accepted, or its TLS handshake done): it reads, the component gets ``on_open``."""
        self._handshaking.discard(conn)
        self.connections.add(conn)
        conn.resume_reading()
        try:
            self.component.on_open(conn)
        except Exception as exc:
            self.stream_error(conn, exc)

    def stream_failed(self, conn: Any, exc: BaseException) -> None:
        """A TLS connection failed its handshake (or stalled): dropped unseen by the component, logged."""
        log.info("%r: TLS handshake failed: %s", conn, exc)

    def stream_error(self, conn: Any, exc: Exception) -> None:
        """The component raised ``exc`` for ``conn``: logged, then its ``on_error``; dropped if that raises too."""
        log.error("%r: unhandled %s: %s", conn, type(exc).__name__, exc,
                  exc_info=(type(exc), exc, exc.__traceback__))
        try:
            self.component.on_error(conn, exc)
        except Exception:
            log.exception("%r: on_error raised; dropping the connection", conn)
            conn.abort()

    def stream_ended(self, conn: Any, exc: Optional[BaseException]) -> None:
        """A connection stops being usable: the component gets ``on_close``; a closing one is tracked until released."""
        if conn in self.connections:
            self.connections.discard(conn)
            if conn.state is not StreamState.CLOSED:
                self._lingering.add(conn)
            try:
                self.component.on_close(conn)
            except Exception:
                log.exception("%r: on_close raised", conn)
            if self._shutting_down:
                self._check_delivery_soon(0)    # once its FIN is out
        self._maybe_finish_shutdown()

    def stream_released(self, conn: Any) -> None:
        """A connection's socket is closed: forget it (a shutdown may be waiting for it)."""
        self._handshaking.discard(conn)
        self._lingering.discard(conn)
        self._maybe_finish_shutdown()

    # -- running and stopping ----------------------------------------------------
    def run(self) -> None:
        """Serve until SIGINT/SIGTERM or :meth:`stop`, then return."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(signum, self.shutdown)
        try:
            self.loop.run()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.loop.remove_signal_handler(signum)

    def stop_accepting(self) -> None:
        """Close the listening sockets; open connections go on."""
        for listener in self._listeners:
            self.loop.forget(listener)
            listener.close()
        self._listeners = []
        self._contexts.clear()
        for conn in list(self._handshaking):
            conn.abort()

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Stop gracefully: stop accepting, ask every connection to close, stop the loop.

        Each connection is handed to ``component.on_shutdown(conn)`` when the
        component has it (a WebSocket server sends close 1001 there), else
        closed.  The loop stops once all are gone, or after ``timeout``
        (default :attr:`shutdown_timeout`) at the latest.
        """
        if self._shutting_down:
            return
        self._shutting_down = True
        log.info("shutting down: %d connection(s) open", len(self.connections))
        self.stop_accepting()
        on_shutdown = getattr(self.component, "on_shutdown", None)
        for conn in list(self.connections):
            try:
                if on_shutdown is not None:
                    on_shutdown(conn)
                else:
                    conn.close()
            except Exception:
                log.exception("%r: on_shutdown raised", conn)
                conn.abort()
        self._shutdown_timer = self.loop.call_later(
            self.shutdown_timeout if timeout is None else timeout, self._force_stop)
        self._release_delivered()
        self._maybe_finish_shutdown()

    def _check_delivery_soon(self, delay: float) -> None:
        if self._delivery_timer is None:
            self._delivery_timer = self.loop.call_later(delay, self._release_delivered)

    def _release_delivered(self) -> None:
        # While shutting down, a closed connection whose bytes have all been
        # acknowledged is released without waiting for the peer's FIN (an idle
        # client never sends one); the others are looked at again shortly.
        self._delivery_timer = None
        if not self._shutting_down or not self._lingering:
            return
        for conn in list(self._lingering):
            conn.release_if_delivered()
        if self._lingering and all(kernel_unsent_bytes(conn.socket) is not None for conn in self._lingering):
            self._check_delivery_soon(_DELIVERY_POLL)

    def _maybe_finish_shutdown(self) -> None:
        if self._shutting_down and not self.connections and not self._lingering:
            if self._shutdown_timer is not None:
                self._shutdown_timer.cancel()
            if self._delivery_timer is not None:
                self._delivery_timer.cancel()
                self._delivery_timer = None
            self.loop.stop()

    def _force_stop(self) -> None:
        if self._delivery_timer is not None:
            self._delivery_timer.cancel()
            self._delivery_timer = None
        left = len(self.connections) + len(self._lingering)
        if left:
            log.warning("shutdown timeout: dropping %d connection(s)", left)
        for conn in list(self.connections) + list(self._lingering):
            conn.abort()
        self.loop.stop()

    def close(self) -> None:
        """Drop every connection and close the listeners at once (no handshake)."""
        self.stop_accepting()
        for conn in list(self.connections) + list(self._lingering):
            conn.abort()
