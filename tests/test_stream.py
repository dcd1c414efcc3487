"""The one transport (ratchet_sel.io.stream.Stream) over real sockets on 127.0.0.1.

The loop runs in the test's thread, one iteration at a time, until the event a
test waits for has happened (never a sleep); peers are blocking sockets, or
streams accepted on the same loop when both ends must make progress (TLS).
"""

import os
import socket
import ssl
import struct
import threading
import time

import pytest
from test_tls import client_context, server_context

from ratchet_sel.io.loop import Loop
from ratchet_sel.io.stream import Stream, StreamOwner, StreamState

pytestmark = pytest.mark.timeout(30)

BIG = 4 * 1024 * 1024


class Owner(StreamOwner):
    """Records every report of its streams, and the bytes read."""

    def __init__(self):
        self.events = []
        self.data = bytearray()
        self.errors = []

    def on_data(self, stream, data):
        self.data += data

    def stream_opened(self, stream):
        self.events.append("opened")

    def stream_failed(self, stream, exc):
        self.events.append(("failed", exc))

    def stream_ended(self, stream, exc):
        self.events.append(("ended", exc))

    def stream_released(self, stream):
        self.events.append("released")

    def stream_error(self, stream, exc):
        self.errors.append(exc)

    def kinds(self):
        return [event if isinstance(event, str) else event[0] for event in self.events]


@pytest.fixture
def loop():
    loop = Loop()
    yield loop
    loop.close()


def run_until(loop, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        loop.run_once(0.05)


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


def refusing_port():
    """A port of 127.0.0.1 where nothing listens."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def recv_exactly(sock, size):
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        assert chunk, "EOF after %d of %d bytes" % (len(chunks), size)
        chunks += chunk
    return bytes(chunks)


def opened_pair(loop, listener):
    """A stream connected to ``listener`` and the peer's accepted blocking socket."""
    owner = Owner()
    stream = Stream.connect(loop, "127.0.0.1", listener.getsockname()[1], owner, owner.on_data, timeout=5)
    assert stream.state is StreamState.CONNECTING
    run_until(loop, lambda: owner.events)
    assert owner.events == ["opened"] and stream.state is StreamState.OPEN
    peer, _ = listener.accept()
    peer.settimeout(10)
    return stream, owner, peer


class TlsServer(StreamOwner):
    """Accepts TLS streams on the test's loop; echoes what they read unless told otherwise."""

    def __init__(self, loop, echo=True, handshake_timeout=5.0):
        self.loop = loop
        self.handshake_timeout = handshake_timeout
        self.echo = echo
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.context = server_context()
        self.streams = []
        self.owner = Owner()
        loop.add_reader(self.sock, self.accept)

    def accept(self):
        sock, addr = self.sock.accept()
        tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        stream = Stream(self.loop, tls, self.owner, self.on_data, peer=addr)
        assert stream.state is StreamState.HANDSHAKING and stream.is_secure
        self.streams.append(stream)
        stream.start_tls(self.handshake_timeout)

    def on_data(self, stream, data):
        self.owner.on_data(stream, data)
        if self.echo:
            stream.send(data)

    def close(self):
        self.loop.forget(self.sock)
        self.sock.close()


# -- connecting ------------------------------------------------------------------------------
def test_plain_connect_reads_writes_and_reports_the_peers_end_once(loop, listener):
    stream, owner, peer = opened_pair(loop, listener)
    assert stream.remote_address == "127.0.0.1" and not stream.is_secure
    stream.send(b"hello, ")
    stream.send(b"peer")
    loop.run_once(0)              # the end-of-iteration flush: one write for both
    assert recv_exactly(peer, 11) == b"hello, peer"
    peer.sendall(b"and back")
    run_until(loop, lambda: len(owner.data) == 8)
    assert owner.data == b"and back"
    peer.close()
    run_until(loop, lambda: "released" in owner.events)
    assert owner.events == ["opened", ("ended", None), "released"]
    assert stream.state is StreamState.CLOSED and stream.closed
    stream.close()
    stream.abort()
    assert owner.events == ["opened", ("ended", None), "released"]


def test_a_host_name_is_resolved_off_the_loop_thread(loop, listener, monkeypatch):
    threads = []
    real = socket.getaddrinfo

    def spy(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy)
    owner = Owner()
    stream = Stream.connect(loop, "localhost", listener.getsockname()[1], owner, owner.on_data, timeout=5)
    run_until(loop, lambda: owner.events)
    # "localhost" may give ::1 first, where nothing listens: the next address is tried
    assert owner.events == ["opened"], owner.events
    assert threads and threads[0] is not threading.current_thread()
    peer, _ = listener.accept()
    stream.send(b"x")
    loop.run_once(0)
    assert peer.recv(1) == b"x"
    peer.close()
    stream.abort()


def test_the_next_address_is_tried_when_the_first_refuses(loop, listener, monkeypatch):
    good = listener.getsockname()
    bad = ("127.0.0.1", refusing_port())

    def two_addresses(host, port, *args, **kwargs):
        assert host == "two.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", bad),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", good)]

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    owner = Owner()
    stream = Stream.connect(loop, "two.example", good[1], owner, owner.on_data, timeout=5)
    run_until(loop, lambda: owner.events)
    assert owner.events == ["opened"]
    assert stream.socket.getpeername() == good
    stream.abort()


def test_every_address_refusing_fails_the_stream_once(loop):
    owner = Owner()
    Stream.connect(loop, "127.0.0.1", refusing_port(), owner, owner.on_data, timeout=5)
    run_until(loop, lambda: "released" in owner.events)
    [(kind, exc), released] = owner.events
    assert kind == "failed" and isinstance(exc, ConnectionRefusedError) and released == "released"
    assert "127.0.0.1" in str(exc)


def test_a_name_that_does_not_resolve_fails_the_stream(loop, monkeypatch):
    def nothing(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nothing)
    owner = Owner()
    Stream.connect(loop, "nowhere.invalid", 80, owner, owner.on_data)
    run_until(loop, lambda: "released" in owner.events)
    assert owner.kinds() == ["failed", "released"]
    assert "nowhere.invalid" in str(owner.events[0][1])


def test_connect_timeout_while_resolving_ignores_the_late_answer(loop, listener, monkeypatch):
    answer = threading.Event()
    real = socket.getaddrinfo

    def slow(*args, **kwargs):
        answer.wait(10)
        return real("127.0.0.1", listener.getsockname()[1], type=socket.SOCK_STREAM)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    owner = Owner()
    stream = Stream.connect(loop, "slow.example", 1, owner, owner.on_data, timeout=0.1)
    run_until(loop, lambda: "released" in owner.events)
    assert owner.kinds() == ["failed", "released"]
    assert isinstance(owner.events[0][1], TimeoutError)
    answer.set()
    loop.run_once(0.2)   # the answer arrives and is ignored
    loop.run_once(0)
    assert owner.kinds() == ["failed", "released"] and stream.socket is None


def test_connect_timeout_covers_a_tls_handshake_that_never_ends(loop, listener):
    owner = Owner()
    Stream.connect(loop, "127.0.0.1", listener.getsockname()[1], owner, owner.on_data,
                   ssl_context=client_context(), server_hostname="localhost", timeout=0.2)
    run_until(loop, lambda: "released" in owner.events)   # the listener never speaks TLS
    assert owner.kinds() == ["failed", "released"] and isinstance(owner.events[0][1], TimeoutError)


def test_tls_connect_and_accept_on_one_loop(loop):
    server = TlsServer(loop)
    owner = Owner()
    stream = Stream.connect(loop, "127.0.0.1", server.port, owner, owner.on_data,
                            ssl_context=client_context(), server_hostname="localhost", timeout=5)
    run_until(loop, lambda: owner.events and server.owner.events)
    assert owner.events == ["opened"] and server.owner.events == ["opened"]
    assert stream.is_secure and stream.socket.version() is not None
    blob = os.urandom(1024 * 1024)    # many records each way
    stream.send(blob)
    run_until(loop, lambda: len(owner.data) == len(blob))
    assert owner.data == blob
    stream.close()
    run_until(loop, lambda: "released" in owner.events and "released" in server.owner.events)
    assert owner.kinds() == ["opened", "ended", "released"]
    assert server.owner.kinds() == ["opened", "ended", "released"]
    server.close()


def test_a_tls_handshake_with_a_wrong_name_fails_on_both_sides(loop):
    server = TlsServer(loop)
    owner = Owner()
    Stream.connect(loop, "127.0.0.1", server.port, owner, owner.on_data,
                   ssl_context=client_context(), server_hostname="not-the-name.example", timeout=5)
    run_until(loop, lambda: "released" in owner.events and "released" in server.owner.events)
    assert owner.kinds() == ["failed", "released"]
    assert isinstance(owner.events[0][1], ssl.SSLCertVerificationError)
    assert server.owner.kinds() == ["failed", "released"]
    server.close()


def test_the_accept_side_tls_handshake_times_out(loop):
    server = TlsServer(loop, handshake_timeout=0.2)
    peer = socket.create_connection(("127.0.0.1", server.port))   # never says a word
    run_until(loop, lambda: "released" in server.owner.events)
    assert server.owner.kinds() == ["failed", "released"]
    assert isinstance(server.owner.events[0][1], TimeoutError)
    peer.close()
    server.close()


# -- writing -----------------------------------------------------------------------------------
def small_buffers(stream, peer):
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)


def test_the_unsent_rest_of_large_bytes_is_a_view_and_drain_is_told_once(loop, listener):
    stream, owner, peer = opened_pair(loop, listener)
    small_buffers(stream, peer)
    payload = os.urandom(BIG)
    drained = []
    stream.low_water = 1024
    stream.on_drain = lambda: drained.append(stream.buffered_amount)
    stream.send(payload)                 # 64 KiB or more: written at once
    rest = stream.buffered_amount
    assert 0 < rest < BIG
    kept = stream._wview                 # white-box: the caller's bytes, not a copy
    assert kept is not None and kept.obj is payload
    stream.send(b"tail")
    got = bytearray()
    while len(got) < BIG + 4:
        got += peer.recv(1 << 20)
        loop.run_once(0)
    assert got == payload + b"tail"
    run_until(loop, lambda: stream.buffered_amount == 0 and drained)
    assert len(drained) == 1 and drained[0] <= 1024
    stream.abort()


def test_try_write_refuses_while_bytes_are_pending(loop, listener):
    stream, owner, peer = opened_pair(loop, listener)
    assert stream.try_write(b"now")
    assert recv_exactly(peer, 3) == b"now"
    stream.send(b"corked")
    assert stream.buffered_amount == 6 and not stream.try_write(b"no")
    stream.flush()
    assert stream.buffered_amount == 0 and recv_exactly(peer, 6) == b"corked"
    stream.abort()


def test_writev_sends_header_and_payload_in_order(loop, listener):
    stream, owner, peer = opened_pair(loop, listener)
    body = os.urandom(200000)
    stream.writev((b"head", body))
    got = bytearray()
    while len(got) < len(body) + 4:
        got += peer.recv(1 << 20)
        loop.run_once(0)
    assert got == b"head" + body
    stream.abort()


# -- ending --------------------------------------------------------------------------------------
def test_close_with_linger_delivers_everything_then_reports_the_end_once(loop, listener):
    stream, owner, peer = opened_pair(loop, listener)
    small_buffers(stream, peer)
    payload = os.urandom(BIG)
    stream.send(payload)
    stream.close()
    assert owner.events == ["opened", ("ended", None)]     # ended at once; released after the linger
    assert stream.state is StreamState.CLOSING and stream.closed
    stream.send(b"dropped")
    got = bytearray()
    while True:
        loop.run_once(0)
        chunk = peer.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    assert got == payload                                    # our FIN came after every byte
    assert stream.state is StreamState.LINGERING
    peer.close()                                             # the peer's FIN ends the linger
    run_until(loop, lambda: "released" in owner.events)
    assert owner.events == ["opened", ("ended", None), "released"]


def test_close_with_linger_gives_up_after_close_timeout(loop, listener):
    owner = Owner()
    stream = Stream.connect(loop, "127.0.0.1", listener.getsockname()[1], owner, owner.on_data,
                            close_timeout=0.1)
    run_until(loop, lambda: owner.events)
    peer, _ = listener.accept()
    stream.close()
    assert stream.state is StreamState.LINGERING
    assert peer.recv(10) == b""          # our FIN; the peer never sends its own
    run_until(loop, lambda: "released" in owner.events)
    assert owner.kinds() == ["opened", "ended", "released"]
    peer.close()


def test_abort_reports_the_end_and_the_release_at_once(loop, listener):
    stream, owner, peer = opened_pair(loop, listener)
    stream.send(b"last words")           # corked this iteration: the one last try sends it
    stream.abort()
    assert owner.events == ["opened", ("ended", None), "released"]
    assert stream.state is StreamState.CLOSED
    assert peer.recv(100) == b"last words"
    assert peer.recv(100) == b""
    stream.abort()
    stream.close()
    assert owner.kinds() == ["opened", "ended", "released"]
    peer.close()


def test_a_peer_reset_ends_the_stream_with_the_error(loop, listener):
    stream, owner, peer = opened_pair(loop, listener)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()                         # RST
    run_until(loop, lambda: "released" in owner.events)
    assert owner.kinds() == ["opened", "ended", "released"]
    exc = owner.events[1][1]
    assert exc is None or isinstance(exc, ConnectionResetError)


def test_a_write_failure_ends_the_stream_on_the_next_iteration(loop, listener):
    stream, owner, peer = opened_pair(loop, listener)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
    stream.pause_reading()               # only the write will find out
    deadline = time.monotonic() + 10
    while stream.state is StreamState.OPEN:
        assert time.monotonic() < deadline
        stream.try_write(b"x" * 100000)
    assert owner.events == ["opened"]    # not re-entrantly inside the writer's call
    run_until(loop, lambda: "released" in owner.events)
    assert owner.kinds() == ["opened", "ended", "released"]


def test_an_accepted_plain_socket_reads_once_resumed(loop, listener):
    client = socket.create_connection(listener.getsockname())
    sock, addr = listener.accept()
    owner = Owner()
    stream = Stream(loop, sock, owner, owner.on_data, peer=addr)
    assert stream.state is StreamState.OPEN and stream.remote_port == client.getsockname()[1]
    client.sendall(b"ping")
    loop.run_once(0.05)
    assert owner.data == b""             # not reading yet
    stream.resume_reading()
    run_until(loop, lambda: owner.data == b"ping")
    stream.pause_reading()
    client.sendall(b"more")
    loop.run_once(0.05)
    assert owner.data == b"ping"
    stream.resume_reading()
    run_until(loop, lambda: owner.data == b"pingmore")
    client.close()
    run_until(loop, lambda: "released" in owner.events)
    assert owner.kinds() == ["ended", "released"]


def test_an_exception_from_on_data_goes_to_stream_error(loop, listener):
    owner = Owner()

    def raising(stream, data):
        raise ValueError(data)

    stream = Stream.connect(loop, "127.0.0.1", listener.getsockname()[1], owner, raising)
    run_until(loop, lambda: owner.events)
    peer, _ = listener.accept()
    peer.sendall(b"boom")
    run_until(loop, lambda: owner.errors)
    assert isinstance(owner.errors[0], ValueError) and stream.state is StreamState.OPEN
    stream.abort()
    peer.close()


# -- reading straight into the reader's buffers -------------------------------------------------
class Sink:
    """Takes ``size`` bytes through read_directly, in buffers of ``chunk``."""

    def __init__(self, size, chunk):
        self.buffer = bytearray(size)
        self.filled = 0
        self.chunk = chunk
        self.calls = 0

    def get_buffer(self):
        if self.filled == len(self.buffer):
            return None
        end = min(len(self.buffer), self.filled + self.chunk)
        return memoryview(self.buffer)[self.filled:end]

    def buffer_filled(self, size):
        self.filled += size
        self.calls += 1


def test_read_directly_over_plain_tcp(loop, listener):
    stream, owner, peer = opened_pair(loop, listener)
    blob = os.urandom(300000)
    sink = Sink(250000, 100000)
    stream.read_directly(sink.get_buffer, sink.buffer_filled)
    peer.sendall(blob)
    run_until(loop, lambda: sink.filled + len(owner.data) == len(blob))
    assert bytes(sink.buffer) == blob[:250000] and owner.data == blob[250000:]
    assert sink.calls >= 3
    stream.abort()
    peer.close()


def test_read_directly_over_tls_takes_the_decrypted_bytes(loop):
    server = TlsServer(loop, echo=False)
    owner = Owner()
    client = Stream.connect(loop, "127.0.0.1", server.port, owner, owner.on_data,
                            ssl_context=client_context(), server_hostname="localhost", timeout=5)
    run_until(loop, lambda: owner.events and server.owner.events)
    [accepted] = server.streams
    sink = Sink(250000, 70000)           # buffers that end inside TLS records
    accepted.read_directly(sink.get_buffer, sink.buffer_filled)
    blob = os.urandom(300000)
    client.send(blob)
    run_until(loop, lambda: sink.filled + len(server.owner.data) == len(blob))
    assert bytes(sink.buffer) == blob[:250000] and server.owner.data == blob[250000:]
    client.close()
    run_until(loop, lambda: "released" in server.owner.events and "released" in owner.events)
    server.close()


def test_read_directly_is_ignored_once_closed(loop, listener):
    stream, owner, peer = opened_pair(loop, listener)
    stream.close()
    sink = Sink(10, 10)
    stream.read_directly(sink.get_buffer, sink.buffer_filled)
    peer.sendall(b"0123456789")
    peer.close()
    run_until(loop, lambda: "released" in owner.events)
    assert sink.filled == 0


def test_a_socketpair_end_is_a_stream_too(loop):
    left, right = socket.socketpair()
    owner = Owner()
    stream = Stream(loop, left, owner, owner.on_data)
    stream.resume_reading()
    stream.send(b"to the right")
    loop.run_once(0)
    assert right.recv(100) == b"to the right"
    right.sendall(b"to the left")
    run_until(loop, lambda: owner.data == b"to the left")
    right.close()
    run_until(loop, lambda: "released" in owner.events)
    assert owner.kinds() == ["ended", "released"]
