"""A large frame's payload read from the socket straight into its buffer, over real sockets.

``Connection.read_directly(sink)`` lets the WebSocket layer take the payload
of a large frame without a ``bytes`` per read and a copy into the message's
buffer.  Whatever the split of the client's writes, the messages, their
order and the bytes around them must come out as through ``feed()``.
"""

import os
import random
import socket
import threading

import pytest
from support import Recorder, ServerThread, connect
from wsclient import WsClient

from ratchet_sel import MessageComponent, WsServer
from ratchet_sel import server as transport_module
from ratchet_sel.websocket.rfc6455 import OP_BINARY, OP_TEXT, encode_frame

pytestmark = pytest.mark.timeout(60)


class ListSink:
    """A direct-read sink handing out views of fixed buffers, one after another."""

    def __init__(self, sizes):
        self.buffers = [bytearray(n) for n in sizes]
        self.filled = [0] * len(sizes)
        self.done = threading.Event()

    def payload_buffer(self):
        for i, buf in enumerate(self.buffers):
            if self.filled[i] < len(buf):
                return memoryview(buf)[self.filled[i]:]
        return None

    def payload_received(self, size):
        for i, buf in enumerate(self.buffers):
            if self.filled[i] < len(buf):
                self.filled[i] += size
                if i == len(self.buffers) - 1 and self.filled[i] == len(buf):
                    self.done.set()
                return


def test_read_directly_fills_the_sinks_buffers_then_hands_back_to_on_message():
    rec = Recorder(on_message_hook=lambda conn, msg: None)
    sink = ListSink([100000, 300000])
    with ServerThread(rec) as st:
        client = connect(st.port)
        conn = rec.wait_conn_for(client)
        client.sendall(b"hello")
        rec.wait_data(conn, 5)
        st.call(conn.read_directly, sink.payload_buffer, sink.payload_received)
        blob = os.urandom(400000)
        tail = b"after the sink" * 1000
        client.sendall(blob + tail)
        assert sink.done.wait(10)
        assert bytes(sink.buffers[0]) + bytes(sink.buffers[1]) == blob
        # not one byte of the sink's share went to on_message, and none of the rest went to the sink
        assert rec.wait_data(conn, 5 + len(tail)) == b"hello" + tail
        client.close()


def test_read_directly_is_ignored_once_the_connection_closed():
    rec = Recorder()
    with ServerThread(rec) as st:
        client = connect(st.port)
        conn = rec.wait_conn_for(client)
        st.call(conn.close)
        sink = ListSink([10])
        st.call(conn.read_directly, sink.payload_buffer, sink.payload_received)
        assert st.call(lambda: conn._direct_sink) is None
        client.close()


class CountingLayer(MessageComponent):
    """Sits between the transport and WsServer, counting the bytes it passes on."""

    def __init__(self, inner):
        self.inner = inner
        self.bytes_seen = 0

    def on_open(self, conn, request=None):
        self.inner.on_open(conn, request)

    def on_message(self, conn, data):
        self.bytes_seen += len(data)
        self.inner.on_message(conn, data)

    def on_close(self, conn):
        self.inner.on_close(conn)

    def on_error(self, conn, exc):
        self.inner.on_error(conn, exc)


class Echo(MessageComponent):
    def on_message(self, conn, msg):
        conn.send(msg)


@pytest.mark.parametrize("seed", range(3))
def test_large_messages_echo_intact_whatever_the_split(seed):
    rng = random.Random(seed)
    layer = CountingLayer(WsServer(Echo(), max_message_size=4 << 20))
    messages = [os.urandom(rng.choice([70000, 1 << 20, (3 << 20) + 7])) for _ in range(4)]
    messages.insert(2, "small text between")
    messages.append(os.urandom(65536))
    data = b"".join(encode_frame(OP_TEXT if isinstance(m, str) else OP_BINARY,
                                 m.encode() if isinstance(m, str) else m, mask=os.urandom(4)) for m in messages)
    with ServerThread(layer) as st:
        client = WsClient(st.port)
        sender = threading.Thread(target=_send_in_pieces, args=(client.sock, data, rng))
        sender.start()
        got = [client.recv_message() for _ in messages]
        sender.join()
        assert got == messages
        # the payloads of the large frames went around the layers between the transport and WsServer
        assert st.call(lambda: layer.bytes_seen) < len(data)
        client.close()


def _send_in_pieces(sock, data, rng):
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 3, 1000, 65536, transport_module.RECV_SIZE + 1, 1 << 20])
        sock.sendall(data[pos:pos + step])
        pos += step


def test_a_client_vanishing_in_the_middle_of_a_large_frame_is_closed_cleanly():
    app_closed = threading.Event()
    received = []

    class App(MessageComponent):
        def on_message(self, conn, msg):
            received.append(msg)

        def on_close(self, conn):
            received.append(conn.close_code)
            app_closed.set()

    with ServerThread(WsServer(App(), max_message_size=4 << 20)) as st:
        client = WsClient(st.port)
        frame = encode_frame(OP_BINARY, os.urandom(2 << 20), mask=os.urandom(4))
        client.sock.sendall(frame[:(1 << 20)])
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.sock.close()  # a reset in the middle of the payload
        assert app_closed.wait(10)
        assert received == [1006]
        assert st.call(lambda: len(st.server.connections)) == 0
        # and the server goes on serving
        other = WsClient(st.port)
        other.send(b"x" * 100000)
        other.close()
