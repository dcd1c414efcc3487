"""Redis pub/sub as the backplane of a :class:`~ratchet_sel.pubsub.Topics` hub.

:class:`RedisPubSub` is a :class:`~ratchet_sel.pubsub.Topics` hub whose topics
span every process connected to the same Redis server::

    topics = RedisPubSub("redis://127.0.0.1:6379/0")
    IoServer(WsServer(Chat(topics)), port=8000, loop=...)

Topic ``T`` is the Redis channel ``<prefix>T`` (prefix ``"ratchet_sel:"`` by
default), so any Redis client can push: ``PUBLISH ratchet_sel:news hello``
reaches every subscriber of topic ``news`` as a text message (bytes that are
not UTF-8 arrive as a binary message).  What ratchet_sel publishes itself is
wrapped in the envelope of :mod:`ratchet_sel.pubsub.envelope`, which carries
binary messages, exclusions and the origin across.

The client speaks RESP2 from the library's :class:`~ratchet_sel.loop.Loop`:
non-blocking sockets, no thread, no client library.  It keeps two
connections, because a RESP2 connection in subscribed mode cannot PUBLISH:
one SUBSCRIBEs to the channels that have local subscribers, the other
PUBLISHes.

**Faults.**  Local delivery never depends on Redis.  A lost connection is
retried with capped exponential backoff (``min_backoff`` .. ``max_backoff``
seconds, with jitter) and every channel is subscribed again.  Each outage logs
three lines: lost, reconnecting, restored.  Publications made while the
publishing connection is down wait in a queue of at most ``max_pending``;
when it is full the oldest are dropped and counted (:meth:`RedisBackplane.stats`).
Publications already written when a connection fails are not sent again
(Redis pub/sub itself delivers at most once).  A reply that is not RESP2, or
larger than the limits, is logged and the connection made anew.  An address
where nothing listens is logged as an error once, and retried for ever.

**Which loop.**  Pass ``loop=``; otherwise the hub binds itself to the loop of
the first connection that subscribes, or call :meth:`RedisPubSub.bind`
(``python -m ratchet_sel chat --redis URL`` does, so it connects at start).
Until then subscriptions are remembered and publications queued.
"""

import logging
import random
import socket
from collections import deque
from typing import Any, Callable, Deque, Dict, NamedTuple, Optional, Set
from urllib.parse import unquote, urlsplit

from ..io.loop import Loop
from ..io.stream import Stream, StreamOwner, address_family
from ..ops.ratelimit import RateLimitedLog
from . import envelope
from .envelope import Publication
from .resp import RedisError, Reply, RespParser, RespProtocolError, encode_command, split_message
from .topics import Backplane, Topics

__all__ = ["RedisPubSub", "RedisBackplane", "RedisAddress", "parse_redis_url", "DEFAULT_PREFIX"]

log = logging.getLogger(__name__)

#: The channel prefix of topics: topic ``chat`` is channel ``ratchet_sel:chat``.
DEFAULT_PREFIX = "ratchet_sel:"

#: Channels named in one SUBSCRIBE command when re-subscribing many.
_CHANNELS_PER_COMMAND = 1000


class RedisAddress(NamedTuple):
    """Where a Redis server is, and how to log in: the parts of a ``redis://`` URL."""

    host: str
    port: int
    db: int
    username: Optional[str]
    password: Optional[str]
    tls: bool

    def display(self) -> str:
        """The address without its secret, for logs."""
        host = "[%s]" % self.host if address_family(self.host) == socket.AF_INET6 else self.host
        return "%s://%s:%d/%d" % ("rediss" if self.tls else "redis", host, self.port, self.db)


def parse_redis_url(url: str) -> RedisAddress:
    """Read ``redis://[[user]:password@]host[:port][/db]`` (or ``rediss://`` for TLS).

    The port defaults to 6379 and the database to 0; user and password are
    percent-decoded.  Raises ``ValueError`` with the reason for anything else.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("a Redis URL starts with redis:// or rediss://, not %r" % url.split(":", 1)[0])
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError("the port of %r is not a number from 0 to 65535" % parts.netloc) from None
    host = parts.hostname or "127.0.0.1"
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError("the database in a Redis URL is a number, not %r" % path)
    db = int(path) if path else 0
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and username is not None:
        # redis://secret@host is how many clients write a password alone
        username, password = None, username
    return RedisAddress(host, port, db, username, password, parts.scheme == "rediss")


class _Link(StreamOwner):
    """One Redis connection on the loop: a Stream, AUTH/SELECT, then replies.

    ``on_ready(link)`` is called once the login commands succeeded,
    ``on_reply(link, reply)`` for every later reply, ``on_lost(link, reason,
    garbage)`` once when the connection fails.  The link never reconnects by
    itself; its owner makes a new one.  ``connect_timeout`` bounds connect,
    TLS and login together.
    """

    def __init__(self, name: str, backplane: "RedisBackplane", loop: Loop,
                 on_ready: Callable[["_Link"], None], on_reply: Callable[["_Link", Reply], None],
                 on_lost: Callable[["_Link", str, bool], None]) -> None:
        self.name = name
        self.backplane = backplane
        self.loop = loop
        self.on_ready = on_ready
        self.on_reply = on_reply
        self.on_lost = on_lost
        self.ready = False
        self.closed = False
        self.parser = RespParser(max_bulk=backplane.max_reply_size)
        self.stream: Optional[Stream] = None
        self._login_left = -1   # replies to the login commands still expected; -1 before the login
        self._timer: Any = None
        self.last_received = loop.time()
        #: When the PING of the health check was sent, while it is unanswered.
        self.ping_sent: Optional[float] = None

    def __repr__(self) -> str:
        return "<redis %s link>" % self.name

    @property
    def buffered(self) -> int:
        """Bytes written to the link that the kernel has not taken yet."""
        return self.stream.buffered_amount if self.stream is not None else 0

    def start(self) -> None:
        """Connect (the host name is resolved off the loop thread), then log in."""
        address = self.backplane.address
        self._timer = self.loop.call_later(self.backplane.connect_timeout, self._timed_out)
        context = self.backplane.tls_context() if address.tls else None
        self.stream = Stream.connect(self.loop, address.host, address.port, self, self._data,
                                     ssl_context=context, server_hostname=address.host)

    def stream_opened(self, stream: Stream) -> None:
        """Connected (TLS done): log in."""
        try:
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        except OSError:
            pass
        address = self.backplane.address
        commands = []
        if address.password is not None:
            if address.username is not None:
                commands.append(encode_command("AUTH", address.username, address.password))
            else:
                commands.append(encode_command("AUTH", address.password))
        if address.db:
            commands.append(encode_command("SELECT", address.db))
        self._login_left = len(commands)
        if commands:
            self.write(b"".join(commands))
        else:
            self._logged_in()

    def stream_failed(self, stream: Stream, exc: BaseException) -> None:
        """Resolution, connect or TLS failed."""
        self._fail(exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))

    def stream_ended(self, stream: Stream, exc: Optional[BaseException]) -> None:
        """The server ended the connection, or reading or writing failed."""
        self._fail("connection closed by the server" if exc is None else "connection failed: %s" % exc)

    def _logged_in(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.ready = True
        self.last_received = self.loop.time()
        self.on_ready(self)

    def _timed_out(self) -> None:
        self._timer = None
        if not self.ready:
            self._fail("no answer within %g s" % self.backplane.connect_timeout)

    def _data(self, stream: Stream, data: bytes) -> None:
        self.last_received = self.loop.time()
        self.ping_sent = None  # any answer shows the server is alive
        try:
            replies = self.parser.feed(data)
        except RespProtocolError as exc:
            self._fail("garbage from the server (%s)" % exc, garbage=True)
            return
        for reply in replies:
            if self.closed:
                return
            if self.ready:
                self.on_reply(self, reply)
            elif isinstance(reply, RedisError):
                self._fail("login refused: %s" % reply.message)
                return
            else:
                self._login_left -= 1
                if self._login_left == 0:
                    self._logged_in()

    def write(self, data: bytes) -> None:
        """Send ``data`` (at the end of this loop iteration, with the others)."""
        if self.stream is not None and not self.closed:
            self.stream.send(data)

    def ping(self) -> None:
        """Send the health check's PING (answered by any reply)."""
        if self.ping_sent is None:
            self.ping_sent = self.loop.time()
            self.write(encode_command("PING"))

    def _fail(self, reason: str, garbage: bool = False) -> None:
        if self.closed:
            return
        self.close()
        self.on_lost(self, reason, garbage)

    def fail(self, reason: str) -> None:
        """Drop the connection as failed (a health check that got no answer)."""
        self._fail(reason)

    def close(self) -> None:
        """Close without telling the owner."""
        self.closed = True
        self.ready = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.stream is not None:
            self.stream.abort()


class RedisBackplane(Backplane):
    """Carries a :class:`Topics` hub's publications over Redis pub/sub.

    Keywords: ``loop`` (bound later with :meth:`bind` when ``None``);
    ``prefix`` of channel names; ``ssl_context`` for ``rediss://`` (default:
    :func:`ssl.create_default_context`, which verifies the certificate and the
    host name); ``connect_timeout`` (connect, TLS and login, seconds);
    ``min_backoff``/``max_backoff`` between attempts; ``max_pending``
    publications queued while Redis is away (oldest dropped past it, or
    past ``max_buffer`` bytes queued); ``max_buffer`` bytes waiting to be
    written to Redis (past it, publications are dropped and counted: Redis
    is not keeping up);
    ``max_reply_size`` bytes in one reply; ``health_interval`` seconds of
    silence after which a connection is sent a PING, and dropped if a second
    interval passes without any answer.
    """

    def __init__(self, url: str, *, loop: Optional[Loop] = None, prefix: str = DEFAULT_PREFIX,
                 ssl_context: Any = None, connect_timeout: float = 5.0, min_backoff: float = 0.1,
                 max_backoff: float = 5.0, max_pending: int = 10000, max_buffer: int = 64 * 1024 * 1024,
                 max_reply_size: int = 64 * 1024 * 1024, health_interval: float = 15.0) -> None:
        self.address = parse_redis_url(url)
        if min_backoff <= 0 or max_backoff < min_backoff:
            raise ValueError("backoff needs 0 < min_backoff <= max_backoff")
        if max_pending < 0:
            raise ValueError("max_pending must not be negative")
        self.prefix = prefix
        self._prefix_bytes = prefix.encode("utf-8")
        self._ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.max_pending = max_pending
        self.max_buffer = max_buffer
        self.max_reply_size = max_reply_size
        self.health_interval = health_interval
        self.loop: Optional[Loop] = None
        self._channels: Set[bytes] = set()
        self._pending: Deque[bytes] = deque()
        self._pending_bytes = 0
        self._links: Dict[str, Optional[_Link]] = {"subscriber": None, "publisher": None}
        self._backoff: Dict[str, float] = {"subscriber": min_backoff, "publisher": min_backoff}
        self._retry_timers: Dict[str, Any] = {}
        self._health_timer: Any = None
        self._unacknowledged = 0
        self._closed = False
        # outage bookkeeping: each transition is logged once
        self._ever_up = False
        self._up = False
        self._outage_since: Optional[float] = None
        self._reported_down = False
        self._reported_reconnecting = False
        self._reported_dropping = False
        # A reconnect loop repeats its failure every backoff: one line per kind per 10 s, with a count.
        self._quiet_log = RateLimitedLog(log)
        self._outage_dropped = 0
        self.counters = {"published": 0, "received": 0, "dropped": 0, "lost_in_flight": 0,
                         "garbage": 0, "malformed": 0, "refused": 0, "reconnects": 0}
        if loop is not None:
            self.bind(loop)

    # -- the Backplane contract -------------------------------------------------------
    def channel_added(self, topic: str) -> None:
        channel = self.channel(topic)
        if channel in self._channels:
            return
        self._channels.add(channel)
        link = self._links["subscriber"]
        if link is not None and link.ready:
            link.write(encode_command("SUBSCRIBE", channel))

    def channel_removed(self, topic: str) -> None:
        channel = self.channel(topic)
        if channel not in self._channels:
            return
        self._channels.discard(channel)
        link = self._links["subscriber"]
        if link is not None and link.ready:
            link.write(encode_command("UNSUBSCRIBE", channel))

    def publish(self, publication: Publication) -> None:
        command = encode_command("PUBLISH", self.channel(publication.topic), envelope.encode(publication))
        link = self._links["publisher"]
        if link is not None and link.ready and not self._pending:
            self._send_publish(link, command)
        else:
            self._queue(command)

    def close(self) -> None:
        self._closed = True
        for timer in list(self._retry_timers.values()) + [self._health_timer]:
            if timer is not None:
                timer.cancel()
        self._retry_timers.clear()
        self._health_timer = None
        for role, link in self._links.items():
            if link is not None:
                link.close()
            self._links[role] = None
        self._up = False

    # -- public helpers -------------------------------------------------------------------
    def channel(self, topic: str) -> bytes:
        """The Redis channel of ``topic``: the prefix, then the topic (UTF-8)."""
        return self._prefix_bytes + topic.encode("utf-8")

    def bind(self, loop: Loop) -> None:
        """Run on ``loop`` and start connecting (a second call with another loop is an error)."""
        if self.loop is loop:
            return
        if self.loop is not None:
            raise RuntimeError("this Redis backplane already runs on another loop")
        self.loop = loop
        self._quiet_log.call_later = loop.call_later  # a burst's last count is written when it ends
        if self._closed:
            return
        self._connect("subscriber")
        self._connect("publisher")
        self._health_timer = loop.call_every(self.health_interval, self._check_health)

    @property
    def connected(self) -> bool:
        """True while both connections to Redis are up."""
        return self._up

    def stats(self) -> Dict[str, int]:
        """Counters: ``published`` (written to Redis), ``received`` (from Redis),
        ``dropped`` (never sent: queue or buffer full), ``lost_in_flight``
        (written but unconfirmed when a connection failed), ``garbage``
        (connections dropped for a bad reply), ``malformed`` (publications
        with a broken envelope, ignored; the first is logged), ``refused``
        (PUBLISH answered with an error, e.g. a read-only replica; the first
        is logged), ``reconnects``, ``queued`` (waiting now)."""
        result = dict(self.counters)
        result["queued"] = len(self._pending)
        return result

    def tls_context(self) -> Any:
        """The ``ssl.SSLContext`` used for ``rediss://`` (made on first use)."""
        if self._ssl_context is None:
            import ssl

            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    # -- publishing -------------------------------------------------------------------------
    def _send_publish(self, link: _Link, command: bytes) -> None:
        if link.buffered > self.max_buffer:
            self._drop(1, "Redis is not reading fast enough (%d bytes waiting)" % link.buffered)
            return
        link.write(command)
        self._unacknowledged += 1
        self.counters["published"] += 1

    def _queue(self, command: bytes) -> None:
        if self.max_pending == 0 or len(command) > self.max_buffer:
            self._drop(1, "a publication could not be queued for Redis (max_pending=%d, max_buffer=%d)"
                       % (self.max_pending, self.max_buffer))
            return
        while self._pending and (len(self._pending) >= self.max_pending
                                 or self._pending_bytes + len(command) > self.max_buffer):
            self._pending_bytes -= len(self._pending.popleft())
            self._drop(1, "the queue of publications waiting for Redis is full (%d publications or %d bytes); "
                       "dropping the oldest" % (self.max_pending, self.max_buffer))
        self._pending.append(command)
        self._pending_bytes += len(command)

    def _drop(self, count: int, why: str) -> None:
        self.counters["dropped"] += count
        self._outage_dropped += count
        if not self._reported_dropping:
            self._reported_dropping = True
            log.warning("redis %s: %s (counted in stats()['dropped'])", self.address.display(), why)

    def _flush_pending(self, link: _Link) -> None:
        while self._pending and link.ready:
            command = self._pending.popleft()
            self._pending_bytes -= len(command)
            self._send_publish(link, command)

    # -- connections ---------------------------------------------------------------------------
    def _connect(self, role: str) -> None:
        self._retry_timers.pop(role, None)
        if self._closed or self.loop is None:
            return
        on_reply = self._subscriber_reply if role == "subscriber" else self._publisher_reply
        link = _Link(role, self, self.loop, self._link_ready, on_reply, self._link_lost)
        self._links[role] = link
        link.start()

    def _link_ready(self, link: _Link) -> None:
        self._backoff[link.name] = self.min_backoff
        if link.name == "subscriber":
            channels = sorted(self._channels)
            for start in range(0, len(channels), _CHANNELS_PER_COMMAND):
                link.write(encode_command("SUBSCRIBE", *channels[start:start + _CHANNELS_PER_COMMAND]))
        else:
            self._unacknowledged = 0
            self._flush_pending(link)
        self._update_state(None)

    def _link_lost(self, link: _Link, reason: str, garbage: bool) -> None:
        if self._links.get(link.name) is link:
            self._links[link.name] = None
        if garbage:
            self.counters["garbage"] += 1
            self._quiet_log.warning("garbage", "redis %s (%s connection): %s; reconnecting",
                                    self.address.display(), link.name, reason)
        if link.name == "publisher" and self._unacknowledged:
            self.counters["lost_in_flight"] += self._unacknowledged
            self._unacknowledged = 0
        self._update_state(reason)
        if self._closed or self.loop is None:
            return
        delay = self._backoff[link.name]
        self._backoff[link.name] = min(delay * 2, self.max_backoff)
        # Jitter, so that many servers do not reconnect in step after a Redis restart.
        delay *= random.uniform(0.5, 1.0)
        self._retry_timers[link.name] = self.loop.call_later(delay, self._retry, link.name)

    def _retry(self, role: str) -> None:
        self.counters["reconnects"] += 1
        if self._ever_up and not self._reported_reconnecting:
            self._reported_reconnecting = True
            log.info("redis %s: reconnecting (every %g s at most, until it answers)",
                     self.address.display(), self.max_backoff)
        self._connect(role)

    def _update_state(self, reason: Optional[str]) -> None:
        """Log the transitions of the pair of connections: lost, reconnecting, restored."""
        assert self.loop is not None
        links = list(self._links.values())
        up = all(link is not None and link.ready for link in links)
        if up and not self._up:
            self._up = True
            if not self._ever_up:
                self._ever_up = True
                if self._reported_down:
                    log.warning("redis %s: connected after %.1f s of retrying", self.address.display(),
                                self.loop.time() - (self._outage_since or self.loop.time()))
                else:
                    log.info("redis %s: connected (channel prefix %r)", self.address.display(), self.prefix)
            else:
                log.warning("redis %s: restored after %.1f s; %d channels subscribed again; "
                            "%d publications dropped meanwhile", self.address.display(),
                            self.loop.time() - (self._outage_since or self.loop.time()),
                            len(self._channels), self._outage_dropped)
            self._outage_since = None
            self._reported_down = self._reported_reconnecting = self._reported_dropping = False
            self._outage_dropped = 0
        elif reason is not None and not up:
            if self._outage_since is None:
                self._outage_since = self.loop.time()
            self._up = False
            if not self._reported_down:
                self._reported_down = True
                if self._ever_up:
                    log.warning("redis %s: connection lost (%s); local delivery goes on, up to %d "
                                "publications are queued", self.address.display(), reason, self.max_pending)
                else:
                    log.error("redis %s: cannot connect (%s); retrying every %g s at most",
                              self.address.display(), reason, self.max_backoff)
            else:
                self._quiet_log.info("attempt", "redis %s: attempt failed (%s)", self.address.display(), reason)

    def _check_health(self) -> None:
        # A link silent for a whole interval gets a PING; one whose PING has
        # gone unanswered for an interval is dropped.  Only an unanswered PING
        # fails a link: silence alone (a quiet channel) never does.
        assert self.loop is not None
        now = self.loop.time()
        for link in list(self._links.values()):
            if link is None or not link.ready:
                continue
            if link.ping_sent is not None:
                if now - link.ping_sent >= self.health_interval:
                    link.fail("no answer to PING for %.0f s" % (now - link.ping_sent))
            elif now - link.last_received >= self.health_interval:
                link.ping()

    # -- replies -------------------------------------------------------------------------------
    def _subscriber_reply(self, link: _Link, reply: Reply) -> None:
        message = split_message(reply)
        if message is None:
            if reply == "PONG":  # a PING answered while no channel is subscribed
                return
            if isinstance(reply, RedisError):
                log.error("redis %s refused a subscription: %s", self.address.display(), reply.message)
                return
            link.fail("unexpected reply %r on the subscriber connection" % (reply,))
            return
        kind, rest = message
        if kind == b"message" and len(rest) == 2 and isinstance(rest[0], bytes) and isinstance(rest[1], bytes):
            self._received(rest[0], rest[1])
        elif kind in (b"subscribe", b"unsubscribe", b"pong"):
            pass
        else:
            link.fail("unexpected push %r on the subscriber connection" % (kind,))

    def _received(self, channel: bytes, data: bytes) -> None:
        self.counters["received"] += 1
        hub: Optional[Topics] = getattr(self, "hub", None)  # set by attach()
        if not channel.startswith(self._prefix_bytes) or hub is None:
            return
        try:
            topic = channel[len(self._prefix_bytes):].decode("utf-8")
            publication = envelope.decode(topic, data)
        except (UnicodeDecodeError, envelope.EnvelopeError) as exc:
            self.counters["malformed"] += 1
            # once at WARNING, then quietly: a misbehaving publisher must not flood the log
            log.log(logging.WARNING if self.counters["malformed"] == 1 else logging.DEBUG,
                    "redis %s: ignored a malformed publication on %r: %s (counted in stats()['malformed'])",
                    self.address.display(), channel[:100], exc)
            return
        try:
            hub.deliver_remote(publication)
        except Exception:
            log.exception("delivering a publication from redis on %r failed", publication.topic)

    def _publisher_reply(self, link: _Link, reply: Reply) -> None:
        if isinstance(reply, int):
            if self._unacknowledged:
                self._unacknowledged -= 1
        elif isinstance(reply, RedisError):
            if self._unacknowledged:
                self._unacknowledged -= 1
            self.counters["dropped"] += 1
            self.counters["refused"] += 1
            log.log(logging.ERROR if self.counters["refused"] == 1 else logging.DEBUG,
                    "redis %s refused a PUBLISH: %s (counted in stats()['refused'])",
                    self.address.display(), reply.message)
        elif reply != "PONG":
            link.fail("unexpected reply %r on the publisher connection" % (reply,))


class RedisPubSub(Topics):
    """A :class:`Topics` hub spanning every process connected to one Redis server.

    ``url``: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://``
    (TLS).  ``loop``: the loop to run on; when ``None`` the hub binds itself
    to the loop of the first connection that subscribes (or call
    :meth:`bind`).  ``prefix``: channel ``<prefix><topic>``.  Other keywords
    go to :class:`RedisBackplane` (timeouts, backoff, queue and size limits,
    ``ssl_context``).  The interface is that of :class:`Topics`.
    """

    backplane: RedisBackplane

    def __init__(self, url: str, *, loop: Optional[Loop] = None, prefix: str = DEFAULT_PREFIX,
                 **options: Any) -> None:
        super().__init__(RedisBackplane(url, loop=loop, prefix=prefix, **options))

    def bind(self, loop: Loop) -> None:
        """Run on ``loop`` and connect to Redis now (idempotent for the same loop)."""
        self.backplane.bind(loop)

    def subscribe(self, conn: Any, topic: str) -> bool:
        if self.backplane.loop is None:
            loop = getattr(conn, "loop", None)
            if loop is not None:
                self.bind(loop)
        return super().subscribe(conn, topic)

    subscribe.__doc__ = Topics.subscribe.__doc__

    @property
    def connected(self) -> bool:
        """True while both connections to Redis are up."""
        return self.backplane.connected

    def stats(self) -> Dict[str, int]:
        """The backplane's counters (:meth:`RedisBackplane.stats`)."""
        return self.backplane.stats()
