"""The client side of the RFC 6455 opening handshake, sans-IO.

:func:`parse_url` splits a ``ws://``/``wss://`` URL; :class:`ClientHandshake`
builds the upgrade request and checks the server's answer as its bytes arrive,
raising :class:`HandshakeError` with a message that says what the server did
wrong (a status other than 101 with the first line of its body, a wrong
``Sec-WebSocket-Accept``, an extension or subprotocol that was never offered).
"""

import base64
import secrets
from typing import Any, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from ..http.request import Headers, header_tokens
from ..websocket.deflate import DeflateOffer
from ..websocket.handshake import accept_key

__all__ = ["Target", "parse_url", "ClientHandshake", "HandshakeError", "WebSocketClientError",
           "MAX_RESPONSE_HEAD", "MAX_ERROR_BODY", "split_header"]

#: The largest response head (status line and headers) accepted.
MAX_RESPONSE_HEAD = 64 * 1024
#: How much of a refusal's body is read to quote its first line.
MAX_ERROR_BODY = 4096


class WebSocketClientError(Exception):
    """Base of the errors the client raises."""


class HandshakeError(WebSocketClientError):
    """The server did not complete a valid opening handshake.

    ``status`` is the HTTP status it answered with (``None`` when the answer
    was not HTTP at all), ``body`` the first line of the body of a refusal.
    """

    def __init__(self, message: str, status: Optional[int] = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class Target:
    """Where a ``ws://``/``wss://`` URL points: ``secure``, ``host``, ``port``, ``resource``."""

    __slots__ = ("url", "secure", "host", "port", "resource")

    def __init__(self, url: str, secure: bool, host: str, port: int, resource: str) -> None:
        self.url = url
        self.secure = secure
        self.host = host
        self.port = port
        self.resource = resource

    @property
    def host_header(self) -> str:
        """The Host header: the port only when it is not the scheme's default."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else "%s:%d" % (host, self.port)


def parse_url(url: str) -> Target:
    """Split a WebSocket URL; :class:`ValueError` for anything else (RFC 6455 3)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ValueError("not a WebSocket URL (ws:// or wss://): %r" % url)
    if parts.fragment:
        raise ValueError("a WebSocket URL has no fragment: %r" % url)
    if not parts.hostname:
        raise ValueError("no host in %r" % url)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("bad port in %r" % url) from None
    secure = scheme == "wss"
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return Target(url, secure, parts.hostname, port or (443 if secure else 80), resource)


def _check_token(kind: str, value: str) -> str:
    if not value or any(c in value for c in '\r\n,;"') or value != value.strip():
        raise ValueError("invalid %s %r" % (kind, value))
    return value


class ClientHandshake:
    """One opening handshake: :attr:`request` to send, :meth:`feed` with what comes back.

    ``headers`` are extra request headers (a mapping or (name, value)
    pairs); ``offer`` is a :class:`~ratchet_sel.websocket.deflate.DeflateOffer`
    or ``None``.  After :meth:`feed` returned True: ``status``,
    ``response_headers``, ``subprotocol``, ``extension`` and ``leftover`` (the
    bytes after the head, the server's first frames).
    """

    def __init__(self, target: Target, *, subprotocols: Sequence[str] = (), headers: Any = None,
                 origin: Optional[str] = None, offer: Optional[DeflateOffer] = None) -> None:
        self.target = target
        self.subprotocols = [_check_token("subprotocol", name) for name in subprotocols]
        self.offer = offer
        self.key = base64.b64encode(secrets.token_bytes(16)).decode("ascii")
        lines = ["GET %s HTTP/1.1" % target.resource,
                 "Host: " + target.host_header,
                 "Upgrade: websocket",
                 "Connection: Upgrade",
                 "Sec-WebSocket-Key: " + self.key,
                 "Sec-WebSocket-Version: 13"]
        if origin is not None:
            lines.append("Origin: " + origin)
        if self.subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(self.subprotocols))
        if offer is not None:
            lines.append("Sec-WebSocket-Extensions: " + offer.header_value())
        pairs = headers.items() if hasattr(headers, "items") else (headers or ())
        for name, value in pairs:
            if any(c in str(name) + str(value) for c in "\r\n") or not str(name).strip():
                raise ValueError("invalid header %r: %r" % (name, value))
            lines.append("%s: %s" % (name, value))
        #: The request bytes to send.
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        self.status: Optional[int] = None
        self._reason_phrase = ""
        self.response_headers = Headers()
        self.subprotocol: Optional[str] = None
        self.extension: Any = None
        self.leftover = b""
        self._buffer = bytearray()
        self._refusal: Optional[HandshakeError] = None

    def feed(self, data: bytes) -> bool:
        """Add response bytes; True once the handshake is settled (the rest is ``leftover``).

        Raises :class:`HandshakeError` when the answer is invalid, or, for a
        refusal, once enough of its body has arrived to quote.
        """
        if self._refusal is not None:
            self._buffer += data
            if self._refusal_body_complete():
                self.eof()
            return False
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_RESPONSE_HEAD:
                raise HandshakeError("the response head exceeds %d bytes" % MAX_RESPONSE_HEAD)
            return False
        head = bytes(self._buffer[:end])
        rest = bytes(self._buffer[end + 4:])
        self._buffer = bytearray(rest)
        self._parse_head(head)
        if self.status != 101:
            self._refusal = HandshakeError("", self.status)
            if self._refusal_body_complete():
                self.eof()
            return False
        self._check_upgrade()
        self.leftover = rest
        self._buffer = bytearray()
        return True

    @property
    def refused(self) -> bool:
        """True once a non-101 status has arrived (the error waits for the first line of the body)."""
        return self._refusal is not None

    def eof(self) -> None:
        """The server closed the connection (or went quiet) before the handshake was settled: raise."""
        if self._refusal is None:
            raise HandshakeError("the server closed the connection before completing the handshake"
                                 + (" (it sent %d bytes of an unfinished response)" % len(self._buffer)
                                    if self._buffer else ""))
        body = self._body_first_line().decode("utf-8", "replace")
        status_line = "%d %s" % (self.status or 0, self._reason_phrase)
        message = "the server refused the upgrade: HTTP %s" % status_line.strip()
        if body:
            message += ": " + body
        raise HandshakeError(message, self.status, body)

    def _chunked(self) -> bool:
        return "chunked" in header_tokens(self.response_headers.get("Transfer-Encoding"))

    def _body_first_line(self) -> bytes:
        body = bytes(self._buffer[:MAX_ERROR_BODY])
        if self._chunked():
            body = body.partition(b"\n")[2]  # skip the chunk size line
        return body.split(b"\n", 1)[0].strip()

    def _refusal_body_complete(self) -> bool:
        length = self.response_headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and len(self._buffer) >= int(length):
            return True
        lines_needed = 2 if self._chunked() else 1
        return self._buffer.count(b"\n") >= lines_needed or len(self._buffer) >= MAX_ERROR_BODY

    def _parse_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
            raise HandshakeError("the server did not answer with HTTP: %r" % lines[0][:100])
        self.status = int(parts[1])
        self._reason_phrase = parts[2] if len(parts) > 2 else ""
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise HandshakeError("malformed response header line %r" % line[:100], self.status)
            self.response_headers.add(name, value.strip())

    def _check_upgrade(self) -> None:
        # RFC 6455 4.1, the client's checks of the server's handshake.
        headers = self.response_headers
        if "websocket" not in header_tokens(headers.get("Upgrade")):
            raise HandshakeError("the 101 response lacks 'Upgrade: websocket'", 101)
        if "upgrade" not in header_tokens(headers.get("Connection")):
            raise HandshakeError("the 101 response lacks 'Connection: Upgrade'", 101)
        accepts = headers.get_all("Sec-WebSocket-Accept")
        expected = accept_key(self.key)
        if len(accepts) != 1 or accepts[0].strip() != expected:
            raise HandshakeError("wrong Sec-WebSocket-Accept %r (expected %r)"
                                 % (", ".join(accepts), expected), 101)
        protocols: List[str] = []
        for value in headers.get_all("Sec-WebSocket-Protocol"):
            protocols.extend(p.strip() for p in value.split(",") if p.strip())
        if len(protocols) > 1:
            raise HandshakeError("the server chose several subprotocols: %s" % ", ".join(protocols), 101)
        if protocols:
            if protocols[0] not in self.subprotocols:
                raise HandshakeError("the server chose subprotocol %r, which was not offered" % protocols[0], 101)
            self.subprotocol = protocols[0]
        extension_values = headers.get_all("Sec-WebSocket-Extensions")
        if extension_values:
            if self.offer is None:
                raise HandshakeError("the server accepted extensions %r, but none was offered"
                                     % ", ".join(extension_values), 101)
            try:
                self.extension = self.offer.accept(extension_values)
            except ValueError as exc:
                raise HandshakeError("invalid extension answer %r: %s" % (", ".join(extension_values), exc),
                                     101) from None


def split_header(text: str) -> Tuple[str, str]:
    """``"Name: value"`` (as given on a command line) -> (name, value)."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise ValueError("a header is 'Name: value', not %r" % text)
    return name.strip(), value.strip()
