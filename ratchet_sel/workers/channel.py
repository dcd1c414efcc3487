"""One end of a master/worker channel on a loop: frames out through a bounded buffer, frames in."""

import logging
import socket
import time
from typing import Any, Callable, Optional

from ..io.loop import Loop
from ..io.stream import Stream, StreamOwner
from .wire import ChannelError, FrameReader

__all__ = ["Channel"]

log = logging.getLogger(__name__)


class Channel(StreamOwner):
    """A socketpair end on a loop: frames out through a bounded buffer, frames in.

    The bytes travel over a :class:`~ratchet_sel.io.stream.Stream`; the
    channel adds the framing and the bound: past ``max_buffer`` bytes waiting,
    droppable frames are dropped and counted (``dropped``).  ``on_closed()``
    is called once when the channel closes, unless it was closed with
    ``notify=False``.
    """

    def __init__(self, loop: Loop, sock: socket.socket, on_frame: Callable[[int, str, bytes], Any],
                 on_closed: Callable[[], Any], name: str, max_buffer: int, max_frame: int) -> None:
        self.loop = loop
        self.name = name
        self.max_buffer = max_buffer
        self.max_frame = max_frame
        self.dropped = 0
        self._on_frame = on_frame
        self._on_closed: Optional[Callable[[], Any]] = on_closed
        self._reader = FrameReader(max_frame)
        self._last_drop_log = 0.0
        self._stream = Stream(loop, sock, self, self._data)
        self._stream.resume_reading()

    def __repr__(self) -> str:
        return "<Channel %s>" % self.name

    @property
    def closed(self) -> bool:
        """True once the channel is closed (by either end)."""
        return self._stream.closed

    @property
    def buffered_amount(self) -> int:
        """Bytes of frames waiting to be written."""
        return self._stream.buffered_amount

    def send(self, frame: bytes, droppable: bool = True, now: bool = False) -> bool:
        """Queue one encoded frame; False when dropped (closed, or the buffer is full).

        Frames go out at the end of the loop iteration, together; ``now``
        writes at once instead (with whatever was queued before it, so the
        order holds).
        """
        stream = self._stream
        if stream.closed:
            return False
        waiting = stream.buffered_amount
        if droppable and waiting and waiting + len(frame) > self.max_buffer:
            self.dropped += 1
            moment = time.monotonic()
            if moment - self._last_drop_log >= 5.0:
                self._last_drop_log = moment
                log.warning("%s does not keep up: %d KiB buffered; %d publication(s) dropped so far",
                            self.name, waiting // 1024, self.dropped)
            return False
        stream.send(frame)
        if now:
            stream.flush()
        return True

    def _data(self, stream: Stream, data: bytes) -> None:
        try:
            frames = self._reader.feed(data)
        except ChannelError as exc:
            log.error("%s: broken frame (%s); closing the channel", self.name, exc)
            self.close()
            return
        for kind, topic, payload in frames:
            if stream.closed:
                return
            try:
                self._on_frame(kind, topic, payload)
            except Exception:
                log.exception("%s: handling a frame failed", self.name)

    def stream_ended(self, stream: Stream, exc: Optional[BaseException]) -> None:
        """The other end went away (or a write failed): the channel is closed."""
        if exc is not None:
            log.debug("%s: %s", self.name, exc)
        on_closed, self._on_closed = self._on_closed, None
        if on_closed is not None:
            on_closed()

    def close(self, notify: bool = True) -> None:
        """Close the socket now and, unless ``notify`` is false, tell the owner (once)."""
        if not notify:
            self._on_closed = None
        self._stream.abort()

    def close_after_fork(self) -> None:
        """In a forked child: close the inherited descriptor without touching the parent's loop."""
        self._on_closed = None
        self._stream.close_after_fork()
