"""The transport: one non-blocking stream socket on the loop, plain or TLS.

Every socket on the loop goes through :class:`Stream`: the server's accepted
connections (:class:`Connection`), the loop client, the Redis link and the
worker channel.  A stream reads what the kernel has and hands the bytes to
its ``on_data(stream, data)`` callable; it writes at the end of the loop
iteration (or at once for large writes) and buffers only what the kernel did
not take, watching for writability only while bytes are pending.  It knows
nothing of HTTP or WebSocket.

Its life is one :class:`StreamState`: ``CONNECTING`` (name resolution and TCP
connect, for :meth:`Stream.connect`), ``HANDSHAKING`` (TLS), ``OPEN``,
``CLOSING`` (flushing after :meth:`Stream.close`), ``LINGERING`` (our FIN is
out; reading and discarding until the peer's FIN), ``CLOSED``.  It reports to
its owner (a :class:`StreamOwner`) through public methods, each at most once
per stream: opened or failed, then ended, then released.
"""

from __future__ import annotations

import enum
import errno
import ipaddress
import itertools
import logging
import os
import socket
import struct
import sys
import threading
import weakref
from typing import Any, Callable, Iterable, List, Optional, Tuple

from ..ops.stats import STATS

try:  # a Python built without OpenSSL still serves plain TCP
    import ssl
except ImportError:  # pragma: no cover
    ssl = None  # type: ignore[assignment]

__all__ = ["Waker", "send_small_writes_at_once", "Stream", "StreamOwner", "StreamState", "Connection", "TlsConnection", "kernel_unsent_bytes",
           "address_family", "read_buffer", "RECV_SIZE", "DIRECT_WRITE_SIZE", "WOULD_BLOCK"]

log = logging.getLogger(__name__)


#: Bytes asked of the kernel per read.  Reads land in one buffer of this size
#: per loop, reused: a fresh 256 KiB object per read would be above glibc's
#: mmap threshold, and each read could then cost a mapping made, shrunk and
#: freed (scripts/profile_calls.py syscalls counts them).
RECV_SIZE = 256 * 1024
#: Writes at least this large are tried at once instead of waiting for the
#: end of the loop iteration.
DIRECT_WRITE_SIZE = 64 * 1024

#: "Try again later" from a plain or a TLS socket.
WOULD_BLOCK: tuple = (BlockingIOError, InterruptedError)
if ssl is not None:
    WOULD_BLOCK += (ssl.SSLWantReadError, ssl.SSLWantWriteError)

_resource_ids = itertools.count(1)

# Linux's SIOCOUTQ (the same number as TIOCOUTQ): bytes of a TCP socket not yet
# sent or not yet acknowledged by the peer.
_SIOCOUTQ = 0x5411

# One read buffer per loop: streams on one loop run on one thread, one at a time.
_read_views: "weakref.WeakKeyDictionary[Any, memoryview]" = weakref.WeakKeyDictionary()


def send_small_writes_at_once(sock: Any) -> None:
    """Turn off Nagle's algorithm on a TCP socket (``TCP_NODELAY``): a small frame must not wait for an ACK."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def kernel_unsent_bytes(sock: Any) -> Optional[int]:
    """Bytes the kernel still holds for ``sock`` (unsent or unacknowledged), or ``None`` where unknown."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import fcntl
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))[0])
    except (ImportError, OSError, ValueError):
        return None


def address_family(host: str) -> Optional[int]:
    """``AF_INET`` or ``AF_INET6`` for an IP address literal; ``None`` for a host name (or ``""``)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def read_buffer(loop: Any) -> memoryview:
    """The buffer every stream of ``loop`` reads into (made on first use; one per loop, never shared across loops)."""
    view = _read_views.get(loop)
    if view is None:
        view = _read_views[loop] = memoryview(bytearray(RECV_SIZE))
    return view


def describe_address(address: Any) -> str:
    """``host:port`` of a socket address for logs, with an IPv6 host in brackets."""
    host, port = address[0], address[1]
    return "[%s]:%s" % (host, port) if ":" in str(host) else "%s:%s" % (host, port)


class StreamState(enum.Enum):
    """Where a :class:`Stream` is in its life (compare with ``is``)."""

    CONNECTING = "connecting"    #: resolving the host name, connecting TCP
    HANDSHAKING = "handshaking"  #: the TLS handshake runs
    OPEN = "open"                #: reading and writing
    CLOSING = "closing"          #: close() was called: flushing what was written
    LINGERING = "lingering"      #: our FIN is out: reading and discarding until the peer's FIN
    CLOSED = "closed"            #: the socket is closed


# Module-level names for the hot path (one global load instead of two lookups).
_CONNECTING = StreamState.CONNECTING
_HANDSHAKING = StreamState.HANDSHAKING
_OPEN = StreamState.OPEN
_CLOSING = StreamState.CLOSING
_LINGERING = StreamState.LINGERING
_CLOSED = StreamState.CLOSED


class StreamOwner:
    """What a :class:`Stream` tells the object that owns it; override what you need.

    Each report comes at most once per stream, in this order: ``stream_opened``
    or ``stream_failed``, then ``stream_ended`` (only after ``stream_opened``),
    then ``stream_released``.  ``stream_error`` may come any time a callback
    raised.
    """

    def stream_opened(self, stream: Any) -> None:
        """The stream is connected (and its TLS handshake done); it reads from now on."""

    def stream_failed(self, stream: Any, exc: BaseException) -> None:
        """The stream never opened: resolution, connect, TLS handshake failed or timed out, or it was aborted."""

    def stream_ended(self, stream: Any, exc: Optional[BaseException]) -> None:
        """The open stream no longer accepts writes: closed by us, by the peer (``exc`` None) or failed (``exc``)."""

    def stream_released(self, stream: Any) -> None:
        """The socket is closed; the last report of the stream."""

    def stream_error(self, stream: Any, exc: Exception) -> None:
        """``on_data``, ``on_drain`` or a read-directly callback raised ``exc``; the stream goes on."""
        log.error("%r: unhandled %s: %s", stream, type(exc).__name__, exc,
                  exc_info=(type(exc), exc, exc.__traceback__))


class _StreamCore:
    """The state, the opening (connect, TLS handshake) and the ending of a :class:`Stream`.

    A Stream is built in three layers, each a screenful: this one, then
    writing (:class:`_StreamWriter`), then reading (:class:`Stream`).  The
    methods of a later layer that this one calls are declared below.
    """


    __slots__ = (
        "__dict__", "__weakref__", "resource_id", "remote_address", "remote_port", "loop", "is_secure",
        "on_drain", "low_water", "_sock", "_owner", "_on_data", "_state", "_reading", "_wbuf", "_wview",
        "_drain_armed", "_corked", "_writing", "_read_view", "_direct_sink", "_timer", "_close_timeout",
        "_opened", "_end_reported", "_connector",
    )

    # Defined by the later layers (see the class docstring).
    resume_reading: Callable[[], None]
    _want_write: Callable[[], None]

    def __init__(self, loop: Any, sock: Any, owner: StreamOwner, on_data: Callable[["Stream", bytes], Any], *,
                 peer: Any = None, close_timeout: float = 5.0, connect_options: Any = None) -> None:
        self.loop = loop
        self.resource_id = next(_resource_ids)
        host = peer[0] if isinstance(peer, tuple) else str(peer or "")
        # A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; show them as IPv4.
        self.remote_address = host[7:] if host.startswith("::ffff:") and "." in host else host
        self.remote_port = peer[1] if isinstance(peer, tuple) and len(peer) > 1 else 0
        #: True for a stream speaking TLS.
        self.is_secure = False
        #: Called with no argument when the write buffer, having grown past
        #: ``low_water`` bytes, has drained down to it.
        self.on_drain: Optional[Callable[[], Any]] = None
        #: See :attr:`on_drain`.
        self.low_water = 0
        self._sock: Any = None
        self._owner = owner
        self._on_data = on_data
        self._state = _CONNECTING
        self._reading = False
        self._wbuf = bytearray()
        # The unsent rest of one large immutable write (bytes), kept as a view
        # rather than copied; it goes out before _wbuf.
        self._wview: Optional[memoryview] = None
        self._drain_armed = False
        self._corked = False    # a flush is scheduled for the end of this loop iteration
        self._writing = False   # EVENT_WRITE is registered
        self._read_view = read_buffer(loop)
        self._direct_sink: Any = None
        self._timer: Any = None  # connect, TLS handshake or linger: one at a time
        self._close_timeout = close_timeout
        self._opened = False
        self._end_reported = False
        self._connector: Optional[_Connector] = None
        if sock is not None:
            self._adopt(sock)
            if not self.is_secure:
                self._state = _OPEN
                self._opened = True
        elif connect_options is not None:
            self._start_connect(*connect_options)

    def _adopt(self, sock: Any) -> None:
        # The one place a socket is tuned for the loop.
        sock.setblocking(False)
        send_small_writes_at_once(sock)
        self._sock = sock
        self.is_secure = ssl is not None and isinstance(sock, ssl.SSLSocket)
        if self.is_secure:
            self._state = _HANDSHAKING

    @classmethod
    def connect(cls, loop: Any, host: str, port: int, owner: StreamOwner, on_data: Callable[["Stream", bytes], Any],
                *, ssl_context: Any = None, server_hostname: Optional[str] = None, timeout: Optional[float] = None,
                close_timeout: float = 5.0) -> Any:
        """Connect to ``host``:``port``; returns the stream (of this class) at once, in ``CONNECTING``.

        A host name is resolved on a helper thread (``getaddrinfo`` blocks),
        then each address is tried in turn until one accepts.  With
        ``ssl_context`` the TLS handshake follows (``server_hostname``
        defaults to ``host``).  ``timeout`` bounds all of it.  The owner gets
        ``stream_opened`` (reading has started) or ``stream_failed`` with the
        error.  Call it from the loop thread.
        """
        return cls(loop, None, owner, on_data, peer=(host, port), close_timeout=close_timeout,
                   connect_options=(ssl_context, server_hostname or host, timeout))

    def _start_connect(self, ssl_context: Any, server_hostname: str, timeout: Optional[float]) -> None:
        host, port = self.remote_address, self.remote_port
        if timeout is not None:
            self._timer = self.loop.call_later(timeout, self._timed_out,
                                               "no connection to %s within %g s" % (describe_address((host, port)), timeout))

        def connected(sock: socket.socket) -> None:
            self._connector = None
            if ssl_context is None:
                self._adopt(sock)
                self._opened_now()
                return
            try:
                sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=False)
            except (OSError, ValueError) as exc:
                sock.close()
                self._release(exc)
                return
            self._adopt(sock)
            self._handshake_step()

        self._connector = _Connector(self.loop, host, port, connected, self._release)
        self._connector.start()

    def __repr__(self) -> str:
        return "<%s #%d %s:%s>" % (type(self).__name__, self.resource_id, self.remote_address, self.remote_port)

    # -- state ---------------------------------------------------------------------
    @property
    def socket(self) -> Any:
        """The underlying socket, ``None`` while connecting (for options; do not read or write it)."""
        return self._sock

    @property
    def state(self) -> StreamState:
        """Where the stream is in its life."""
        return self._state

    @property
    def closed(self) -> bool:
        """True unless the stream is open (it accepts no writes)."""
        return self._state is not _OPEN

    # -- the TLS handshake -------------------------------------------------------------
    def start_tls(self, timeout: float) -> None:
        """Run the server side of the TLS handshake of an accepted ``ssl.SSLSocket``.

        The owner gets ``stream_opened`` once it succeeded (reading has
        started), or ``stream_failed`` when it failed or took longer than
        ``timeout`` seconds.
        """
        if self._state is _HANDSHAKING:
            self._timer = self.loop.call_later(timeout, self._timed_out,
                                               "TLS handshake not complete within %g s" % timeout)
            self._handshake_step()

    def _handshake_step(self) -> None:
        sock = self._sock
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self.loop.remove_writer(sock)
            self.loop.add_reader(sock, self._handshake_step)
            return
        except ssl.SSLWantWriteError:
            self.loop.remove_reader(sock)
            self.loop.add_writer(sock, self._handshake_step)
            return
        except (OSError, ValueError) as exc:
            self._release(exc)
            return
        self.loop.forget(sock)
        self._opened_now()

    def _timed_out(self, what: str) -> None:
        self._timer = None
        if self._state is _CONNECTING or self._state is _HANDSHAKING:
            self._release(TimeoutError(what))

    def _opened_now(self) -> None:
        # Connected (and TLS done): read, and tell the owner.
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._state = _OPEN
        self._opened = True
        self.resume_reading()
        try:
            self._owner.stream_opened(self)
        except Exception as exc:
            self._owner.stream_error(self, exc)

    # -- ending --------------------------------------------------------------------------------
    def close(self, code: Any = None, reason: str = "") -> None:
        """Close gracefully: flush what was written, send our FIN, linger for the peer's.

        Reading stops; bytes that still arrive are discarded until the peer's
        FIN, or for at most ``close_timeout`` seconds.  A stream not yet open
        is aborted.  ``code`` and ``reason`` are accepted for symmetry with
        WebSocket connections; a raw stream has nowhere to put them.
        """
        if self._state is not _OPEN:
            if self._state is _CONNECTING or self._state is _HANDSHAKING:
                self.abort()
            return
        self._state = _CLOSING
        self._reading = False
        self._direct_sink = None
        self._report_end(None)
        if self._state is not _CLOSING:
            return  # the owner aborted meanwhile
        if self._wbuf or self._wview is not None:
            self.loop.add_reader(self._sock, self._discard_ready)
            self._want_write()
            self._timer = self.loop.call_later(self._close_timeout, self._release, None)
        else:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        # Everything is flushed: send our FIN (after TLS's close_notify) and linger.
        self._state = _LINGERING
        if self.is_secure:
            try:
                self._sock.unwrap()  # sends close_notify; the peer's answer is not awaited
            except (OSError, ValueError):
                pass
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._release(None)
            return
        if self._timer is None:
            self._timer = self.loop.call_later(self._close_timeout, self._release, None)
        self.loop.add_reader(self._sock, self._discard_ready)

    def release_if_delivered(self) -> None:
        """Release a lingering stream now if the peer has acknowledged every byte we sent.

        Lingering for the peer's FIN only protects bytes the peer has not
        acknowledged; once there are none (and nothing unread on our side that
        would turn the close into a RST), waiting adds nothing.  A graceful
        shutdown uses it for peers that never send their FIN.
        """
        if self._state is not _LINGERING or kernel_unsent_bytes(self._sock) != 0:
            return
        try:
            view = self._read_view
            for _ in range(16):
                if not self._sock.recv_into(view):
                    break
            else:
                return  # still sending: leave it to the linger
        except OSError:  # would block included: nothing unread
            pass
        self._release(None)

    def abort(self) -> None:
        """End now: bytes the kernel has not taken are discarded, the socket closed."""
        if self._state is _CLOSED:
            return
        if self._corked and self._wbuf:
            # Sent during this iteration and not yet flushed: a write-through
            # transport would have handed them to the kernel already, so try
            # once (the last chance of a close frame, say).
            try:
                self._sock.send(self._wbuf)
            except OSError:
                pass
        self._release(None)

    def close_after_fork(self) -> None:
        """In a forked child: close the inherited descriptor; no report, no loop touched."""
        self._state = _CLOSED
        self._end_reported = True
        if self._sock is not None:
            self._sock.close()

    def _report_end(self, exc: Optional[BaseException]) -> None:
        # The one place the owner hears that the stream ends (once): ended for
        # a stream that opened, failed for one that never did.
        if self._end_reported:
            return
        self._end_reported = True
        try:
            if self._opened:
                self._owner.stream_ended(self, exc)
            else:
                self._owner.stream_failed(self, exc or ConnectionAbortedError("aborted before it opened"))
        except Exception:
            log.exception("%r: the owner's end report raised", self)

    def _release(self, exc: Optional[BaseException] = None) -> None:
        # Every end goes through here: report it (if not yet), close the socket,
        # report the release.
        if self._state is _CLOSED:
            return
        if self._state is not _LINGERING:
            self._state = _CLOSING
        self._reading = False
        self._report_end(exc)
        if self._state is _CLOSED:
            return  # the owner aborted from its report
        self._state = _CLOSED
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._connector is not None:
            self._connector.cancel()
            self._connector = None
        self._writing = False
        self._wbuf = bytearray()
        self._wview = None
        self._direct_sink = None
        sock = self._sock
        if sock is not None:
            self.loop.forget(sock)
            try:
                sock.close()
            except OSError:
                pass
        try:
            self._owner.stream_released(self)
        except Exception:
            log.exception("%r: the owner's release report raised", self)


    def _read_failed(self, exc: OSError) -> None:
        log.debug("%r: read failed: %s", self, exc)
        self._release(exc)

    def _peer_finished(self) -> None:
        log.debug("%r: peer closed", self)
        if self._wbuf or self._wview is not None:
            self.close()  # the peer may still read what we owe it
        else:
            self._release(None)

    def _discard_ready(self) -> None:
        # While closing: read and discard, so that a peer still sending never
        # blocks our flush, and unread bytes in our receive buffer never make
        # the kernel answer our close with a RST that destroys what the peer
        # has not read yet.
        view = self._read_view
        try:
            while True:
                if not self._sock.recv_into(view):
                    break
        except WOULD_BLOCK:
            return
        except OSError:
            self._release(None)
            return
        if self._state is _LINGERING:
            self._release(None)  # the peer's FIN after ours: done
        else:
            self.loop.remove_reader(self._sock)  # peer done sending; keep flushing


class _StreamWriter(_StreamCore):
    """The write half of a :class:`Stream`: corked sends, write-through, the unsent rest, drain."""

    __slots__ = ()

    # -- writing -----------------------------------------------------------------------------
    @property
    def buffered_amount(self) -> int:
        """Bytes accepted by :meth:`send` that the kernel has not taken yet."""
        view = self._wview
        return len(self._wbuf) + (len(view) if view is not None else 0)

    def send(self, data: Any) -> None:
        """Write ``data`` (bytes-like); it goes out at the end of this loop iteration.

        Small writes made during one iteration (every reply to the messages of
        one read, say) leave in one system call; writes of 64 KiB or more are
        tried at once.  Whatever the kernel does not take is buffered and
        written as the socket drains.  Dropped unless the stream is open.
        """
        if self._state is not _OPEN:
            return
        wbuf = self._wbuf
        if len(data) < DIRECT_WRITE_SIZE or wbuf or self._wview is not None:
            wbuf += data
            if not (self._corked or self._writing):
                self._corked = True
                self.loop.flush_soon(self._write_ready)
            if len(wbuf) > self.low_water or (self._wview is not None and self.buffered_amount > self.low_water):
                self._drain_armed = True
            return
        self.try_write(data)  # nothing pending, open: it writes now

    write = send

    def try_write(self, data: Any) -> bool:
        """Hand ``data`` to the kernel at once if nothing is pending; returns whether it did.

        For a burst that is already one write per connection (a broadcast),
        corking would add a buffer copy and a callback per receiver for no
        saved system call.  What the kernel does not take is buffered as by
        :meth:`send`.  When bytes are already pending (or the stream is not
        open) nothing is written and False is returned: the caller applies
        its own policy for a peer that is behind, then calls :meth:`send`.
        """
        return not Stream.write_each((self,), data)

    @staticmethod
    def write_each(streams: Iterable["_StreamWriter"], data: Any) -> List["_StreamWriter"]:
        """:meth:`try_write` of the same ``data`` on each stream; returns the streams that did not take it.

        A broadcast writes one frame to thousands of streams: one call for
        all of them saves a Python call per receiver, which at 10,000
        receivers is a tenth of the whole cost.  The returned streams (bytes
        already pending, or not open) got nothing; the caller decides.
        """
        behind = []
        size = len(data)
        total = 0
        for stream in streams:
            if stream._wbuf or stream._wview is not None or stream._state is not _OPEN:
                behind.append(stream)
                continue
            # (the write itself is inline: this loop runs once per receiver)
            try:
                sent = stream._sock.send(data)
            except WOULD_BLOCK:
                sent = 0
            except OSError as exc:
                stream._write_failed(exc)
                continue
            total += sent
            if sent < size:
                stream._buffer_rest(data, sent)
        STATS.bytes_sent += total
        return behind

    def writev(self, parts: Any) -> None:
        """Write several bytes-like ``parts`` in order, as one write, without joining them first.

        Large parts (a frame header and its payload) go to the kernel together
        in one ``sendmsg()`` on plain sockets; TLS sockets, which have no
        ``sendmsg()``, write them one by one through :meth:`send`.
        """
        if self._state is not _OPEN:
            return
        total = sum(len(part) for part in parts)
        if self._wbuf or self._wview is not None or total < DIRECT_WRITE_SIZE or self.is_secure:
            for part in parts:
                self.send(part)
            return
        try:
            sent = self._sock.sendmsg(parts)
        except WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            self._write_failed(exc)
            return
        STATS.bytes_sent += sent
        if sent < total:
            for part in parts:  # skip what went out; the first part left may be kept as a view
                size = len(part)
                if sent >= size:
                    sent -= size
                    continue
                self._buffer_rest(part, sent)
                sent = 0

    def flush(self) -> None:
        """Write what is buffered now rather than at the end of the loop iteration."""
        if self._wbuf or self._wview is not None:
            self._write_ready()

    def _buffer_rest(self, data: Any, sent: int) -> None:
        # What the kernel did not take of ``data`` (after ``sent`` bytes): keep
        # it, and write it as the socket drains.  An immutable ``bytes`` that
        # is the first thing pending is kept as a view, without a copy; a
        # bytearray (which the application may change or resize) is copied.
        if data.__class__ is bytes and self._wview is None and not self._wbuf:
            self._wview = memoryview(data)[sent:]
        else:
            self._wbuf += memoryview(data)[sent:]
        self._want_write()
        if self.buffered_amount > self.low_water:
            self._drain_armed = True

    def _want_write(self) -> None:
        if not self._writing:
            self._writing = True
            self.loop.add_writer(self._sock, self._write_ready)

    def _write_ready(self) -> None:
        # Both the end-of-iteration flush of what send() corked and the
        # EVENT_WRITE callback: one function, one call per flush.  (Kept whole:
        # it is on the hot path of every message sent.)
        self._corked = False
        wbuf = self._wbuf
        view = self._wview
        state = self._state
        if (not wbuf and view is None) or (state is not _OPEN and state is not _CLOSING):
            return
        try:
            if view is None:
                sent = self._sock.send(wbuf)
            elif wbuf and not self.is_secure:
                sent = self._sock.sendmsg((view, wbuf))
            else:
                sent = self._sock.send(view)
        except WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            log.debug("%r: write failed: %s", self, exc)
            self._release(exc)
            return
        STATS.bytes_sent += sent
        if view is not None:
            if sent < len(view):
                self._wview = view[sent:]
                sent = 0
            else:
                sent -= len(view)
                self._wview = None
        if sent:
            del wbuf[:sent]
        if wbuf or self._wview is not None:
            if not self._writing:
                self._want_write()
            if self.buffered_amount > self.low_water:
                self._drain_armed = True  # the kernel refused bytes: a backlog, worth telling about its end
            elif self._drain_armed and state is _OPEN:
                self._drain_armed = False
                if self.on_drain is not None:
                    self._drained()
            return
        if self._writing:
            self._writing = False
            self.loop.remove_writer(self._sock)
        if state is _CLOSING:
            self._shutdown_write()
        elif self._drain_armed:
            # (the test is inline: _drain_armed is set by most sends, on_drain rarely)
            self._drain_armed = False
            if self.on_drain is not None:
                self._drained()

    def _drained(self) -> None:
        # Down to low_water after having been above it: tell the owner.
        try:
            self.on_drain()  # type: ignore[misc]
        except Exception as exc:
            self._owner.stream_error(self, exc)

    def _write_failed(self, exc: OSError) -> None:
        # send() is called from application code, often inside a loop over
        # connections: end on the next iteration, so that the owner never hears
        # of it re-entrantly inside that loop.
        log.debug("%r: write failed: %s", self, exc)
        if self._state is _OPEN:
            self._state = _CLOSING
            self._wbuf = bytearray()
            self._wview = None
            self._writing = self._reading = False
            self.loop.forget(self._sock)
            self.loop.call_soon(self._release, exc)


class Stream(_StreamWriter):
    """One stream socket on a loop, plain or TLS, the same object for its whole life.

    ``Stream(loop, sock, owner, on_data)`` adopts a connected socket (an
    accepted one, a socketpair end; an ``ssl.SSLSocket`` not yet handshaken
    starts in ``HANDSHAKING``: call :meth:`start_tls`); :meth:`connect` makes
    an outbound one.  Bytes read go to ``on_data(stream, data)`` while reading
    is on (:meth:`resume_reading`); the end and errors go to ``owner``, a
    :class:`StreamOwner`.  ``peer`` is the remote address tuple;
    ``close_timeout`` bounds a graceful :meth:`close`; ``connect_options``
    is :meth:`connect`'s business.  User attributes may be added freely.
    """

    __slots__ = ()

    # -- reading ---------------------------------------------------------------------------
    def pause_reading(self) -> None:
        """Stop reading from the socket until :meth:`resume_reading`."""
        if self._reading and self._state is _OPEN:
            self._reading = False
            self.loop.remove_reader(self._sock)

    def resume_reading(self) -> None:
        """Read from the socket (again): bytes go to ``on_data`` from the next loop iteration."""
        if not self._reading and self._state is _OPEN:
            self._reading = True
            if self.is_secure:
                self.loop.add_reader(self._sock, self._read_ready_tls)
                if self._sock.pending():  # decrypted bytes the selector will not announce
                    self.loop.call_soon(self._read_ready_tls)
            else:
                self.loop.add_reader(self._sock, self._read_ready)

    def read_directly(self, get_buffer: Callable[[], Any], buffer_filled: Callable[[int], Any]) -> None:
        """Read the next bytes straight into buffers that ``get_buffer()`` provides, skipping ``on_data``.

        For as long as ``get_buffer()`` returns a writable memoryview, each
        read goes into it and is reported with ``buffer_filled(size)`` (the
        view released first); once it returns None, reading goes back to
        ``on_data``.  The WebSocket layer uses this for the payload of a large
        frame: the bytes land where the message is gathered, instead of being
        copied there from a ``bytes``.  Plain and TLS streams alike (over TLS
        each read yields the decrypted bytes of at most one record).  Ignored
        once the stream is not open.
        """
        if self._state is _OPEN:
            self._direct_sink = (get_buffer, buffer_filled)

    def _read_into_sink(self) -> bool:
        # One read for read_directly(); False when the sink wants no more.
        get_buffer, buffer_filled = self._direct_sink
        target = get_buffer()
        if target is None:
            self._direct_sink = None
            return False
        try:
            size = self._sock.recv_into(target)
        except WOULD_BLOCK:
            return True
        except OSError as exc:
            self._read_failed(exc)
            return True
        finally:
            target.release()
        if not size:
            self._peer_finished()
            return True
        STATS.bytes_received += size
        try:
            buffer_filled(size)
        except Exception as exc:
            self._owner.stream_error(self, exc)
        return True

    def _read_ready(self) -> None:
        # The hot path of a plain stream: one recv_into the loop's buffer, one copy, one call.
        if self._direct_sink is not None and self._read_into_sink():
            return
        view = self._read_view
        try:
            size = self._sock.recv_into(view)
        except WOULD_BLOCK:
            return
        except OSError as exc:
            self._read_failed(exc)
            return
        if not size:
            self._peer_finished()
            return
        STATS.bytes_received += size
        try:
            # The one copy: the owner gets bytes it may keep.
            self._on_data(self, view[:size].tobytes())
        except Exception as exc:
            self._owner.stream_error(self, exc)

    def _read_ready_tls(self) -> None:
        # One recv() yields at most one TLS record, and decrypted bytes may wait
        # inside the TLS object where the selector cannot see them: read until
        # the socket would block, or until the buffer is full and the TLS
        # object holds nothing more (the kernel's bytes wake the selector).
        sock = self._sock
        while self._reading:
            if self._direct_sink is not None and self._read_into_sink():
                if not sock.pending():
                    return
                continue
            view = self._read_view
            size = 0
            end: Any = None
            while size < RECV_SIZE:
                try:
                    got = sock.recv_into(view[size:])
                except WOULD_BLOCK:
                    break
                except OSError as exc:
                    end = exc
                    break
                if not got:
                    end = True
                    break
                size += got
            if size:
                STATS.bytes_received += size
                try:
                    self._on_data(self, view[:size].tobytes())
                except Exception as exc:
                    self._owner.stream_error(self, exc)
            if end is not None:
                if self._state is _OPEN:
                    if end is True:
                        self._peer_finished()
                    else:
                        self._read_failed(end)
                return
            if size < RECV_SIZE or not sock.pending():
                return


class _Connector:
    """Finds a connected TCP socket to ``host``:``port`` for :meth:`Stream.connect`.

    A host name is resolved on a helper thread and the addresses handed back
    to the loop thread; each address is tried in turn ("localhost" may be
    ::1, refusing, then 127.0.0.1).  Ends with ``done(sock)`` or
    ``failed(exc)``, unless cancelled first.
    """

    def __init__(self, loop: Any, host: str, port: int, done: Callable[[socket.socket], Any],
                 failed: Callable[[BaseException], Any]) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.done = done
        self.failed = failed
        self.cancelled = False
        self.sock: Optional[socket.socket] = None
        self.addresses: List[Tuple[int, Any]] = []
        self.current: Any = (host, port)

    def start(self) -> None:
        """Resolve (off the loop thread for a name), then connect."""
        family = address_family(self.host)
        if family is not None:
            self.try_addresses([(family, (self.host, self.port))])
        else:
            threading.Thread(target=self.resolve, name="ratchet_sel-resolve", daemon=True).start()

    def resolve(self) -> None:
        """On the helper thread: ``getaddrinfo``, the answer handed to the loop thread."""
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            error = OSError(exc.errno, "cannot resolve %s: %s" % (self.host, exc.strerror or exc))
            self.loop.call_soon_threadsafe(self.give_up, error)
            return
        self.loop.call_soon_threadsafe(self.try_addresses, [(info[0], info[4]) for info in infos])

    def try_addresses(self, addresses: List[Tuple[int, Any]]) -> None:
        """Connect to the first of ``addresses`` that accepts."""
        if not self.cancelled:
            self.addresses = list(addresses)
            self.try_next(OSError("no address for %s" % self.host))

    def try_next(self, error: BaseException) -> None:
        """Start connecting to the next address; ``error`` is the last one's failure."""
        self.drop_socket()
        while self.addresses:
            family, address = self.addresses.pop(0)
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as exc:
                error = exc
                continue
            sock.setblocking(False)
            code = sock.connect_ex(address)
            if code in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                self.sock = sock
                self.current = address
                self.loop.add_writer(sock, self.writable)
                return
            sock.close()
            error = self.error(code, address)
        self.give_up(error)

    def writable(self) -> None:
        """The connect finished, one way or the other."""
        sock = self.sock
        assert sock is not None
        self.loop.remove_writer(sock)
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.try_next(self.error(code, self.current))
            return
        self.sock = None
        self.cancelled = True
        self.done(sock)

    @staticmethod
    def error(code: int, address: Any) -> OSError:
        """The ``OSError`` (subclass by errno) of a failed connect to ``address``."""
        return OSError(code, "connecting to %s failed: %s (%s)"
                       % (describe_address(address), os.strerror(code), errno.errorcode.get(code, code)))

    def give_up(self, exc: BaseException) -> None:
        """No address accepted: report ``exc``."""
        if not self.cancelled:
            self.cancelled = True
            self.drop_socket()
            self.failed(exc)

    def cancel(self) -> None:
        """Stop: close the socket being connected; nothing more is reported."""
        self.cancelled = True
        self.drop_socket()

    def drop_socket(self) -> None:
        """Close the socket of the current attempt, if any."""
        sock, self.sock = self.sock, None
        if sock is not None:
            self.loop.forget(sock)
            sock.close()


class Connection(Stream):
    """One accepted TCP connection of an :class:`~ratchet_sel.io.IoServer`, plain or TLS.

    It carries ``resource_id`` (unique in the process), ``remote_address``
    (host string), ``remote_port`` and ``server``, and accepts user
    attributes.  The server's component gets ``on_message(conn, bytes)``
    straight from the read.  ``send`` writes through to the socket; ``close``
    flushes then closes; ``abort`` drops at once.  A TLS connection is shown
    to the component only once its handshake succeeded.
    """

    __slots__ = ()

    def __init__(self, server: Any, sock: Any, addr: Any) -> None:
        # The component's on_message is bound once per server, not once per connection.
        super().__init__(server.loop, sock, server, server.data_handler(), peer=addr,
                         close_timeout=server.close_timeout)

    @property
    def server(self) -> Any:
        """The :class:`~ratchet_sel.io.IoServer` that accepted this connection (its owner)."""
        return self._owner


#: The name TLS connections had when they were a class of their own.
TlsConnection = Connection


class Waker:
    """The loop's wake-up pair: a byte written to it makes the loop's selector return.

    Other threads (:meth:`Loop.call_soon_threadsafe`) and signal handlers
    (through ``signal.set_wakeup_fd`` on :attr:`write_fd`) write a byte; the
    loop watches :attr:`read_fd` and drains it.  A socketpair rather than
    ``os.pipe()``: it is the one kind of descriptor every selector takes on
    every platform (Windows' ``select()`` takes sockets only, and its
    ``set_wakeup_fd`` wants a socket).  It lives here, beside the streams, so
    that every read and write of a socket is in this module.
    """

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        #: The descriptor the loop watches for reading.
        self.read_fd = self._reader.fileno()
        #: The descriptor to write to (and to give ``signal.set_wakeup_fd``).
        self.write_fd = self._writer.fileno()

    def wake(self) -> None:
        """Write one byte (from any thread); a full pair already means the loop will wake."""
        try:
            self._writer.send(b"\0")
        except OSError:  # full (BlockingIOError), or closed during shutdown
            pass

    def drain(self) -> None:
        """Read every byte written so far (on the loop thread)."""
        try:
            while self._reader.recv(4096):
                pass
        except OSError:  # nothing more to read (BlockingIOError), or closed
            pass

    def close(self) -> None:
        """Close both ends."""
        self._reader.close()
        self._writer.close()
