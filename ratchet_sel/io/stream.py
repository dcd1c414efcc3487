"""The transport: one non-blocking stream socket on the loop, plain or TLS.

It reads what the kernel has and hands the bytes on; it writes straight
through and buffers only what the kernel did not take, watching for
writability only while bytes are pending.  It knows nothing of HTTP or
WebSocket.
"""

from __future__ import annotations

import itertools
import logging
import socket
import struct
import sys
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..ops.stats import STATS

if TYPE_CHECKING:
    from .listener import IoServer

try:  # a Python built without OpenSSL still serves plain TCP
    import ssl
except ImportError:  # pragma: no cover
    ssl = None  # type: ignore[assignment]

__all__ = ["Connection", "TlsConnection", "kernel_unsent_bytes", "RECV_SIZE", "DIRECT_WRITE_SIZE", "WOULD_BLOCK"]

log = logging.getLogger(__name__)


#: Bytes asked of the kernel per read.  Reads land in one buffer of this size
#: per server, reused: a fresh 256 KiB object per read would be above glibc's
#: mmap threshold, and each read could then cost a mapping made, shrunk and
#: freed (scripts/profile_calls.py syscalls counts them).
RECV_SIZE = 256 * 1024
#: Writes at least this large are tried at once instead of waiting for the
#: end of the loop iteration.
DIRECT_WRITE_SIZE = 64 * 1024

_resource_ids = itertools.count(1)

# "Try again later" from a plain or a TLS socket.
WOULD_BLOCK: tuple = (BlockingIOError, InterruptedError)
if ssl is not None:
    WOULD_BLOCK += (ssl.SSLWantReadError, ssl.SSLWantWriteError)

# Linux's SIOCOUTQ (the same number as TIOCOUTQ): bytes of a TCP socket not yet
# sent or not yet acknowledged by the peer.
_SIOCOUTQ = 0x5411


def kernel_unsent_bytes(sock: Any) -> Optional[int]:
    """Bytes the kernel still holds for ``sock`` (unsent or unacknowledged), or ``None`` where unknown."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import fcntl
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))[0])
    except (ImportError, OSError, ValueError):
        return None


class Connection:
    """One accepted TCP connection, the same object for its whole life.

    It carries ``resource_id`` (unique in the process), ``remote_address`` (host
    string) and ``remote_port``, and accepts user attributes.  ``send`` writes
    through to the socket; ``close`` flushes then closes; ``abort`` drops at
    once.
    """

    __slots__ = (
        "__dict__", "__weakref__", "resource_id", "remote_address", "remote_port", "loop", "server",
        "_sock", "_component", "_wbuf", "_wview", "_state", "_reading", "_linger_timer",
        "on_drain", "low_water", "_drain_armed", "_corked", "_writing", "_read_view", "_direct_sink",
    )

    _OPEN, _CLOSING, _LINGERING, _CLOSED = range(4)

    #: True for connections that arrived over TLS.
    is_secure = False

    def __init__(self, server: "IoServer", sock: socket.socket, addr: Any) -> None:
        self.resource_id = next(_resource_ids)
        host = addr[0] if isinstance(addr, tuple) else str(addr)
        # A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; show them as IPv4.
        self.remote_address = host[7:] if host.startswith("::ffff:") and "." in host else host
        self.remote_port = addr[1] if isinstance(addr, tuple) and len(addr) > 1 else 0
        self.loop = server.loop
        self.server = server
        self._sock = sock
        self._component = server.component
        self._wbuf = bytearray()
        # The unsent rest of one large immutable write (bytes), kept as a view
        # rather than copied; it goes out before _wbuf.
        self._wview: Optional[memoryview] = None
        self._state = Connection._OPEN
        self._reading = False
        self._linger_timer: Any = None
        #: Called with no argument when the write buffer, having grown past
        #: ``low_water`` bytes, has drained down to it.
        self.on_drain: Optional[Callable[[], Any]] = None
        self.low_water = 0
        self._drain_armed = False
        self._corked = False    # a flush is scheduled for the end of this loop iteration
        self._writing = False   # EVENT_WRITE is registered
        self._read_view = server._read_view
        self._direct_sink: Any = None

    def __repr__(self) -> str:
        return "<Connection #%d %s:%s>" % (self.resource_id, self.remote_address, self.remote_port)

    # -- state -------------------------------------------------------------
    @property
    def socket(self) -> socket.socket:
        """The underlying socket (for options; do not read or write it)."""
        return self._sock

    @property
    def closed(self) -> bool:
        """True once the connection no longer accepts writes."""
        return self._state != Connection._OPEN

    @property
    def buffered_amount(self) -> int:
        """Bytes accepted by :meth:`send` that the kernel has not taken yet."""
        view = self._wview
        return len(self._wbuf) + (len(view) if view is not None else 0)

    # -- reading -----------------------------------------------------------
    def _start_reading(self) -> None:
        self._reading = True
        self.loop.add_reader(self._sock, self._on_readable)

    def pause_reading(self) -> None:
        """Stop reading from the socket until :meth:`resume_reading`."""
        if self._reading and self._state == Connection._OPEN:
            self._reading = False
            self.loop.remove_reader(self._sock)

    def resume_reading(self) -> None:
        """Read from the socket again after :meth:`pause_reading`."""
        if not self._reading and self._state == Connection._OPEN:
            self._start_reading()

    def read_directly(self, get_buffer: Callable[[], Any], buffer_filled: Callable[[int], Any]) -> None:
        """Read the next bytes straight into buffers that ``get_buffer()`` provides, skipping ``on_message``.

        For as long as ``get_buffer()`` returns a writable memoryview, each
        read goes into it and is reported with ``buffer_filled(size)`` (the
        view released first); once it returns None, reading goes back to the
        component's ``on_message``.  The WebSocket layer uses this for the
        payload of a large frame: the bytes land where the message is
        gathered, instead of being copied there from a ``bytes`` the component
        got.  The components in between see none of those bytes, which are
        frame payload they would only have passed on.  TLS connections ignore
        this.
        """
        if self._state == Connection._OPEN:
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
            log.debug("%r: read failed: %s", self, exc)
            self._teardown()
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
            self.server._report_error(self, exc)
        return True

    def _on_readable(self) -> None:
        if self._direct_sink is not None and self._read_into_sink():
            return
        view = self._read_view
        try:
            size = self._sock.recv_into(view)
        except WOULD_BLOCK:
            return
        except OSError as exc:
            log.debug("%r: read failed: %s", self, exc)
            self._teardown()
            return
        if not size:
            self._peer_finished()
            return
        STATS.bytes_received += size
        try:
            # The one copy: the component gets bytes it may keep.
            self._component.on_message(self, view[:size].tobytes())
        except Exception as exc:
            self.server._report_error(self, exc)

    def _peer_finished(self) -> None:
        log.debug("%r: peer closed", self)
        if self._wbuf or self._wview is not None:
            self._begin_close()  # the peer may still read what we owe it
        else:
            self._teardown()

    def _on_discard_readable(self) -> None:
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
            self._release()
            return
        if self._state == Connection._LINGERING:
            self._release()  # the peer's FIN after ours: done
        else:
            self.loop.remove_reader(self._sock)  # peer done sending; keep flushing

    # -- writing -----------------------------------------------------------
    def send(self, data: Any) -> None:
        """Write ``data`` (bytes-like); it goes out at the end of this loop iteration.

        Small writes made during one iteration (every reply to the messages of
        one read, say) leave in one system call; writes of 64 KiB or more are
        tried at once.  Whatever the kernel does not take is buffered and
        written as the socket drains.
        """
        if self._state != Connection._OPEN:
            return
        wbuf = self._wbuf
        if len(data) < DIRECT_WRITE_SIZE or wbuf or self._wview is not None:
            wbuf += data
            if not (self._corked or self._writing):
                self._corked = True
                self.loop.flush_soon(self._on_writable)
            if len(wbuf) > self.low_water or (self._wview is not None and self.buffered_amount > self.low_water):
                self._drain_armed = True
            return
        self.try_write(data)  # nothing pending, open: it writes now

    def try_write(self, data: Any) -> bool:
        """Hand ``data`` to the kernel at once if nothing is pending; returns whether it did.

        For a burst that is already one write per connection (a broadcast),
        corking would add a buffer copy and a callback per receiver for no
        saved system call.  What the kernel does not take is buffered as by
        :meth:`send`.  When bytes are already pending (or the connection is
        closing) nothing is written and False is returned: the caller applies
        its own policy for a client that is behind, then calls :meth:`send`.
        """
        if self._wbuf or self._wview is not None or self._state != Connection._OPEN:
            return False
        # (the write itself is inline: a broadcast runs this once per receiver)
        try:
            sent = self._sock.send(data)
        except WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            self._write_failed(exc)
            return True
        STATS.bytes_sent += sent
        if sent < len(data):
            self._buffer_rest(data, sent)
        return True

    def writev(self, parts: Any) -> None:
        """Write several bytes-like ``parts`` in order, as one write, without joining them first.

        Large parts (a frame header and its payload) go to the kernel together
        in one ``sendmsg()`` on plain sockets; TLS sockets, which have no
        ``sendmsg()``, write them one by one through :meth:`send`.
        """
        if self._state != Connection._OPEN:
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
            self.loop.add_writer(self._sock, self._on_writable)

    def _stop_write(self) -> None:
        if self._writing:
            self._writing = False
            self.loop.remove_writer(self._sock)

    write = send

    def _on_writable(self) -> None:
        # Both the end-of-iteration flush of what send() corked and the
        # EVENT_WRITE callback: one function, one call per flush.
        self._corked = False
        wbuf = self._wbuf
        view = self._wview
        if (not wbuf and view is None) or self._state > Connection._CLOSING:
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
            self._teardown()
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
            elif self._drain_armed and self._state == Connection._OPEN:
                self._drain_armed = False
                if self.on_drain is not None:
                    self._drained()
            return
        if self._writing:
            self._stop_write()
        if self._state == Connection._CLOSING:
            self._shutdown_write()
        elif self._drain_armed and self._state == Connection._OPEN:
            self._drain_armed = False
            if self.on_drain is not None:
                self._drained()

    def _drained(self) -> None:
        # Down to low_water after having been above it: tell the owner.
        try:
            self.on_drain()  # type: ignore[misc]
        except Exception as exc:
            self.server._report_error(self, exc)

    def _write_failed(self, exc: OSError) -> None:
        # send() is called from application code, often inside a loop over
        # connections: tear down on the next iteration, so that on_close never
        # runs re-entrantly inside that loop.
        log.debug("%r: write failed: %s", self, exc)
        if self._state == Connection._OPEN:
            self._state = Connection._CLOSING
            self._wbuf = bytearray()
            self._wview = None
            self._writing = False
            self.loop.forget(self._sock)
            self.loop.call_soon(self._finish_failed)

    def _finish_failed(self) -> None:
        self.server._connection_ended(self)
        self._release()

    # -- closing -----------------------------------------------------------
    def close(self, code: Any = None, reason: str = "") -> None:
        """Close after everything written so far has been sent.

        ``code`` and ``reason`` are accepted for symmetry with WebSocket
        connections; a raw TCP connection has nowhere to put them.
        """
        if self._state == Connection._OPEN:
            self._begin_close()

    def abort(self) -> None:
        """Drop the connection now; bytes the kernel has not taken are discarded."""
        if self._state == Connection._CLOSED:
            return
        if self._corked and self._wbuf:
            # Sent during this iteration and not yet flushed: a write-through
            # transport would have handed them to the kernel already, so try once.
            try:
                self._sock.send(self._wbuf)
            except OSError:
                pass
        self._teardown()

    def _begin_close(self) -> None:
        self._state = Connection._CLOSING
        self._reading = False
        self.server._connection_ended(self)
        if self._wbuf or self._wview is not None:
            self.loop.add_reader(self._sock, self._on_discard_readable)
            self._want_write()
            self._linger_timer = self.loop.call_later(self.server.close_timeout, self._release)
        else:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        self._state = Connection._LINGERING
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._release()
            return
        if self._linger_timer is None:
            self._linger_timer = self.loop.call_later(self.server.close_timeout, self._release)
        self.loop.add_reader(self._sock, self._on_discard_readable)

    def _release_if_delivered(self) -> None:
        """Close now if our FIN is out and the peer has acknowledged every byte we sent.

        Lingering for the peer's FIN only protects bytes the peer has not
        acknowledged; once there are none (and nothing unread on our side that
        would turn the close into a RST), waiting adds nothing.
        """
        if self._state != Connection._LINGERING or kernel_unsent_bytes(self._sock) != 0:
            return
        try:
            view = self._read_view
            for _ in range(16):
                if not self._sock.recv_into(view):
                    break
            else:
                return  # still sending: leave it to the linger
        except WOULD_BLOCK:
            pass
        except OSError:
            pass
        self._release()

    def _teardown(self) -> None:
        if self._state != Connection._CLOSED:
            self._state = Connection._CLOSING
        self.server._connection_ended(self)  # a no-op unless on_close is still owed
        self._release()

    @property
    def _released(self) -> bool:
        return self._state == Connection._CLOSED

    def _release(self) -> None:
        if self._state == Connection._CLOSED:
            return
        self._state = Connection._CLOSED
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        self.loop.forget(self._sock)
        self._writing = False
        self._wbuf = bytearray()
        self._wview = None
        self._direct_sink = None
        try:
            self._sock.close()
        except OSError:
            pass
        self.server._connection_released(self)


class TlsConnection(Connection):
    """A connection on a TLS listener: the handshake runs in the loop first.

    The component sees the connection (``on_open``) only once the TLS
    handshake has succeeded; a client that fails it or stalls past
    ``tls_handshake_timeout`` is dropped and logged, unseen.
    """

    __slots__ = ("_handshake_timer",)

    _sock: "ssl.SSLSocket"

    is_secure = True

    def _start_handshake(self, timeout: float) -> None:
        self._handshake_timer = self.loop.call_later(timeout, self._handshake_timed_out)
        self.loop.add_reader(self._sock, self._on_handshake_io)
        self._on_handshake_io()

    def _on_handshake_io(self) -> None:
        try:
            self._sock.do_handshake()
        except ssl.SSLWantReadError:
            self.loop.remove_writer(self._sock)
            return
        except ssl.SSLWantWriteError:
            self.loop.add_writer(self._sock, self._on_handshake_io)
            return
        except (OSError, ValueError) as exc:
            log.info("%r: TLS handshake failed: %s", self, exc)
            self._end_handshake()
            self._release()
            return
        self._end_handshake()
        self.server._established(self)

    def _end_handshake(self) -> None:
        self._handshake_timer.cancel()
        self.loop.forget(self._sock)
        self.server._handshaking.discard(self)

    def _handshake_timed_out(self) -> None:
        log.info("%r: TLS handshake not complete in time; dropping", self)
        self._end_handshake()
        self._release()

    def _shutdown_write(self) -> None:
        try:
            self._sock.unwrap()  # sends close_notify; the peer's answer is not awaited
        except (OSError, ValueError):
            pass
        super()._shutdown_write()

    def read_directly(self, get_buffer: Callable[[], Any], buffer_filled: Callable[[int], Any]) -> None:
        """Not done over TLS: decrypted bytes come record by record through ``on_message``."""

    def _on_readable(self) -> None:
        # One recv() yields at most one TLS record, and decrypted bytes may wait
        # inside the TLS object where the selector cannot see them: read
        # until the TLS layer has nothing more.
        view = self._read_view
        size = 0
        eof = False
        sock = self._sock
        while size < RECV_SIZE:
            try:
                got = sock.recv_into(view[size:])
            except WOULD_BLOCK:
                break
            except OSError as exc:
                log.debug("%r: read failed: %s", self, exc)
                eof = True
                break
            if not got:
                eof = True
                break
            size += got
        if size:
            STATS.bytes_received += size
            try:
                self._component.on_message(self, view[:size].tobytes())
            except Exception as exc:
                self.server._report_error(self, exc)
        if eof and self._state == Connection._OPEN:
            self._peer_finished()
