"""Prefork workers: several processes accepting on one port, supervised by a master.

One selectors loop uses one core.  :func:`run_workers` (or :class:`Workers`)
forks ``n`` worker processes; each runs its own :class:`~ratchet_sel.Loop`
and :class:`~ratchet_sel.IoServer` with the application's plain synchronous
callbacks, and all of them accept on the same address and port:

- on Linux each worker binds its own listening socket with ``SO_REUSEPORT``
  and the kernel spreads new connections over them;
- elsewhere the master binds one listening socket before forking and every
  worker accepts on its copy.

The master runs no application code.  It is the **local hub** of
publish/subscribe: each worker has a socketpair to it, and a
:class:`~ratchet_sel.pubsub.Topics` hub built on ``worker.backplane`` (or
simply ``worker.topics``) sends its publications there; the master relays
each one to the other workers that have subscribers on the topic.  So a chat
room or a topic spans every worker, and the application code is the same as
in one process::

    from ratchet_sel import WsServer
    from ratchet_sel.demo import Chat
    from ratchet_sel.workers import run_workers

    def build(worker):                # called in each worker, after fork
        return WsServer(Chat(worker.topics))

    run_workers(build, "0.0.0.0", 8000, workers=4)

With Redis as the backplane instead, build the hub on the Redis backplane in
``build``; the master then only supervises.

Supervision: SIGTERM or SIGINT to the master shuts every worker down
gracefully (WebSocket clients get close 1001) and the master exits 0 once the
slowest has exited, within the shutdown timeout.  A worker that dies is logged
with its exit status and replaced at once; one that dies again soon after
starting is replaced with an exponential backoff.  A worker whose master
disappears shuts itself down.

The channel between master and worker carries length-prefixed frames
(:mod:`~ratchet_sel.workers.wire`); both ends are non-blocking, with a bounded
write buffer (:mod:`~ratchet_sel.workers.channel`): a publication that does
not fit is dropped, counted and logged, never queued without limit.  The
worker side is :mod:`~ratchet_sel.workers.worker`.
"""

import errno
import logging
import os
import signal
import socket
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple

from ..io.activation import ActivationError, inherited_listeners
from ..io.listener import IoServer, bind_listener, exit_on_startup_error
from ..io.loop import Loop
from ..ops.privileges import PrivilegeError, drop_privileges
from ..ops import stats
from ..ops.ratelimit import RateLimitedLog
from ..pubsub.envelope import renew_node_id
from .channel import Channel
from .wire import (CLAIM, CLAIM_ANSWER, DEFAULT_CHANNEL_BUFFER, DEFAULT_MAX_FRAME, DELIVERED, MAILBOX_KINDS, METRICS,
                   PUBLISH, READY, RELEASE, SUBSCRIBE, TO_OWNER, TO_WORKER, UNROUTED, UNSUBSCRIBE, WORKER_GONE,
                   encode_channel_frame)
from .worker import ConnectionLog, Worker

__all__ = ["run_workers", "Workers", "ListenAddress", "MAX_WORKERS", "EXIT_BOOT_FAILED", "reuse_port_available"]

log = logging.getLogger(__name__)

# A worker that keeps dying after its first second restarts at once, again and again: one line
# per worker per 10 s, with a count (young deaths are spaced by the backoff and all logged).
_respawn_log = RateLimitedLog(log)

#: The most workers one master runs.
MAX_WORKERS = 64

#: A worker that exits sooner than this after it started "died at once":
#: its replacement waits, doubling from RESPAWN_BACKOFF up to RESPAWN_BACKOFF_MAX.
MIN_UPTIME = 1.0
RESPAWN_BACKOFF = 0.5
RESPAWN_BACKOFF_MAX = 30.0

#: The exit status of a worker whose application could not start (the
#: factory raised, its port could not be bound).
EXIT_BOOT_FAILED = 3


class ListenAddress(NamedTuple):
    """One address the workers accept on."""

    address: str
    port: int
    ssl_context: Any = None


class _Slot:
    """One worker slot: the process now in it, and how often it died young."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.pid = 0
        self.started = 0.0
        self.channel: Optional[Channel] = None
        self.topics: Set[str] = set()
        self.ready = False
        self.failures = 0
        self.respawn: Any = None

    def __repr__(self) -> str:
        return "worker %d (pid %d)" % (self.index, self.pid)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = "signal %d" % signum
        return "killed by signal %d (%s)" % (signum, name)
    if os.WIFEXITED(status):
        return "exited with status %d" % os.WEXITSTATUS(status)
    return "ended with wait status %d" % status


def reuse_port_available() -> bool:
    """True where ``SO_REUSEPORT`` spreads connections over the sockets of a port (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


class _Hub:
    """The master as the local hub of its workers: who subscribes to what, and relaying to them.

    Publications are relayed at the end of the loop iteration, after the
    subscriptions read from every channel in it: a subscription that reached
    the master before a publication is never passed over because its channel
    happened to be read second.
    """

    def __init__(self, slots: List[_Slot], loop: Optional[Loop] = None) -> None:
        self.slots = slots
        self.loop = loop
        self.relays: List[Tuple[_Slot, str, bytes]] = []
        self.mailbox = _MailboxRoutes(slots)

    def frame(self, slot: _Slot, kind: int, topic: str, payload: bytes) -> None:
        """Take a PUBLISH, SUBSCRIBE, UNSUBSCRIBE or METRICS frame from ``slot``'s worker."""
        if kind == PUBLISH:
            if not self.relays:
                assert self.loop is not None
                self.loop.flush_soon(self.relay)
            self.relays.append((slot, topic, payload))
        elif kind == SUBSCRIBE:
            slot.topics.add(topic)
            log.debug("worker %d (pid %d) subscribed to %r", slot.index, slot.pid, topic)
        elif kind == UNSUBSCRIBE:
            slot.topics.discard(topic)
            log.debug("worker %d (pid %d) unsubscribed from %r", slot.index, slot.pid, topic)
        elif kind == METRICS:
            # Named by the master (a worker cannot speak for another slot); to all the others.
            self.to_others(slot, encode_channel_frame(METRICS, str(slot.index), payload))
        elif kind in MAILBOX_KINDS:
            self.mailbox.frame(slot, kind, topic, payload)

    def to_others(self, origin: _Slot, frame: bytes) -> None:
        """Send ``frame`` to every worker but ``origin``'s."""
        for other in self.slots:
            if other is not origin and other.channel is not None:
                other.channel.send(frame)

    def relay(self) -> None:
        """Pass this iteration's publications on to the workers subscribed to their topics."""
        relays, self.relays = self.relays, []
        for origin, topic, payload in relays:
            frame: Optional[bytes] = None
            for other in self.slots:
                if other is not origin and topic in other.topics and other.channel is not None:
                    if frame is None:
                        frame = encode_channel_frame(PUBLISH, topic, payload)
                    other.channel.send(frame)


class _MailboxRoutes:
    """The master's side of the workers' mailbox frames (see :mod:`ratchet_sel.workers.wire`).

    It keeps which worker claimed which key, forwards addressed frames at
    once (not at the end of the iteration: their order per sender is kept by
    the channel), and tells the other workers when one is gone.
    """

    def __init__(self, slots: List[_Slot]) -> None:
        self.slots = slots
        self.owners: Dict[str, _Slot] = {}

    def frame(self, slot: _Slot, kind: int, key: str, payload: bytes) -> None:
        """Route one mailbox frame from ``slot``'s worker."""
        if kind == CLAIM:
            claimed_by = self.owners.setdefault(key, slot)
            self._send(slot, CLAIM_ANSWER, key, (b"1" if claimed_by is slot else b"0") + payload)
        elif kind == RELEASE:
            if self.owners.get(key) is slot:
                del self.owners[key]
        elif kind == TO_OWNER:
            owner = self.owners.get(key)
            if owner is None or owner.channel is None:
                self._send(slot, UNROUTED, key, payload)
            else:
                self._send(owner, DELIVERED, str(slot.index), payload)
        elif kind == TO_WORKER:
            for other in self.slots:
                if str(other.index) == key:
                    self._send(other, DELIVERED, str(slot.index), payload)
        else:
            log.warning("worker %d sent mailbox frame kind %d, which only the master sends", slot.index, kind)

    @staticmethod
    def _send(slot: _Slot, kind: int, topic: str, payload: bytes) -> None:
        if slot.channel is not None:
            slot.channel.send(encode_channel_frame(kind, topic, payload), droppable=False)

    def slot_gone(self, gone: _Slot) -> None:
        """``gone``'s worker ended: its keys are free, and the other workers are told which they were."""
        keys = [key for key, owner in self.owners.items() if owner is gone]
        for key in keys:
            del self.owners[key]
        payload = "\n".join(keys).encode("utf-8")
        for other in self.slots:
            if other is not gone:
                self._send(other, WORKER_GONE, str(gone.index), payload)


class _MasterSockets:
    """The addresses the workers accept on, the master's sockets for them, and each worker's server on them.

    Per address, either a socket bound (not listening) with ``SO_REUSEPORT``
    that only holds the port (each worker binds its own beside it), or a
    listening socket every worker accepts on as it inherited it (shared: made
    here without ``SO_REUSEPORT``, or adopted from systemd).
    """

    def __init__(self, reuse_port: bool, backlog: int) -> None:
        self.reuse_port = reuse_port
        self.backlog = backlog
        self.addresses: List[ListenAddress] = []
        self.sockets: List[socket.socket] = []
        self.shared: Set[socket.socket] = set()

    def listen(self, address: str, port: int, ssl_context: Any) -> Tuple[str, int]:
        """Bind for the workers now (see :meth:`Workers.listen`)."""
        if self.reuse_port:
            # First without SO_REUSEPORT, so that a port some other server holds
            # (or another master started by mistake) is refused instead of shared.
            probe = bind_listener(address, port, backlog=None)
            port = probe.getsockname()[1]
            probe.close()
            sock = bind_listener(address, port, backlog=None, reuse_port=True)
        else:
            sock = bind_listener(address, port, backlog=self.backlog)
            self.shared.add(sock)
        self.sockets.append(sock)
        self.addresses.append(ListenAddress(address, port, ssl_context))
        bound = sock.getsockname()
        return bound[0], bound[1]

    def adopt(self, sock: socket.socket, ssl_context: Any) -> Tuple[str, int]:
        """Share an already listening socket with every worker (see :meth:`Workers.adopt`)."""
        bound = sock.getsockname()
        self.sockets.append(sock)
        self.shared.add(sock)
        self.addresses.append(ListenAddress(bound[0], bound[1], ssl_context))
        return bound[0], bound[1]

    @property
    def all_shared(self) -> bool:
        """True when no worker binds a socket of its own."""
        return len(self.shared) == len(self.sockets)

    def serve(self, component: Any, loop: Loop, server_options: Dict[str, Any]) -> IoServer:
        """In a worker: the server of ``component`` on every address (binding the reuse-port ones)."""
        server: Optional[IoServer] = None
        for listener, sock in zip(self.addresses, self.sockets):
            if sock not in self.shared:
                sock.close()  # the master's placeholder: this worker binds its own
                if server is None:
                    server = IoServer(component, listener.address, listener.port, loop,
                                      ssl_context=listener.ssl_context, reuse_port=True,
                                      backlog=self.backlog, **server_options)
                else:
                    server.listen(listener.address, listener.port, ssl_context=listener.ssl_context,
                                  reuse_port=True, backlog=self.backlog)
            elif server is None:
                server = IoServer(component, loop=loop, sock=sock, ssl_context=listener.ssl_context,
                                  **server_options)
            else:
                server.adopt(sock, ssl_context=listener.ssl_context)
        assert server is not None
        return server

    def close(self) -> None:
        """Close the master's sockets."""
        for sock in self.sockets:
            sock.close()
        self.sockets = []
        self.shared.clear()


class Workers:
    """A prefork master: ``workers`` processes, each serving ``factory(worker)`` on the listeners.

    ``factory(worker)`` is called in each worker after ``fork`` with a
    :class:`Worker` and returns the component to serve (what
    :class:`~ratchet_sel.IoServer` wraps, e.g. a ``WsServer``).  Sockets and
    loops are never shared: each worker makes its own.

    Call :meth:`listen` for each address (it binds at once, so a busy port
    fails here, naming the address and port), then :meth:`run`.

    Keywords: ``shutdown_timeout`` (5 s) bounds each worker's graceful
    shutdown, and the master kills a worker still running a second after it;
    ``reuse_port`` (``None``: where available) picks ``SO_REUSEPORT`` or a
    socket bound by the master before forking; ``server_options`` go to each
    worker's :class:`~ratchet_sel.IoServer` (``max_connections``,
    ``close_timeout``, ...); ``channel_buffer`` and ``max_frame`` bound the
    master/worker channels.

    ``user`` (and ``group``): the master binds, then becomes this user before
    it forks the first worker (:meth:`drop_privileges`), so that no worker ever
    runs as root.  The workers then share the master's listening sockets
    instead of binding their own with ``SO_REUSEPORT``: a worker that replaces a
    dead one could not bind a privileged port any more, and the kernel only
    lets sockets of the same user share a port.  ``reuse_port=True`` with
    ``user`` is refused.
    """

    def __init__(self, factory: Callable[[Worker], Any], workers: int = 2, *,
                 shutdown_timeout: float = 5.0, reuse_port: Optional[bool] = None,
                 server_options: Optional[Dict[str, Any]] = None, backlog: int = 1024,
                 channel_buffer: int = DEFAULT_CHANNEL_BUFFER, max_frame: int = DEFAULT_MAX_FRAME,
                 on_ready: Optional[Callable[[], Any]] = None, user: Optional[str] = None,
                 group: Optional[str] = None) -> None:
        if not hasattr(os, "fork"):
            raise RuntimeError("prefork workers need os.fork (a POSIX system)")
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
            raise ValueError("workers must be an integer from 1 to %d, not %r" % (MAX_WORKERS, workers))
        if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
            raise ValueError("SO_REUSEPORT is not available on this platform")
        if reuse_port and user is not None:
            raise ValueError("reuse_port=True cannot go with user=: a worker started as that user could not bind "
                             "the port, so the workers share the master's socket (leave reuse_port unset)")
        self.factory = factory
        self.count = workers
        self.user, self.group = user, group
        self._dropped = user is None and group is None
        self.reuse_port = (reuse_port_available() and user is None) if reuse_port is None else reuse_port
        self.server_options = dict(server_options or {})
        self.server_options.setdefault("shutdown_timeout", shutdown_timeout)
        #: How long a worker may take to stop (its server's shutdown timeout).
        self.shutdown_timeout = float(self.server_options["shutdown_timeout"])
        self.backlog = self.server_options.pop("backlog", backlog)
        self.channel_buffer = channel_buffer
        self.max_frame = max_frame
        self._sockets = _MasterSockets(self.reuse_port, self.backlog)
        #: The addresses the workers accept on.
        self.listeners: List[ListenAddress] = self._sockets.addresses
        self._slots: List[_Slot] = []
        self._loop: Optional[Loop] = None
        self._stopping = False
        self._kill_timer: Any = None
        self._exit_status = 0
        self._any_ready = False
        self._on_ready = on_ready
        self._hub = _Hub([])

    # -- listeners ------------------------------------------------------------------
    def listen(self, address: str, port: int, ssl_context: Any = None) -> Tuple[str, int]:
        """Bind ``address``/``port`` for the workers now; returns the bound (address, port).

        ``port=0`` picks a free port, the same for every worker.  Raises
        :class:`OSError` naming the address and port when it is taken.
        """
        return self._sockets.listen(address, port, ssl_context)

    def adopt(self, sock: socket.socket, ssl_context: Any = None) -> Tuple[str, int]:
        """Accept on an already listening socket (one from systemd, say) in every worker; returns its address.

        ``SO_REUSEPORT`` cannot apply to a socket made elsewhere: every
        worker accepts on its inherited copy of this one.
        """
        return self._sockets.adopt(sock, ssl_context)

    def drop_privileges(self) -> Optional[str]:
        """Become ``user``/``group`` now, once the sockets are bound (:meth:`run` does it if not done yet).

        Returns what was done (see :func:`~ratchet_sel.ops.privileges.drop_privileges`);
        raises :class:`~ratchet_sel.ops.privileges.PrivilegeError` when it cannot.
        """
        if self._dropped:
            return None
        done = drop_privileges(self.user, self.group)
        self._dropped = True
        return done

    # -- running ----------------------------------------------------------------------
    def run(self) -> int:
        """Start the workers and supervise them until SIGTERM/SIGINT; returns the exit status.

        0 after a graceful shutdown; 1 when workers had to be killed at the
        shutdown deadline or could not start at all.
        """
        if not self.listeners:
            raise RuntimeError("call listen() before run()")
        self.drop_privileges()      # before any fork: no worker ever runs as root
        loop = self._loop = Loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.shutdown)
        loop.add_signal_handler(signal.SIGCHLD, self._reap)
        log.info("master pid %d: starting %d workers (%s)", os.getpid(), self.count,
                 "one socket shared by the workers" if self._sockets.all_shared else "SO_REUSEPORT")
        self._slots = [_Slot(index) for index in range(1, self.count + 1)]
        self._hub = _Hub(self._slots, loop)
        try:
            for slot in self._slots:
                self._spawn(slot)
            loop.call_every(1.0, self._reap)  # in case a SIGCHLD was merged or missed
            loop.run()
        finally:
            for slot in self._slots:
                if slot.channel is not None:
                    slot.channel.close()
                if slot.respawn is not None:
                    slot.respawn.cancel()
            self._sockets.close()
            loop.close()
            self._loop = None
        log.info("master pid %d: stopped", os.getpid())
        return self._exit_status

    def _spawn(self, slot: _Slot) -> None:
        slot.respawn = None
        if self._stopping:
            return
        assert self._loop is not None
        master_end, worker_end = socket.socketpair()
        blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD}
        # No signal may run the master's handlers in the child between fork
        # and the reset below.
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            master_end.close()
            worker_end.close()
            log.error("cannot fork worker %d: %s", slot.index, exc)
            self._schedule_respawn(slot, young=True)
            return
        if pid == 0:  # the worker; never returns
            status = 1
            try:
                master_end.close()
                self._forget_master_state()
                signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
                status = self._worker_main(slot.index, worker_end)
            except KeyboardInterrupt:
                status = 0
            except BaseException:
                log.exception("worker %d (pid %d) failed", slot.index, os.getpid())
            finally:
                # os._exit skips the parent's atexit handlers (they are not the
                # worker's to run) and buffered output: flush what is ours.
                for stream in [handler for handler in logging.getLogger().handlers] + [sys.stdout, sys.stderr]:
                    try:
                        stream.flush()
                    except Exception:
                        pass
                os._exit(status)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        worker_end.close()
        slot.pid = pid
        slot.started = time.monotonic()
        slot.ready = False
        slot.topics = set()
        slot.channel = Channel(self._loop, master_end, lambda kind, topic, payload: self._on_frame(
            slot, kind, topic, payload), lambda: self._channel_closed(slot),
            "the channel to worker %d (pid %d)" % (slot.index, pid), self.channel_buffer, self.max_frame)
        log.info("worker %d started: pid %d", slot.index, pid)

    def _forget_master_state(self) -> None:
        """In a new worker: drop what belongs to the master (loop, signals, other channels)."""
        if self._loop is not None:
            self._loop.close_after_fork()
            self._loop = None
        for other in self._slots:
            if other.channel is not None:
                other.channel.close_after_fork()
                other.channel = None
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        renew_node_id()
        stats.reset()  # count this worker's events only

    def _worker_main(self, index: int, channel_sock: socket.socket) -> int:
        loop = Loop()
        worker = Worker(index, loop, channel_sock, max_buffer=self.channel_buffer, max_frame=self.max_frame)
        try:
            component = self.factory(worker)
            if log.isEnabledFor(logging.DEBUG):
                component = ConnectionLog(component, worker)
            server = self._sockets.serve(component, loop, self.server_options)
        except Exception as exc:
            log.error("worker %d (pid %d) could not start: %s", index, worker.pid, exc,
                      exc_info=not isinstance(exc, OSError))
            worker.run_stop_callbacks()
            worker.close()
            return EXIT_BOOT_FAILED
        worker.server = server
        worker.announce_ready()
        try:
            server.run()
        finally:
            server.close()
            worker.run_stop_callbacks()
            worker.close()
            loop.close()
        return 0

    # -- relaying ------------------------------------------------------------------------
    def _on_frame(self, slot: _Slot, kind: int, topic: str, payload: bytes) -> None:
        if kind == READY:
            slot.ready = True
            self._any_ready = True
            log.info("worker %d (pid %d) serving", slot.index, slot.pid)
            if self._on_ready is not None and all(other.ready for other in self._slots):
                callback, self._on_ready = self._on_ready, None
                callback()
        else:
            self._hub.frame(slot, kind, topic, payload)

    def _channel_closed(self, slot: _Slot) -> None:
        # The worker is ending (or broke the channel): its exit is reaped on
        # SIGCHLD; look once more soon in case that signal came first.
        slot.channel = None
        slot.topics = set()
        self._hub.mailbox.slot_gone(slot)
        if self._loop is not None:
            self._loop.call_soon(self._reap)

    # -- supervision ---------------------------------------------------------------------
    def _reap(self) -> None:
        for slot in self._slots:
            if not slot.pid:
                continue
            try:
                pid, status = os.waitpid(slot.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else: the status is lost
                pid, status = slot.pid, -1
            if pid == 0:
                continue
            self._worker_exited(slot, status)
        if self._stopping and not any(slot.pid for slot in self._slots):
            if self._kill_timer is not None:
                self._kill_timer.cancel()
            assert self._loop is not None
            self._loop.stop()

    def _worker_exited(self, slot: _Slot, status: int) -> None:
        lived = time.monotonic() - slot.started
        description = _describe_status(status) if status >= 0 else "ended (status unknown)"
        pid, slot.pid = slot.pid, 0
        if slot.channel is not None:
            slot.channel.close()
        self._hub.to_others(slot, encode_channel_frame(METRICS, str(slot.index)))  # its figures are gone with it
        exit_code = os.WEXITSTATUS(status) if status >= 0 and os.WIFEXITED(status) else None
        if self._stopping:
            if exit_code == 0:
                log.info("worker %d (pid %d) stopped", slot.index, pid)
            else:
                log.warning("worker %d (pid %d) %s while stopping", slot.index, pid, description)
            return
        if exit_code == EXIT_BOOT_FAILED and not self._any_ready:
            log.error("worker %d (pid %d) could not start and no worker ever did: stopping", slot.index, pid)
            self._exit_status = 1
            self.shutdown()
            return
        _respawn_log.log(logging.ERROR, ("died", slot.index), "worker %d (pid %d) %s after %.1f s; replacing it",
                         slot.index, pid, description, lived)
        self._schedule_respawn(slot, young=lived < MIN_UPTIME)

    def _schedule_respawn(self, slot: _Slot, young: bool) -> None:
        assert self._loop is not None
        if not young:
            slot.failures = 0
            self._loop.call_soon(self._spawn, slot)
            return
        slot.failures += 1
        delay = min(RESPAWN_BACKOFF * 2 ** (slot.failures - 1), RESPAWN_BACKOFF_MAX)
        log.warning("worker %d died young %d time(s) in a row: next start in %.1f s",
                    slot.index, slot.failures, delay)
        slot.respawn = self._loop.call_later(delay, self._spawn, slot)

    def shutdown(self) -> None:
        """Stop every worker gracefully, then return from :meth:`run` (also on SIGTERM/SIGINT)."""
        if self._stopping or self._loop is None:
            return
        self._stopping = True
        alive = [slot for slot in self._slots if slot.pid]
        log.info("master pid %d: stopping %d worker(s)", os.getpid(), len(alive))
        for slot in self._slots:
            if slot.respawn is not None:
                slot.respawn.cancel()
                slot.respawn = None
        for slot in alive:
            self._signal(slot, signal.SIGTERM)
        # Each worker stops within its own shutdown timeout; one still there a
        # second later is stuck.
        self._kill_timer = self._loop.call_later(self.shutdown_timeout + 1.0, self._kill_stragglers)
        self._reap()

    def _kill_stragglers(self) -> None:
        for slot in self._slots:
            if slot.pid:
                log.error("worker %d (pid %d) did not stop in time: killing it", slot.index, slot.pid)
                self._exit_status = 1
                self._signal(slot, signal.SIGKILL)
        assert self._loop is not None
        self._loop.call_later(0.2, self._reap)

    @staticmethod
    def _signal(slot: _Slot, signum: int) -> None:
        try:
            os.kill(slot.pid, signum)
        except ProcessLookupError:
            pass
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise

    def close(self) -> None:
        """Release the bound sockets without running (e.g. after a failed :meth:`listen`)."""
        self._sockets.close()

    @property
    def pids(self) -> List[int]:
        """The pids of the running workers, by slot (0 for an empty slot)."""
        return [slot.pid for slot in self._slots]


def run_workers(factory: Callable[[Worker], Any], address: str = "0.0.0.0", port: int = 80,
                workers: int = 2, *, ssl_context: Any = None, user: Optional[str] = None,
                group: Optional[str] = None, **kwargs: Any) -> int:
    """Serve ``factory(worker)`` from ``workers`` processes on one port until SIGTERM/SIGINT.

    The one-call form of :class:`Workers` (whose keywords it takes); logs the
    URL once and returns the master's exit status.  A port that cannot be
    bound (busy, or privileged) is logged in one line naming the address and
    ends the program with ``SystemExit(1)``, as :func:`~ratchet_sel.io.listener.exit_on_startup_error`.
    ``user`` (and ``group``): bind as root, then serve as this user (see
    :class:`Workers`); an unknown name ends the program with ``SystemExit(2)``,
    a switch that fails with ``SystemExit(1)``, each after one logged line.
    Under systemd socket activation (``LISTEN_FDS``/``LISTEN_PID`` naming this
    process, see :mod:`~ratchet_sel.io.activation`) the workers serve the
    inherited sockets (each with ``ssl_context``) and ``address``/``port`` are
    not used.
    """
    master = Workers(factory, workers, user=user, group=group, **kwargs)
    try:
        inherited = inherited_listeners()
    except ActivationError as exc:
        logging.getLogger("ratchet_sel").error("%s", exc)
        raise SystemExit(1) from None
    if inherited:   # systemd socket activation: serve its sockets, bind nothing
        log.info("serving %d socket(s) from systemd (LISTEN_FDS)", len(inherited))
        host, bound_port = [master.adopt(item.socket, ssl_context) for item in inherited][0]
    else:
        with exit_on_startup_error():
            host, bound_port = master.listen(address, port, ssl_context=ssl_context)
    try:
        dropped = master.drop_privileges()
    except PrivilegeError as exc:
        master.close()
        logging.getLogger("ratchet_sel").error("%s", exc)
        raise SystemExit(exc.status) from None
    if dropped:
        log.info("running as %s", dropped)
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    log.info("listening on %s://%s:%d/ with %d workers", "wss" if ssl_context is not None else "ws",
             "[%s]" % shown if ":" in shown else shown, bound_port, workers)
    return master.run()
