"""Shutdown is quick when nothing is left to deliver: idle raw TCP clients, connections refused with 503.

A closed connection lingers (waiting for the peer's FIN, up to ``close_timeout``)
so that a RST never destroys bytes the peer has not read.  On Linux the kernel
says how many bytes it still holds unsent or unacknowledged (``SIOCOUTQ``); when
that is zero, closing loses nothing, and shutdown does not wait for the FIN of a
client that will never send one.  Elsewhere the linger is kept (these tests skip).
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
from support import ServerThread, recv_until_eof
from test_robustness import App
from wsclient import WsClient, read_response

from ratchet_sel import IoServer, MessageComponent, WsServer

pytestmark = pytest.mark.timeout(60)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="SIOCOUTQ (bytes the kernel still holds) is read on Linux only")

# A shutdown that waited out the default 5 s timeout would miss this generous bound.
QUICK = 3.0


class RawEcho(MessageComponent):
    def on_message(self, conn, data):
        conn.send(data)


@LINUX_ONLY
def test_sigterm_with_an_idle_raw_client_exits_at_once():
    program = textwrap.dedent("""
        import sys
        from ratchet_sel import IoServer, MessageComponent
        class RawEcho(MessageComponent):
            def on_message(self, conn, data):
                conn.send(data)
        server = IoServer(RawEcho(), "127.0.0.1", 0)
        print(server.port, flush=True)
        server.run()
    """)
    proc = subprocess.Popen([sys.executable, "-c", program], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"ping")
            assert client.recv(16) == b"ping"        # connected and served; now idle for good
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=QUICK) == 0     # raises TimeoutExpired if it waited for a FIN
            assert recv_until_eof(client) == b""     # our side sees a clean EOF
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@LINUX_ONLY
def test_shutdown_in_process_with_idle_raw_clients_finishes_at_once():
    server_thread = ServerThread(RawEcho())
    with server_thread as st:
        clients = [st.connect() for _ in range(5)]
        for client in clients:
            client.sendall(b"x")
            assert client.recv(1) == b"x"
        st.call(st.server.shutdown)
        assert st.join(QUICK), "shutdown waited for FINs that idle clients never send"
        for client in clients:
            assert recv_until_eof(client) == b""
            client.close()


@LINUX_ONLY
def test_connections_refused_with_503_are_tracked_by_shutdown():
    app = App()
    with ServerThread(WsServer(app), max_connections=1) as st:
        member = WsClient(st.port)
        assert member.status == 101
        refused = st.connect()
        status, headers, _ = read_response(refused)
        assert status == 503 and headers["retry-after"]
        # the refused connection lingers for our FIN: shutdown must know about it
        assert st.call(lambda: len(st.server._lingering)) == 1
        st.call(st.server.shutdown)
        assert member.expect_close().code == 1001
        member.shutdown()
        assert st.join(QUICK)
        refused.close()


def test_without_a_kernel_answer_the_linger_is_kept(monkeypatch):
    """Where the unsent count cannot be read, a closed connection still waits for the peer's FIN."""
    from ratchet_sel import server as server_module
    monkeypatch.setattr(server_module, "kernel_unsent_bytes", lambda sock: None)
    with ServerThread(RawEcho(), close_timeout=0.5) as st:
        client = st.connect()
        client.sendall(b"x")
        assert client.recv(1) == b"x"
        st.call(st.server.shutdown)
        assert st.call(lambda: len(st.server._lingering)) == 1
        assert st.join(10)                          # released by close_timeout
        client.close()


def test_kernel_unsent_bytes_of_a_socket():
    from ratchet_sel.io.stream import kernel_unsent_bytes
    a, b = socket.socketpair()
    try:
        count = kernel_unsent_bytes(a)
        assert count is None or count == 0
    finally:
        a.close()
        b.close()
