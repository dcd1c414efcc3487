"""wss:// served directly: TLS in the loop, beside plain ws://, against hostile clients."""

import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys

import pytest
from support import ServerThread
from test_hixie import KEY3, SPEC_REQUEST, read_exactly, read_head
from test_ws_server import ROOT, App
from wsclient import WsClient

from ratchet_sel import IoServer, WsServer

pytestmark = pytest.mark.timeout(60)

CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "certs")
CERTFILE = os.path.join(CERTS, "localhost.pem")
KEYFILE = os.path.join(CERTS, "localhost.key")


def server_context():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERTFILE, KEYFILE)
    return context


def client_context():
    context = ssl.create_default_context(cafile=CERTFILE)
    return context


@pytest.fixture
def app():
    return App()


@pytest.fixture
def tls_server(app):
    with ServerThread(WsServer(app), ssl_context=server_context(), tls_handshake_timeout=1.0) as st:
        yield st


def test_wss_echo_text_binary_and_large(tls_server, app):
    with WsClient(tls_server.port, tls=client_context()) as client:
        assert client.status == 101
        client.send("héllo over TLS")
        assert client.recv_message() == "héllo over TLS"
        client.send(bytes(range(256)))
        assert client.recv_message() == bytes(range(256))
        big = os.urandom(3 * 1024 * 1024 // 4)  # many TLS records each way
        client.send(big)
        assert client.recv_message() == big
        assert client.close().code == 1000
    app.wait_for(lambda ev: ev[-1][0] == "close")
    assert app.count("open") == 1 and app.count("close") == 1
    assert app.conns[0].transport.is_secure


def test_plain_and_tls_listeners_on_one_server(app):
    with ServerThread(WsServer(app)) as st:
        tls_port = st.call(lambda: st.server.listen("127.0.0.1", 0, ssl_context=server_context())
                           .getsockname()[1])
        with WsClient(st.port) as plain, WsClient(tls_port, tls=client_context()) as secure:
            plain.send("plain")
            secure.send("secure")
            assert plain.recv_message() == "plain"
            assert secure.recv_message() == "secure"
        assert sorted(c.transport.is_secure for c in app.conns) == [False, True]


def test_hixie76_location_is_wss(tls_server):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as raw:
        with client_context().wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(SPEC_REQUEST + KEY3)
            head = read_head(sock)
            assert b"\r\nSec-WebSocket-Location: wss://example.com/demo\r\n" in head
            assert len(read_exactly(sock, 16)) == 16


def test_garbage_instead_of_client_hello_is_dropped_unseen(tls_server, app):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as bad:
        bad.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(200))
        with WsClient(tls_server.port, tls=client_context()) as good:
            good.send("unaffected")
            assert good.recv_message() == "unaffected"
        data = b""
        try:
            while True:
                chunk = bad.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    app.wait_for(lambda ev: ev[-1][0] == "close")
    assert app.count("open") == 1  # only the good client ever reached the application


def test_stalled_handshake_is_dropped_without_delaying_others(tls_server, app):
    # Three clients stall: one silent, two stopping inside their ClientHello.
    stalled = [socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) for _ in range(3)]
    stalled[1].sendall(b"\x16\x03\x01\x02\x00\x01")
    stalled[2].sendall(b"\x16")
    with WsClient(tls_server.port, tls=client_context()) as good:
        good.send("prompt")
        assert good.recv_message() == "prompt"
    for sock in stalled:
        try:
            assert sock.recv(1) == b""  # dropped at tls_handshake_timeout (1 s)
        except ConnectionResetError:
            pass
        sock.close()
    assert app.count("open") == 1


def test_cli_serves_wss_and_ws_side_by_side():
    proc = subprocess.Popen([sys.executable, "-m", "ratchet_sel", "echo", "--host", "127.0.0.1", "--port", "0",
                             "--certfile", CERTFILE, "--keyfile", KEYFILE, "--tls-port", "0"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        ports = {}
        for line in proc.stderr:
            match = re.search(r"(wss?)://127\.0\.0\.1:(\d+)/", line)
            if match:
                ports[match.group(1)] = int(match.group(2))
            if len(ports) == 2:
                break
        with WsClient(ports["wss"], tls=client_context()) as secure, WsClient(ports["ws"]) as plain:
            secure.send(b"\x00tls")
            plain.send("plain")
            assert secure.recv_message() == b"\x00tls"
            assert plain.recv_message() == "plain"
            proc.send_signal(signal.SIGTERM)
            assert secure.expect_close().code == 1001
            assert plain.expect_close().code == 1001
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.stderr.close()


def test_cli_refuses_a_missing_certificate():
    result = subprocess.run([sys.executable, "-m", "ratchet_sel", "echo", "--port", "0",
                             "--certfile", "/nonexistent.pem"], cwd=ROOT, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1 and "certificate" in result.stderr


def test_io_server_accepts_a_context_directly(app):
    server = IoServer(WsServer(app), "127.0.0.1", 0, ssl_context=server_context())
    try:
        assert server.socket.getsockname()[1] == server.port
    finally:
        server.close()
        server.loop.close()


def test_app_serves_wss_with_certfile_and_keyfile():
    from ratchet_sel import App

    app = App("127.0.0.1", 0, "127.0.0.1", certfile=CERTFILE, keyfile=KEYFILE)
    from ratchet_sel.demo import Echo

    echo = Echo()
    app.route("/echo", echo, allowed_origins="*")
    import threading

    thread = threading.Thread(target=app.server.loop.run, daemon=True)
    thread.start()
    try:
        with WsClient(app.port, "/echo", tls=client_context()) as client:
            client.send("secure app")
            assert client.recv_message() == "secure app"
    finally:
        app.server.loop.call_soon_threadsafe(app.server.close)
        app.server.loop.stop()
        thread.join(10)


def test_a_large_write_the_kernel_only_partly_takes_arrives_whole_over_tls():
    # The unsent rest of a large bytes write is kept as a view; TLS sockets write it with send().
    from support import Recorder
    rec = Recorder()
    payload = os.urandom(6 * 1024 * 1024)
    with ServerThread(rec, ssl_context=server_context()) as st:
        raw = socket.create_connection(("127.0.0.1", st.port), timeout=10)
        client = client_context().wrap_socket(raw, server_hostname="localhost")
        client.sendall(b"hi")
        conns = rec.wait_opened(1)
        rec.wait_data(conns[0], 2)
        conn = conns[0]

        def write():
            conn.try_write(payload)
            conn.send(b"tail")
            return conn._wview is not None
        assert st.call(write)
        got = bytearray()
        while len(got) < len(payload) + 4:
            chunk = client.recv(1 << 20)
            assert chunk
            got += chunk
        assert bytes(got) == payload + b"tail"
        client.close()


def test_a_tls_port_past_max_connections_closes_before_the_handshake_and_logs_once(app, caplog):
    caplog.set_level(logging.INFO, logger="ratchet_sel")
    with ServerThread(WsServer(app), ssl_context=server_context(), max_connections=1) as st:
        with WsClient(st.port, tls=client_context()) as first:
            assert first.status == 101
            refused = socket.create_connection(("127.0.0.1", st.port), timeout=10)
            try:
                # Closed before any TLS byte: the handshake fails at the client, no answer to read.
                with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                    client_context().wrap_socket(refused, server_hostname="localhost")
            finally:
                refused.close()
            first.send("still here")
            assert first.recv_message() == "still here"
        app.wait_for(lambda ev: ev[-1][0] == "close")
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("ratchet_sel.io")]
    assert sum("refused, 1 connections is the limit" in m for m in messages) == 1, messages
    assert not any("TLS handshake failed" in m for m in messages), messages
    assert app.count("open") == 1
