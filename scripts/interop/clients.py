"""Third-party Python WebSocket clients against a ratchet_sel echo server.

Run with the interop venv's python (see scripts/interop.sh):

    clients.py websockets        ws://127.0.0.1:PORT/path
    clients.py websocket-client  ws://127.0.0.1:PORT/path
    clients.py websocket-client-hybi07 ws://127.0.0.1:PORT/path
    clients.py shutdown --pid SERVER_PID ws://127.0.0.1:PORT/path

Each echo client sends a non-ASCII text message, a binary message holding
all 256 byte values, a 70,000-byte text message and a 1 MiB binary message,
checks each echo exactly
(type and content), then closes with 1000 and checks the close handshake
completes cleanly.  The `websockets` client also sends one message as three
frames (continuation frames) and a ping.  It prints one line
    interop NAME: text ok, binary ok, 70kB ok, 1MiB binary ok, close 1000 ok
and exits 0, or prints a FAIL line describing the first failure and exits 1.

`shutdown` connects, checks one echo, sends SIGTERM to the server and expects
a close frame with code 1001 (going away) followed by the end of the TCP
connection.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time

TIMEOUT = 10.0  # seconds, for every single network step

TEXT = "héllo ✓ 🚀 — interop"
BINARY = bytes(range(256))


def big_text(total_bytes: int = 70_000) -> str:
    """Exactly `total_bytes` of UTF-8, mixing 1-4 byte sequences so that a
    server which splits reads/frames inside a code point is caught."""
    unit = "0123456789abcdefghijklmnopqrstuvwxyz-é-✓-🚀|"
    step = 6 + len(unit.encode())  # 6-digit position marker + unit
    out = []
    n = 0
    while n + step <= total_bytes:
        out.append(f"{len(out) // 2:06d}")
        out.append(unit)
        n += step
    out.append("x" * (total_bytes - n))
    s = "".join(out)
    assert len(s.encode()) == total_bytes, len(s.encode())
    return s


BIG = big_text()
# A whole binary message of 1 MiB (the server's default limit): its payload
# is read straight into the message's buffer, in pieces of any size.
BIG_BINARY = bytes((i * 131 + (i >> 10)) & 0xFF for i in range(1 << 20))


class Fail(Exception):
    pass


def describe(data) -> str:
    if isinstance(data, str):
        return f"text of {len(data)} chars / {len(data.encode())} bytes: {data[:40]!r}"
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        return f"binary of {len(data)} bytes: {data[:16].hex()}..."
    return repr(data)[:80]


def first_diff(a, b) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"first difference at index {i}: expected {x!r}, got {y!r}"
    return f"length differs: expected {len(a)}, got {len(b)}"


def check_echo(what: str, sent, got) -> None:
    if type(sent) is not type(got):
        raise Fail(f"{what}: sent {describe(sent)}, echo came back as {describe(got)}")
    if sent != got:
        raise Fail(f"{what}: echo differs ({first_diff(sent, got)})")


# --------------------------------------------------------------------------
# websockets (sync client, websockets >= 13)
# --------------------------------------------------------------------------

def tls_options(url: str) -> dict:
    """websockets' keywords for wss:// URLs: trust the test certificate (INTEROP_CAFILE)."""
    if not url.startswith("wss://"):
        return {}
    import ssl
    return {"ssl": ssl.create_default_context(cafile=os.environ["INTEROP_CAFILE"])}


def tls_sslopt(url: str) -> dict:
    """websocket-client's keywords for wss:// URLs (verifies against INTEROP_CAFILE)."""
    if not url.startswith("wss://"):
        return {}
    return {"sslopt": {"ca_certs": os.environ["INTEROP_CAFILE"]}}


def run_websockets(url: str) -> list[str]:
    import websockets
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    done = []
    info = []
    try:
        ws = connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, max_size=2**20, **tls_options(url))
    except Exception as exc:
        raise Fail(f"handshake failed: {type(exc).__name__}: {exc}") from None
    with ws:  # leaving the block closes the connection if still open
        ext = ws.response.headers.get("Sec-WebSocket-Extensions")
        info.append(f"extensions={ext or 'none'}")
        for label, msg in (("text", TEXT), ("binary", BINARY), ("70kB", BIG), ("1MiB binary", BIG_BINARY)):
            try:
                ws.send(msg)
                got = ws.recv(timeout=TIMEOUT)
            except TimeoutError:
                raise Fail(f"{label}: no echo within {TIMEOUT}s") from None
            except ConnectionClosed as exc:
                raise Fail(f"{label}: connection closed instead of echo: {exc}") from None
            check_echo(label, msg, got)
            done.append(f"{label} ok")
        # Extras (beyond the common three): a message sent as several
        # frames (continuation frames), and a ping that must get its pong.
        fragments = ["frag-1 é ", "frag-2 ✓ ", "frag-3 🚀"]
        try:
            ws.send(iter(fragments))
            got = ws.recv(timeout=TIMEOUT)
        except TimeoutError:
            raise Fail(f"fragmented: no echo within {TIMEOUT}s") from None
        except ConnectionClosed as exc:
            raise Fail(f"fragmented: connection closed instead of echo: {exc}") from None
        check_echo("fragmented (3 frames)", "".join(fragments), got)
        done.append("fragmented ok")
        pong = ws.ping(b"interop-ping")
        if not pong.wait(TIMEOUT):
            raise Fail(f"ping: no pong within {TIMEOUT}s")
        done.append("ping ok")
        ws.close(code=1000, reason="bye")
    rcvd, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
    if sent is None or sent.code != 1000:
        raise Fail(f"close: we did not manage to send close 1000 (close_sent={sent})")
    if rcvd is None:
        raise Fail("close: no close frame received from server "
                   f"(connection ended without closing handshake; state={ws.protocol.state.name})")
    if rcvd.code != 1000:
        raise Fail(f"close: server answered close 1000 with code {rcvd.code} reason {rcvd.reason!r}")
    if not ws.protocol.close_sent or ws.protocol.close_rcvd_then_sent is not False:
        # we initiated, so the server's close must come after ours
        raise Fail("close: unexpected closing-handshake order")
    done.append("close 1000 ok")
    return done + [f"({', '.join(info)}, websockets {websockets.__version__})"]


# --------------------------------------------------------------------------
# websocket-client
# --------------------------------------------------------------------------

def run_websocket_client(url: str, hybi_version: int | None = None) -> list[str]:
    import websocket
    from websocket import ABNF

    if hybi_version is not None:
        # websocket-client always sends "Sec-WebSocket-Version: <VERSION>"; the
        # HyBi-07..13 framing is identical, so patching the constant gives a
        # real third-party client speaking as a HyBi-07 peer.
        import websocket._handshake as hs
        hs.VERSION = hybi_version

    done = []
    try:
        ws = websocket.create_connection(url, timeout=TIMEOUT, **tls_sslopt(url))
    except Exception as exc:
        raise Fail(f"handshake failed: {type(exc).__name__}: {exc}") from None
    try:
        headers = ws.getheaders() or {}
        ext = headers.get("sec-websocket-extensions")
        for label, msg in (("text", TEXT), ("binary", BINARY), ("70kB", BIG), ("1MiB binary", BIG_BINARY)):
            try:
                if isinstance(msg, str):
                    ws.send(msg)
                else:
                    ws.send_binary(msg)
                opcode, data = ws.recv_data(control_frame=False)
            except websocket.WebSocketTimeoutException:
                raise Fail(f"{label}: no echo within {TIMEOUT}s") from None
            except websocket.WebSocketConnectionClosedException as exc:
                raise Fail(f"{label}: connection closed instead of echo: {exc}") from None
            if opcode == ABNF.OPCODE_TEXT:
                try:
                    got = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise Fail(f"{label}: text echo is not valid UTF-8: {exc}") from None
            elif opcode == ABNF.OPCODE_BINARY:
                got = bytes(data)
            elif opcode == ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                raise Fail(f"{label}: server sent close (code {code}, {data[2:]!r}) instead of echo")
            else:
                raise Fail(f"{label}: unexpected opcode {opcode}")
            check_echo(label, msg, got)
            done.append(f"{label} ok")

        # Closing handshake by hand so we can see the server's close frame.
        ws.send_close(1000, b"bye")
        deadline = time.monotonic() + TIMEOUT
        while True:
            if time.monotonic() > deadline:
                raise Fail(f"close: no close frame from server within {TIMEOUT}s")
            try:
                frame = ws.recv_frame()
            except websocket.WebSocketTimeoutException:
                raise Fail(f"close: no close frame from server within {TIMEOUT}s") from None
            except (websocket.WebSocketConnectionClosedException, ConnectionError) as exc:
                raise Fail(f"close: TCP closed without a close frame from server ({exc})") from None
            if frame.opcode == ABNF.OPCODE_CLOSE:
                break
            if frame.opcode in (ABNF.OPCODE_PING, ABNF.OPCODE_PONG):
                continue
            raise Fail(f"close: got data frame opcode {frame.opcode} after sending close")
        data = frame.data
        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        if code != 1000:
            raise Fail(f"close: server answered close 1000 with code {code} ({data[2:]!r})")
        # After its close frame the server should close the TCP connection.
        sock = ws.sock
        sock.settimeout(TIMEOUT)
        try:
            rest = sock.recv(1)
        except socket.timeout:
            raise Fail(f"close: server kept TCP open {TIMEOUT}s after the closing handshake") from None
        except ConnectionResetError:
            rest = b""  # acceptable enough, but note it
            done.append("(TCP reset after close)")
        if rest:
            raise Fail(f"close: unexpected bytes after server's close frame: {rest!r}")
        done.append("close 1000 ok")
    finally:
        ws.shutdown()
    return done + [f"(extensions={ext or 'none'}, websocket-client {websocket.__version__})"]


# --------------------------------------------------------------------------
# shutdown: SIGTERM the server while connected, expect close 1001
# --------------------------------------------------------------------------

def run_shutdown(url: str, pid: int) -> list[str]:
    # The caller (interop.sh) relies on this process sending exactly one
    # SIGTERM to the server, whatever happens here.
    try:
        return _shutdown(url, pid)
    finally:
        if not _SIGTERM_SENT:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


_SIGTERM_SENT = False


def _shutdown(url: str, pid: int) -> list[str]:
    global _SIGTERM_SENT
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    try:
        ws = connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT)
    except Exception as exc:
        raise Fail(f"handshake failed: {type(exc).__name__}: {exc}") from None
    with ws:
        ws.send("before shutdown")
        got = ws.recv(timeout=TIMEOUT)
        check_echo("pre-shutdown echo", "before shutdown", got)
        _SIGTERM_SENT = True
        os.kill(pid, signal.SIGTERM)
        try:
            extra = ws.recv(timeout=TIMEOUT)
            raise Fail(f"expected close after SIGTERM, got a message: {describe(extra)}")
        except TimeoutError:
            raise Fail(f"no close within {TIMEOUT}s of SIGTERM") from None
        except ConnectionClosed:
            pass
    rcvd = ws.protocol.close_rcvd
    if rcvd is None:
        raise Fail("server went away without sending a close frame (expected 1001)")
    if rcvd.code != 1001:
        raise Fail(f"close code {rcvd.code} ({rcvd.reason!r}) after SIGTERM, expected 1001")
    return [f"SIGTERM -> close 1001 ok (reason {rcvd.reason!r})"]


NAMES = {
    "websockets": "websockets(py) rfc6455",
    "websocket-client": "websocket-client(py) rfc6455",
    "websocket-client-hybi07": "websocket-client(py) hybi-07",
    "shutdown": "websockets(py) shutdown",
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("client", choices=sorted(NAMES))
    ap.add_argument("url")
    ap.add_argument("--pid", type=int, help="server pid (for shutdown)")
    args = ap.parse_args()
    name = NAMES[args.client]
    if args.url.startswith("wss://"):
        name = name.replace("rfc6455", "rfc6455 over wss")
    try:
        if args.client == "websockets":
            parts = run_websockets(args.url)
        elif args.client == "websocket-client":
            parts = run_websocket_client(args.url)
        elif args.client == "websocket-client-hybi07":
            parts = run_websocket_client(args.url, hybi_version=7)
        else:
            if not args.pid:
                ap.error("shutdown needs --pid")
            parts = run_shutdown(args.url, args.pid)
    except Fail as exc:
        print(f"interop {name}: FAIL: {exc}", flush=True)
        return 1
    except Exception as exc:  # unexpected client-side trouble: still a failure
        print(f"interop {name}: FAIL: unexpected {type(exc).__name__}: {exc}", flush=True)
        return 1
    print(f"interop {name}: " + ", ".join(p for p in parts if not p.startswith("(")) +
          "".join(f" {p}" for p in parts if p.startswith("(")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
