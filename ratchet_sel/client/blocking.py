"""The blocking client: ``connect(url)`` for scripts, tests and probes.

Everything happens on the calling thread: ``recv`` reads the socket until a
message is complete, answering pings and closes on the way.  One connection
is meant for one thread at a time.
"""

import socket
import time
from collections import deque
from typing import Any, Deque, Iterator, Optional, Sequence, Union

from ..io.stream import RECV_SIZE, send_small_writes_at_once
from ..websocket.rfc6455 import CloseCode, Message
from .handshake import ClientHandshake, parse_url
from .options import client_offer, client_ssl_context, connect_error
from .protocol import DEFAULT_MAX_MESSAGE_SIZE, ClientProtocol, ConnectionClosed

__all__ = ["connect", "ClientConnection"]

#: How long close() waits for the server's close frame when no timeout was given.
_DEFAULT_CLOSE_WAIT = 10.0


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    return max(deadline - time.monotonic(), 0.0)


def connect(url: str, *, subprotocols: Sequence[str] = (), headers: Any = None, origin: Optional[str] = None,
            timeout: Optional[float] = 10, compression: Any = True, ssl_context: Any = None,
            max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> "ClientConnection":
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``) and return it.

    - ``subprotocols``: offered in order; the server's choice is ``conn.subprotocol``.
    - ``headers``: extra request headers (a mapping or (name, value) pairs);
      ``origin`` sets the Origin header.
    - ``timeout``: seconds for connecting plus the opening handshake, and for
      the closing handshake; :class:`TimeoutError` when it passes.
    - ``compression``: True offers permessage-deflate with the defaults, a
      :class:`~ratchet_sel.websocket.deflate.DeflateOffer` offers that,
      False/None offers nothing.
    - ``ssl_context``: for ``wss://``; the default verifies the certificate
      and host name against the system's CAs.
    - ``max_message_size``: the largest message accepted (1009 beyond it).

    Raises :class:`HandshakeError` when the server refuses or answers
    wrongly, :class:`OSError` when it cannot be reached (of the cause's type,
    naming the address: ``ConnectionRefusedError: cannot connect to
    127.0.0.1:1234: Connection refused``).
    """
    target = parse_url(url)
    deadline = None if timeout is None else time.monotonic() + timeout
    handshake = ClientHandshake(target, subprotocols=subprotocols, headers=headers, origin=origin,
                                offer=client_offer(compression))
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
    except socket.timeout:
        raise TimeoutError("no TCP connection to %s:%d within %s s" % (target.host, target.port, timeout)) from None
    except OSError as exc:
        raise connect_error(exc, target.host, target.port) from None
    try:
        send_small_writes_at_once(sock)
        if target.secure:
            context = ssl_context if ssl_context is not None else client_ssl_context()
            sock.settimeout(_remaining(deadline))
            try:
                sock = context.wrap_socket(sock, server_hostname=target.host)
            except socket.timeout:
                raise TimeoutError("no TLS handshake with %s:%d within %s s"
                                   % (target.host, target.port, timeout)) from None
            except OSError as exc:
                raise connect_error(exc, target.host, target.port) from None
        sock.settimeout(_remaining(deadline))
        sock.sendall(handshake.request)
        while True:
            sock.settimeout(_remaining(deadline))
            try:
                data = sock.recv(RECV_SIZE)
            except socket.timeout:
                if handshake.refused:
                    handshake.eof()  # the refusal's status is the answer, body or not
                raise TimeoutError("no complete handshake response from %s within %s s"
                                   % (target.url, timeout)) from None
            if not data:
                handshake.eof()
            if handshake.feed(data):
                break
    except BaseException:
        sock.close()
        raise
    protocol = ClientProtocol(handshake.extension, max_message_size,
                              close_timeout=_DEFAULT_CLOSE_WAIT if timeout is None else timeout)
    return ClientConnection(sock, protocol, handshake, close_timeout=timeout)


class ClientConnection:
    """An open client connection (made by :func:`connect`).

    ``subprotocol`` (``None`` if none was agreed), ``response_headers`` (the
    101 response's headers), ``extension`` (the permessage-deflate state or
    ``None``), ``close_code``/``close_reason`` once closed.  ``close_timeout``
    (the ``timeout`` of :func:`connect`) also bounds a send to a server that
    stopped reading: :class:`TimeoutError`, and the connection is dropped.  Iterating yields
    messages until the server closes normally; an abnormal close raises
    :class:`ConnectionClosed`.  As a context manager it closes with 1000 on exit.
    """

    def __init__(self, sock: socket.socket, protocol: ClientProtocol, handshake: ClientHandshake,
                 close_timeout: Optional[float] = 10) -> None:
        self.socket = sock
        self.url = handshake.target.url
        self.subprotocol = handshake.subprotocol
        self.response_headers = handshake.response_headers
        self.extension = handshake.extension
        self.close_timeout = close_timeout
        self._protocol = protocol
        self._messages: Deque[Union[str, bytes]] = deque()
        #: Payloads of pongs received (answers to :meth:`ping`), oldest first.
        self.pongs: Deque[bytes] = deque(maxlen=64)
        self._eof = False
        if handshake.leftover:  # the server's first frames, read with its handshake response
            self._receive(handshake.leftover)

    def __repr__(self) -> str:
        return "<ClientConnection %s %s>" % (self.url, "open" if self.is_open else "closed")

    @property
    def is_open(self) -> bool:
        """True until a close frame was sent or received, or the connection dropped."""
        return self._protocol.is_open

    @property
    def close_code(self) -> Optional[int]:
        """The close code once closed (see :class:`ConnectionClosed`), else ``None``."""
        return self._protocol.closed.code if self._protocol.closed is not None else None

    @property
    def close_reason(self) -> str:
        """The close reason once closed."""
        return self._protocol.closed.reason if self._protocol.closed is not None else ""

    # -- sending ------------------------------------------------------------
    def send(self, message: Union[str, bytes, bytearray, memoryview], fragment_size: int = 0) -> None:
        """Send a text (``str``) or binary (bytes-like) message; blocks until the kernel took it.

        ``fragment_size`` > 0 splits it into frames of that many bytes.
        Raises :class:`ConnectionClosed` once the connection is closing.
        """
        self._protocol.send(message, fragment_size)
        self._flush()

    def ping(self, payload: Union[str, bytes] = b"") -> None:
        """Send a ping; its pong shows up in :attr:`pongs` during a later :meth:`recv`."""
        self._protocol.ping(payload)
        self._flush()

    def _flush(self) -> None:
        data = self._protocol.data_to_send()
        if data:
            # A server that stops reading must not block us for ever; a frame
            # cut short cannot be resumed, so the connection is dropped.
            self.socket.settimeout(self.close_timeout)
            try:
                self.socket.sendall(data)
            except socket.timeout:
                self._abort()
                raise TimeoutError("the server did not read what we sent within %s s" % self.close_timeout) from None
            except OSError:
                self._lost()
                raise self._protocol.closed or ConnectionClosed(CloseCode.ABNORMAL) from None

    def _abort(self) -> None:
        self._lost()
        try:
            self.socket.close()
        except OSError:
            pass

    # -- receiving -----------------------------------------------------------
    def recv(self, timeout: Optional[float] = None) -> Union[str, bytes]:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Waits at most ``timeout`` seconds (``None``: for ever) and raises
        :class:`TimeoutError` after that (the connection stays usable).
        Raises :class:`ConnectionClosed` (code, reason) once the connection
        has closed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._messages:
            # Every message before a held-back close or error has been taken: act on it.
            self._protocol.end_pending()
            self._flush_quietly()
            if self._protocol.closed is not None:
                self._finish_close()
                raise self._protocol.closed
            self._read(deadline, timeout)
        return self._messages.popleft()

    def _read(self, deadline: Optional[float], timeout: Optional[float]) -> None:
        self.socket.settimeout(_remaining(deadline))
        try:
            data = self.socket.recv(RECV_SIZE)
        except socket.timeout:
            raise TimeoutError("no message within %s s" % timeout) from None
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        self._receive(data)

    def _receive(self, data: bytes) -> None:
        for event in self._protocol.receive(data):
            if event.__class__ is Message:
                self._messages.append(event.data)
            else:
                self.pongs.append(event.payload)
        self._flush_quietly()

    def _flush_quietly(self) -> None:
        try:
            self._flush()
        except ConnectionClosed:
            pass

    def _lost(self) -> None:
        self._eof = True
        self._protocol.connection_lost()

    def __iter__(self) -> Iterator[Union[str, bytes]]:
        """Messages until the server closes normally (an abnormal close raises)."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosed as exc:
                if exc.ok and not self._messages:
                    return
                raise

    # -- closing -------------------------------------------------------------------
    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close: send a close frame, wait (``close_timeout``) for the server's, then for it to end TCP.

        Messages still arriving meanwhile are discarded.  Does nothing if
        already closed.
        """
        protocol = self._protocol
        if protocol.closed is None:
            protocol.close(code, reason)
            self._flush_quietly()
            wait = protocol.expect_close_within or protocol.close_timeout
            deadline = time.monotonic() + wait
            try:
                while protocol.closed is None:
                    self._read(deadline, wait)
            except (TimeoutError, OSError):
                protocol.connection_lost()
        self._finish_close()

    def _finish_close(self) -> None:
        # The server closes TCP first (RFC 6455 7.1.1): wait a moment for its FIN.
        if self.socket.fileno() < 0:
            return
        if not self._eof:
            deadline = time.monotonic() + min(self.close_timeout or 2.0, 2.0)
            try:
                while True:
                    self.socket.settimeout(_remaining(deadline))
                    if not self.socket.recv(RECV_SIZE):
                        break
            except OSError:
                pass
        try:
            self.socket.close()
        except OSError:
            pass

    def __enter__(self) -> "ClientConnection":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
