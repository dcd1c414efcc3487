"""Publishing from another program: a blocking client for Redis or ``POST /publish``.

A web view, a cron job or a worker queue that wants to push to the WebSocket
clients needs nothing but this module (standard library only, no loop)::

    from ratchet_sel.pubsub import publish

    publish("redis://127.0.0.1:6379/0", "news", "a new post")         # -> 2 (servers reached)
    publish("http://127.0.0.1:8000/publish?token=s3cret", "news", "hi")  # -> the endpoint's JSON

Through Redis the message is wrapped in the envelope the servers use among
themselves (:mod:`ratchet_sel.pubsub.envelope`), so ``bytes`` arrive as a
binary message and ``str`` as a text message.  The HTTP endpoint carries text
only.  :class:`Publisher` keeps its connection for many publications.
"""

import http.client
import json
import secrets
import select
import socket
import ssl
import threading
from typing import Any, Dict, List, Optional, Union
from urllib.parse import parse_qsl, urlencode, urlsplit

from . import envelope
from .redis import DEFAULT_PREFIX, RedisAddress, parse_redis_url
from .resp import RedisError, RespParser, RespProtocolError, encode_command

__all__ = ["publish", "Publisher", "PublishError"]

Message = Union[str, bytes, bytearray, memoryview]


class PublishError(Exception):
    """A publication was refused: by Redis (an error reply) or by the endpoint (an HTTP status).

    ``url`` is the publisher's address (without password or token),
    ``status`` the HTTP status (``None`` for Redis) and ``detail`` what the
    other side said.
    """

    def __init__(self, url: str, detail: str, status: Optional[int] = None) -> None:
        super().__init__("%s: %s%s" % (url, "%d " % status if status is not None else "", detail))
        self.url = url
        self.detail = detail
        self.status = status


def publish(url: str, topic: str, message: Message, *, timeout: float = 5.0, prefix: str = DEFAULT_PREFIX,
            token: Optional[str] = None, ssl_context: Optional[ssl.SSLContext] = None) -> Any:
    """Publish ``message`` to ``topic`` once, through ``url``; blocking, at most ``timeout`` seconds per step.

    ``url`` is ``redis://[[user]:password@]host[:port][/db]`` (``rediss://`` for
    TLS) or the ``http(s)://host:port/publish`` endpoint of a server started
    with a publish token (``?token=TOKEN`` in the URL, or ``token=``).
    Returns what the transport reports: through Redis the number of server
    processes subscribed to the topic that received it, over HTTP the
    endpoint's JSON answer (``{"topic": ..., "local_subscribers": N}``).

    Raises :class:`PublishError` for a refusal (wrong token, a Redis error
    reply), ``TimeoutError`` or ``OSError`` (naming the address) when the
    other side cannot be reached, ``ValueError`` for a bad URL or message.
    """
    with Publisher(url, timeout=timeout, prefix=prefix, token=token, ssl_context=ssl_context) as publisher:
        return publisher.publish(topic, message)


class Publisher:
    """A blocking publisher that connects once and publishes many times (see :func:`publish`).

    Connects on the first :meth:`publish`; a connection that the other side
    closed meanwhile is made anew before the next publication.  A failed
    publication is not retried (it may have been delivered).  Safe to share
    between threads (one publication at a time); :meth:`close` or a ``with``
    block ends it.
    """

    def __init__(self, url: str, *, timeout: float = 5.0, prefix: str = DEFAULT_PREFIX,
                 token: Optional[str] = None, ssl_context: Optional[ssl.SSLContext] = None) -> None:
        if timeout is None or timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds, not %r" % (timeout,))
        self.timeout = timeout
        self.prefix = prefix
        scheme = url.split(":", 1)[0].lower()
        self._lock = threading.Lock()
        self._transport: Union[_RedisLink, _HttpLink]
        if scheme in ("redis", "rediss"):
            self._transport = _RedisLink(parse_redis_url(url), timeout, ssl_context)
        elif scheme in ("http", "https"):
            self._transport = _HttpLink(url, timeout, token, ssl_context)
        else:
            raise ValueError("a publisher URL starts with redis://, rediss://, http:// or https://, not %r"
                             % url.split(":", 1)[0][:20])
        #: The origin stamped on this publisher's envelopes: never a server's own node id,
        #: so a server in the same process delivers them too.
        self.origin = "publisher-" + secrets.token_hex(8)

    @property
    def url(self) -> str:
        """The address published to, without password or token."""
        return self._transport.display

    def publish(self, topic: str, message: Message) -> Any:
        """Publish ``message`` (``str``: text, ``bytes``: binary) to ``topic``; see :func:`publish`."""
        if not isinstance(topic, str) or not topic:
            raise ValueError("the topic must be a non-empty string, not %r" % (topic,))
        if not isinstance(message, (str, bytes, bytearray, memoryview)):
            raise TypeError("a message is str (text) or bytes (binary), not %s" % type(message).__name__)
        with self._lock:
            if isinstance(self._transport, _RedisLink):
                payload = message if isinstance(message, str) else bytes(message)
                data = envelope.encode(envelope.Publication(topic, payload, origin=self.origin))
                return self._transport.publish(self.prefix + topic, data)
            return self._transport.publish(topic, message)

    def close(self) -> None:
        """Close the connection (a later :meth:`publish` connects again)."""
        with self._lock:
            self._transport.close()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<Publisher %s>" % self.url


def _stale(sock: Optional[socket.socket]) -> bool:
    """True when an idle connection has something to read: the peer closed it (or spoke out of turn)."""
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _reraise(exc: OSError, display: str, doing: str) -> OSError:
    """``exc`` again, its message naming the address (``TimeoutError`` for a timeout)."""
    if isinstance(exc, socket.timeout) or isinstance(exc, TimeoutError):
        return TimeoutError("%s: no answer within the timeout while %s" % (display, doing))
    if isinstance(exc, ssl.SSLError):
        return OSError("%s: TLS failed while %s: %s" % (display, doing, exc))
    reason = exc.strerror or str(exc) or type(exc).__name__
    try:
        return type(exc)(exc.errno, "%s: %s while %s" % (display, reason, doing))
    except TypeError:
        return OSError(exc.errno, "%s: %s while %s" % (display, reason, doing))


class _RedisLink:
    """One blocking RESP2 connection: AUTH and SELECT when connecting, then PUBLISH."""

    def __init__(self, address: RedisAddress, timeout: float, ssl_context: Optional[ssl.SSLContext]) -> None:
        self.address = address
        self.display = address.display()
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.sock: Optional[socket.socket] = None
        self.parser = RespParser()

    def connect(self) -> None:
        address = self.address
        try:
            sock = socket.create_connection((address.host, address.port), timeout=self.timeout)
        except OSError as exc:
            raise _reraise(exc, self.display, "connecting") from None
        try:
            if address.tls:
                context = self.ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=address.host)
        except OSError as exc:
            sock.close()
            raise _reraise(exc, self.display, "in the TLS handshake") from None
        self.sock = sock
        self.parser = RespParser()
        login: List[bytes] = []
        if address.password is not None:
            credentials = (address.username, address.password) if address.username else (address.password,)
            login.append(encode_command("AUTH", *credentials))
        if address.db:
            login.append(encode_command("SELECT", address.db))
        if login:
            self.exchange(login, "logging in")

    def exchange(self, commands: List[bytes], doing: str) -> Any:
        """Send ``commands``, read one reply each; the last reply (an error reply raises)."""
        sock = self.sock
        assert sock is not None
        replies: List[Any] = []
        try:
            sock.sendall(b"".join(commands))
            while len(replies) < len(commands):
                data = sock.recv(65536)
                if not data:
                    raise ConnectionResetError(0, "Redis closed the connection")
                replies.extend(self.parser.feed(data))
        except RespProtocolError as exc:
            self.close()
            raise PublishError(self.display, "not a Redis reply while %s: %s" % (doing, exc)) from None
        except OSError as exc:
            self.close()
            raise _reraise(exc, self.display, doing) from None
        for reply in replies:
            if isinstance(reply, RedisError):
                if doing == "logging in":
                    self.close()
                raise PublishError(self.display, "Redis refused (%s): %s" % (doing, reply.message))
        return replies[-1]

    def publish(self, channel: str, data: bytes) -> int:
        if _stale(self.sock):
            self.close()
        if self.sock is None:
            self.connect()
        reply = self.exchange([encode_command("PUBLISH", channel, data)], "publishing")
        if not isinstance(reply, int):
            raise PublishError(self.display, "unexpected reply to PUBLISH: %r" % (reply,))
        return reply

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


class _HttpLink:
    """A keep-alive HTTP(S) connection to a :class:`~ratchet_sel.pubsub.PublishEndpoint`."""

    def __init__(self, url: str, timeout: float, token: Optional[str], ssl_context: Optional[ssl.SSLContext]) -> None:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError("no host in the publish URL %r" % url.split("?", 1)[0])
        query = parse_qsl(parts.query, keep_blank_values=True)
        from_url = [value for name, value in query if name == "token"]
        given = token if token is not None else (from_url[0] if from_url else None)
        if not given:
            raise ValueError("publishing over HTTP needs the server's publish token "
                             "(?token=TOKEN in the URL, or token=)")
        self.token: str = given
        self.query = [(name, value) for name, value in query if name not in ("token", "topic")]
        self.tls = parts.scheme.lower() == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.path = parts.path or "/publish"
        host = "[%s]" % self.host if ":" in self.host else self.host
        self.display = "%s://%s:%d%s" % (parts.scheme.lower(), host, self.port, self.path)
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.conn: Optional[http.client.HTTPConnection] = None

    def publish(self, topic: str, message: Message) -> Dict[str, Any]:
        if isinstance(message, str):
            body = message.encode("utf-8")
        else:
            raise ValueError("%s: the HTTP endpoint carries text only (pass a str); "
                             "publish binary messages through redis://" % self.display)
        if self.conn is not None and _stale(self.conn.sock):
            self.close()
        if self.conn is None:
            if self.tls:
                self.conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                        context=self.ssl_context or ssl.create_default_context())
            else:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        target = self.path + "?" + urlencode(self.query + [("topic", topic)])
        headers = {"Authorization": "Bearer " + self.token, "Content-Type": "text/plain; charset=utf-8"}
        try:
            self.conn.request("POST", target, body=body, headers=headers)
            response = self.conn.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            if isinstance(exc, OSError):
                raise _reraise(exc, self.display, "publishing") from None
            raise OSError("%s: %s while publishing" % (self.display, exc or type(exc).__name__)) from None
        if response.will_close:
            self.close()
        text = answer.decode("utf-8", "replace").strip()
        if response.status != 200:
            raise PublishError(self.display, text or response.reason, response.status)
        try:
            return json.loads(text)
        except ValueError:
            raise PublishError(self.display, "the answer is not JSON: %r" % text[:200], response.status) from None

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None
