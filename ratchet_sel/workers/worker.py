"""The worker side: what a worker's factory gets, and its backplane to the master's hub."""

import json
import logging
import os
import socket
from typing import Any, Callable, Dict, List, Optional

from ..io.listener import IoServer
from ..io.loop import Loop
from ..pubsub.envelope import EnvelopeError, Publication, decode, encode
from ..pubsub.topics import Backplane, Topics
from .channel import Channel
from .wire import (CLAIM, CLAIM_ANSWER, DEFAULT_CHANNEL_BUFFER, DEFAULT_MAX_FRAME, DELIVERED, METRICS, PUBLISH,
                   READY, RELEASE, SUBSCRIBE, TO_OWNER, TO_WORKER, UNROUTED, UNSUBSCRIBE, WORKER_GONE, ChannelError,
                   encode_channel_frame)

__all__ = ["Worker", "WorkerBackplane", "ConnectionLog", "Mailbox"]

log = logging.getLogger(__name__)


class WorkerBackplane(Backplane):
    """The backplane of a hub in a worker: publications go through the master to the other workers.

    Made by :class:`Worker` (``worker.backplane``); one hub attaches to it.
    """

    def __init__(self, worker: "Worker") -> None:
        self.worker = worker
        self._hub: Optional[Topics] = None
        self.dropped = 0

    def attach(self, hub: Topics) -> None:
        """Remember the hub; it gets what the other workers publish on its topics."""
        if self._hub is not None and self._hub is not hub:
            raise RuntimeError("a worker's backplane serves one Topics hub: share worker.topics")
        self.hub = self._hub = hub
        for topic in sorted(hub.topic_names()):
            self.channel_added(topic)

    def channel_added(self, topic: str) -> None:
        """Ask the master for the publications of ``topic``."""
        self.worker.send_control(SUBSCRIBE, topic)

    def channel_removed(self, topic: str) -> None:
        """Tell the master this worker no longer wants ``topic``."""
        self.worker.send_control(UNSUBSCRIBE, topic)

    def publish(self, publication: Publication) -> None:
        """Hand a local publication to the master, which relays it to the other workers."""
        try:
            frame = encode_channel_frame(PUBLISH, publication.topic, encode(publication))
        except ChannelError as exc:
            log.error("cannot relay a publication on %r: %s", publication.topic, exc)
            return
        if len(frame) - 4 > self.worker.max_frame:
            self.dropped += 1
            log.error("a publication of %d bytes on %r is over the %d-byte relay limit: "
                      "delivered in this worker only", len(frame), publication.topic, self.worker.max_frame)
            return
        if not self.worker.send_frame(frame):
            self.dropped += 1

    def deliver(self, topic: str, payload: bytes) -> None:
        """Hand a publication the master relayed (its topic and envelope) to the hub."""
        if self._hub is None:
            return
        try:
            publication = decode(topic, payload)
        except EnvelopeError as exc:
            log.error("dropped a relayed publication on %r: %s", topic, exc)
            return
        self._hub.deliver_remote(publication)

    def close(self) -> None:
        """Forget the hub (the channel belongs to the worker and closes with it)."""
        self._hub = None


class Mailbox:
    """Messages addressed to one worker, through the master (see :mod:`ratchet_sel.workers.wire`).

    Made by :attr:`Worker.mailbox`.  A worker claims keys (first come, first
    served across the workers of the master), sends to the owner of a key or
    to a worker by index, and hears back through ``handler``, an object with:

    - ``claim_answered(key, granted, token)``;
    - ``delivered(sender_index, payload)``;
    - ``unrouted(key, payload)`` (nobody owns ``key``: the payload comes back);
    - ``worker_gone(index, keys)`` (a worker ended; ``keys`` were its claims).

    The send methods return False when the frame could not be queued (too
    large, or the channel is closed or full).
    """

    def __init__(self, worker: "Worker") -> None:
        self.worker = worker
        self.handler: Any = None

    def _send(self, kind: int, topic: str, payload: bytes, droppable: bool) -> bool:
        try:
            frame = encode_channel_frame(kind, topic, payload)
        except ChannelError as exc:
            log.error("mailbox frame for %r not sent: %s", topic[:80], exc)
            return False
        if len(frame) - 4 > self.worker.max_frame:
            log.warning("mailbox frame of %d bytes is over the %d-byte limit", len(frame), self.worker.max_frame)
            return False
        return self.worker.send_frame(frame, droppable)

    def claim(self, key: str, token: bytes = b"") -> bool:
        """Ask to own ``key``; ``handler.claim_answered(key, granted, token)`` follows."""
        return self._send(CLAIM, key, token, False)

    def release(self, key: str) -> bool:
        """Give ``key`` up (nothing happens if this worker does not own it)."""
        return self._send(RELEASE, key, b"", False)

    def to_owner(self, key: str, payload: bytes) -> bool:
        """Send ``payload`` to the worker that owns ``key`` (it may come back as ``unrouted``)."""
        return self._send(TO_OWNER, key, payload, True)

    def to_worker(self, index: int, payload: bytes) -> bool:
        """Send ``payload`` to worker ``index`` (dropped by the master if it is gone)."""
        return self._send(TO_WORKER, str(index), payload, False)

    def frame(self, kind: int, topic: str, payload: bytes) -> None:
        """Hand a mailbox frame from the master to the handler."""
        handler = self.handler
        if handler is None:
            return
        if kind == DELIVERED:
            handler.delivered(int(topic), payload)
        elif kind == CLAIM_ANSWER:
            handler.claim_answered(topic, payload[:1] == b"1", payload[1:])
        elif kind == UNROUTED:
            handler.unrouted(topic, payload)
        elif kind == WORKER_GONE:
            handler.worker_gone(int(topic), [key for key in payload.decode("utf-8").split("\n") if key])


class Worker:
    """What a worker's factory gets, in the worker process after ``fork``.

    - ``index``: the worker's slot, 1 to n (a replacement keeps the slot);
    - ``pid``: this process's id;
    - ``loop``: the worker's :class:`~ratchet_sel.Loop` (its server runs on it;
      build anything that needs a loop, such as a Redis backplane, on it);
    - ``backplane``: a :class:`WorkerBackplane` to the master's hub;
    - ``topics``: a :class:`~ratchet_sel.pubsub.Topics` hub on that backplane,
      made on first use: the simplest way to share topics between workers;
    - ``mailbox``: a :class:`Mailbox`, messages addressed to one worker;
    - :meth:`share_metrics` and :meth:`metrics_snapshots`: every worker's
      metrics, for a :class:`~ratchet_sel.metrics.MetricsEndpoint` that
      answers for the whole server from any worker.
    """

    def __init__(self, index: int, loop: Loop, sock: socket.socket, *,
                 max_buffer: int = DEFAULT_CHANNEL_BUFFER, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.index = index
        self.pid = os.getpid()
        self.loop = loop
        self.max_frame = max_frame
        self.server: Optional[IoServer] = None
        self.backplane = WorkerBackplane(self)
        self._topics: Optional[Topics] = None
        self.mailbox = Mailbox(self)
        self._stop_callbacks: List[Callable[[], Any]] = []
        self._peer_snapshots: Dict[str, Dict[str, Any]] = {}
        self._metrics_timer: Any = None
        self._channel = Channel(loop, sock, self._on_frame, self._master_lost,
                                 "the channel to the master", max_buffer, max_frame)

    @property
    def topics(self) -> Topics:
        """A Topics hub spanning every worker (through the master), made on first use."""
        if self._topics is None:
            self._topics = Topics(self.backplane)
        return self._topics

    def share_metrics(self, interval: float = 1.0) -> None:
        """Send this worker's metrics snapshot to the other workers every ``interval`` seconds.

        Each worker that calls it can then answer a scrape for all of them
        with :meth:`metrics_snapshots`.
        """
        if self._metrics_timer is None:
            self._metrics_timer = self.loop.call_every(interval, self._send_snapshot)
            self._send_snapshot()

    def metrics_snapshots(self) -> List[Dict[str, Any]]:
        """This worker's snapshot now, and the latest of every other worker that shares them."""
        from ..ops.metrics import snapshot  # only for servers that serve metrics

        return [snapshot(worker=str(self.index))] + [self._peer_snapshots[key] for key in sorted(self._peer_snapshots)]

    def _send_snapshot(self) -> None:
        from ..ops.metrics import snapshot

        self._channel.send(encode_channel_frame(METRICS, str(self.index),
                                        json.dumps(snapshot(worker=str(self.index))).encode("utf-8")))

    def on_stop(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` once the worker's server has stopped, before the process exits.

        For what the factory opened besides the server (a Redis hub, files).
        """
        self._stop_callbacks.append(callback)

    def run_stop_callbacks(self) -> None:
        """Run the :meth:`on_stop` callbacks (last registered first) and close the worker's hub."""
        callbacks, self._stop_callbacks = self._stop_callbacks, []
        for callback in reversed(callbacks):
            try:
                callback()
            except Exception:
                log.exception("worker %d (pid %d): a stop callback raised", self.index, self.pid)
        if self._topics is not None:
            self._topics.close()

    def send_frame(self, frame: bytes, droppable: bool = True) -> bool:
        """Queue one encoded frame for the master; False when the channel dropped it (closed, or
        full and ``droppable``)."""
        return self._channel.send(frame, droppable)

    def send_control(self, kind: int, topic: str) -> None:
        """Tell the master at once (never dropped) that this worker subscribes to or leaves ``topic``."""
        try:
            frame = encode_channel_frame(kind, topic)
        except ChannelError as exc:
            log.error("topic %r cannot span workers: %s", topic[:80], exc)
            return
        # At once: a subscription made in on_open reaches the master before the
        # client sees the handshake's answer (which waits for the iteration's end).
        self._channel.send(frame, droppable=False, now=True)

    def _on_frame(self, kind: int, topic: str, payload: bytes) -> None:
        if kind == PUBLISH:
            self.backplane.deliver(topic, payload)
        elif kind == METRICS:
            if not payload:
                self._peer_snapshots.pop(topic, None)
                return
            try:
                figures = json.loads(payload.decode("utf-8"))
            except ValueError:
                log.error("a metrics snapshot from worker %s is not JSON; ignored", topic)
                return
            if isinstance(figures, dict):
                self._peer_snapshots[topic] = figures
        elif kind in (DELIVERED, CLAIM_ANSWER, UNROUTED, WORKER_GONE):
            self.mailbox.frame(kind, topic, payload)
        else:
            log.warning("unexpected frame kind %d from the master", kind)

    def _master_lost(self) -> None:
        if self.server is not None:
            log.warning("worker %d (pid %d): the master is gone; shutting down", self.index, self.pid)
            self.server.shutdown()

    def announce_ready(self) -> None:
        """Tell the master this worker serves (its listeners are bound)."""
        self._channel.send(encode_channel_frame(READY), droppable=False)

    def close(self) -> None:
        """Close the channel to the master."""
        if self._metrics_timer is not None:
            self._metrics_timer.cancel()
        self._channel.close(notify=False)


class ConnectionLog:
    """Passes every event through, logging (at DEBUG) which worker accepted each connection."""

    def __init__(self, component: Any, worker: Worker) -> None:
        self.component = component
        self._label = "worker %d (pid %d) accepted" % (worker.index, worker.pid)
        # Bound straight to the component: no extra call on the hot path.
        self.on_message = component.on_message
        self.on_close = component.on_close
        self.on_error = component.on_error

    def on_open(self, conn: Any, *args: Any) -> None:
        log.debug("%s %s:%s", self._label, getattr(conn, "remote_address", "?"), getattr(conn, "remote_port", "?"))
        self.component.on_open(conn, *args)

    def __getattr__(self, name: str) -> Any:  # on_shutdown, on_refuse, subprotocols...
        return getattr(self.component, name)
