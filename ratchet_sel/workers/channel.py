"""One end of a master/worker channel on a loop: frames out through a bounded buffer, frames in."""

import logging
import socket
import time
from typing import Any, Callable

from ..io.loop import Loop
from .wire import ChannelError, FrameReader

__all__ = ["Channel"]

log = logging.getLogger(__name__)

_RECV_SIZE = 256 * 1024


class Channel:
    """A non-blocking socketpair end on a loop: frames out through a bounded buffer, frames in."""

    def __init__(self, loop: Loop, sock: socket.socket, on_frame: Callable[[int, str, bytes], Any],
                 on_closed: Callable[[], Any], name: str, max_buffer: int, max_frame: int) -> None:
        self.loop = loop
        self.sock = sock
        self.name = name
        self.max_buffer = max_buffer
        self.max_frame = max_frame
        self.dropped = 0
        self._on_frame = on_frame
        self._on_closed = on_closed
        self._reader = FrameReader(max_frame)
        self._out = bytearray()
        self._flush_scheduled = False
        self._writing = False
        self._closed = False
        self._last_drop_log = 0.0
        sock.setblocking(False)
        loop.add_reader(sock, self._on_readable)

    @property
    def closed(self) -> bool:
        """True once the channel is closed (by either end)."""
        return self._closed

    def send(self, frame: bytes, droppable: bool = True, now: bool = False) -> bool:
        """Queue one encoded frame; False when dropped (closed, or the buffer is full).

        ``now`` writes at once instead of at the end of the loop iteration
        (with whatever was queued before it, so the order holds).
        """
        if self._closed:
            return False
        if droppable and self._out and len(self._out) + len(frame) > self.max_buffer:
            self.dropped += 1
            moment = time.monotonic()
            if moment - self._last_drop_log >= 5.0:
                self._last_drop_log = moment
                log.warning("%s does not keep up: %d KiB buffered; %d publication(s) dropped so far",
                            self.name, len(self._out) // 1024, self.dropped)
            return False
        self._out += frame
        if now:
            self._write()
        elif not self._flush_scheduled and not self._writing:
            self._flush_scheduled = True
            self.loop.flush_soon(self._flush)  # one write for every frame of this loop iteration
        return True

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._write()

    def _write(self) -> None:
        if self._closed:
            return
        while self._out:
            try:
                sent = self.sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.debug("%s: write failed: %s", self.name, exc)
                self.close()
                return
            del self._out[:sent]
        if self._out and not self._writing:
            self._writing = True
            self.loop.add_writer(self.sock, self._write)
        elif not self._out and self._writing:
            self._writing = False
            self.loop.remove_writer(self.sock)

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("%s: read failed: %s", self.name, exc)
            data = b""
        if not data:
            self.close()
            return
        try:
            frames = self._reader.feed(data)
        except ChannelError as exc:
            log.error("%s: broken frame (%s); closing the channel", self.name, exc)
            self.close()
            return
        for kind, topic, payload in frames:
            if self._closed:
                return
            try:
                self._on_frame(kind, topic, payload)
            except Exception:
                log.exception("%s: handling a frame failed", self.name)

    def close(self) -> None:
        """Close the socket and tell the owner (once)."""
        if self._closed:
            return
        self._closed = True
        self.loop.forget(self.sock)
        self.sock.close()
        self._out.clear()
        self._on_closed()

    def close_after_fork(self) -> None:
        """In a forked child: close the inherited descriptor without touching the parent's loop."""
        self._closed = True
        self.sock.close()
