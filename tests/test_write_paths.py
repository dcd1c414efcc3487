"""The transport's read buffer and its direct write paths, over real sockets.

``try_write`` (broadcasts) skips the end-of-iteration coalescing, ``writev``
(a frame header beside a large payload) sends parts side by side with one
``sendmsg()``; both must keep every byte in order behind anything already
pending, and buffer what the kernel does not take.  Reads go through one
reused buffer: what a component received must never change afterwards.
"""

import os
import socket

import pytest
from support import Recorder, ServerThread, connect, recv_exactly

from ratchet_sel import server as transport_module

pytestmark = pytest.mark.timeout(60)

BIG = 6 * 1024 * 1024  # more than loopback's socket buffers take at once


def test_writev_sends_parts_in_order_and_buffers_the_rest():
    payload = os.urandom(BIG)
    rec = Recorder()
    with ServerThread(rec) as st:
        client = connect(st.port)
        conn = rec.wait_conn_for(client)
        # Nothing read yet: the kernel takes part, the rest is buffered.
        pending = st.call(lambda: (conn.writev((b"head", payload, b"tail")), conn.buffered_amount)[1])
        assert 0 < pending < BIG + 8
        assert recv_exactly(client, BIG + 8) == b"head" + payload + b"tail"
        assert st.call(lambda: conn.buffered_amount) == 0
        client.close()


def test_writev_of_small_parts_and_after_pending_bytes_keeps_the_order():
    payload = os.urandom(200 * 1024)
    rec = Recorder()
    with ServerThread(rec) as st:
        client = connect(st.port)
        conn = rec.wait_conn_for(client)

        def writes():
            conn.send(b"first;")            # corked until the end of this iteration
            conn.writev((b"h", payload))     # so this must queue behind it
            conn.writev((b"x", b"y"))        # small: through send()
        st.call(writes)
        assert recv_exactly(client, 6 + 1 + len(payload) + 2) == b"first;h" + payload + b"xy"
        client.close()


def test_try_write_goes_out_at_once_or_not_at_all_behind_pending_bytes():
    rec = Recorder()
    with ServerThread(rec) as st:
        client = connect(st.port)
        conn = rec.wait_conn_for(client)
        # Alone, it is in the kernel before the call returns (no flush needed).
        assert st.call(lambda: (conn.try_write(b"now"), conn.buffered_amount)) == (True, 0)
        assert recv_exactly(client, 3) == b"now"

        def writes():
            conn.send(b"a")
            refused = conn.try_write(b"X")  # "a" is pending: nothing written
            conn.send(b"b")
            return refused
        assert st.call(writes) is False
        assert recv_exactly(client, 2) == b"ab"
        big = os.urandom(BIG)
        assert st.call(lambda: (conn.try_write(big), conn.buffered_amount > 0)) == (True, True)
        assert st.call(lambda: conn.try_write(b"more")) is False  # the rest of big is pending
        assert recv_exactly(client, BIG) == big
        client.close()


def test_write_each_writes_to_the_streams_with_nothing_pending_and_returns_the_others():
    rec = Recorder()
    with ServerThread(rec) as st:
        clients = [connect(st.port) for _ in range(3)]
        ready, behind, closed = [rec.wait_conn_for(c) for c in clients]

        def writes():
            behind.send(b"a")   # corked: pending until the end of this iteration
            closed.close()
            left = ready.write_each([ready, behind, closed], b"X")
            behind.send(b"b")
            return [s is behind for s in left], [s is closed for s in left]
        is_behind, is_closed = st.call(writes)
        assert (is_behind, is_closed) == ([True, False], [False, True])
        assert recv_exactly(clients[0], 1) == b"X"
        assert recv_exactly(clients[1], 2) == b"ab"   # nothing written in between
        for client in clients:
            client.close()


def test_try_write_and_writev_after_close_are_ignored():
    rec = Recorder()
    with ServerThread(rec) as st:
        client = connect(st.port)
        conn = rec.wait_conn_for(client)

        def close_then_write():
            conn.close()
            assert conn.try_write(b"late") is False
            conn.writev((b"late", b"r" * 100000))
        st.call(close_then_write)
        client.settimeout(10)
        data = b""
        while True:
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data == b""
        client.close()


def test_received_bytes_do_not_change_after_later_reads():
    kept = []
    rec = Recorder(on_message_hook=lambda conn, msg: kept.append((msg, bytes(msg))))
    with ServerThread(rec) as st:
        client = connect(st.port)
        conn = rec.wait_conn_for(client)
        blob = os.urandom(3 * transport_module.RECV_SIZE + 123)
        client.sendall(blob)
        rec.wait_data(conn, len(blob))
        client.sendall(b"z" * 5000)
        rec.wait_data(conn, len(blob) + 5000)
        assert all(type(msg) is bytes and msg == snapshot for msg, snapshot in kept)
        assert b"".join(msg for msg, _ in kept) == blob + b"z" * 5000
        client.close()


def test_two_servers_on_two_threads_keep_their_reads_apart():
    # Each loop has its own read buffer: loops in two threads never share one.
    from ratchet_sel.io.stream import read_buffer
    recs = [Recorder(echo=True), Recorder(echo=True)]
    with ServerThread(recs[0]) as a, ServerThread(recs[1]) as b:
        assert read_buffer(a.server.loop) is not read_buffer(b.server.loop)
        clients = [connect(a.port), connect(b.port)]
        blobs = [os.urandom(500000), os.urandom(500000)]
        for c, blob in zip(clients, blobs):
            c.sendall(blob)
        for c, blob in zip(clients, blobs):
            assert recv_exactly(c, len(blob)) == blob
            c.shutdown(socket.SHUT_WR)
            c.close()


# -- the unsent rest of a large write: a view of immutable bytes, a copy of anything else --
def test_unsent_rest_of_bytes_is_kept_as_a_view_and_later_writes_queue_behind_it():
    payload = os.urandom(BIG)
    rec = Recorder()
    drained = []
    with ServerThread(rec) as st:
        client = connect(st.port)
        conn = rec.wait_conn_for(client)

        def writes():
            conn.low_water = 1024
            conn.on_drain = lambda: drained.append(conn.buffered_amount)
            assert conn.try_write(payload)
            kept = conn._wview
            state = (kept is not None, kept.obj is payload if kept is not None else None, len(conn._wbuf),
                     len(kept) if kept is not None else 0)
            conn.send(b"small, after")                  # corked behind the view
            conn.writev((b"head", b"x" * 100000))       # and this behind both
            return state, conn.buffered_amount
        (has_view, same_object, copied, rest), pending = st.call(writes)
        # the kernel took part; the rest is the caller's own bytes, not a copy
        assert has_view and same_object and copied == 0 and 0 < rest < BIG
        assert pending == rest + 12 + 4 + 100000
        expected = payload + b"small, after" + b"head" + b"x" * 100000
        assert recv_exactly(client, len(expected)) == expected
        assert st.call(lambda: (conn.buffered_amount, conn._wview)) == (0, None)
        assert drained and drained[-1] <= 1024
        client.close()


def test_unsent_rest_of_a_bytearray_is_copied_so_the_application_may_change_it():
    data = bytearray(os.urandom(BIG))
    original = bytes(data)
    rec = Recorder()
    with ServerThread(rec) as st:
        client = connect(st.port)
        conn = rec.wait_conn_for(client)

        def write_then_change():
            conn.writev((b"h", data))
            kept = (conn._wview, len(conn._wbuf))
            data[:] = b"changed"   # would raise BufferError if the transport held a view of it
            return kept
        view, copied = st.call(write_then_change)
        assert view is None and copied > 0
        assert recv_exactly(client, BIG + 1) == b"h" + original
        client.close()


def test_closing_waits_for_a_pending_view_to_be_delivered():
    payload = os.urandom(BIG)
    rec = Recorder()
    with ServerThread(rec) as st:
        client = connect(st.port)
        conn = rec.wait_conn_for(client)

        def write_and_close():
            conn.try_write(payload)
            pending = conn._wview is not None
            conn.close()
            return pending
        assert st.call(write_and_close)
        assert recv_exactly(client, BIG) == payload
        assert client.recv(1) == b""  # then the server's FIN
        client.close()
