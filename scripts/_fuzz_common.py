"""Shared machinery of ``scripts/fuzz_frames.py`` and ``scripts/fuzz_handshake.py`` (stdlib only).

- :class:`Findings`: what a fuzzer found, printed at the end.
- :func:`chunkings`: random ways to cut bytes into pieces (the parsers must not care).
- The server under test: ``python scripts/_fuzz_common.py serve`` runs an echo
  WsServer with small timeouts on 127.0.0.1 (port 0) and prints ``PORT n``;
  :class:`ServerProcess` starts it, reads its stats (connection tables, live
  objects after ``gc.collect()``, RSS) from a secret HTTP path, watches its
  log for ERROR lines, and stops it with SIGTERM.
- :func:`run_live`: drives many :class:`LiveCase` connections at once from one
  selectors loop; each sends its bytes in paced pieces, answers the server's
  close, reads to EOF and checks how the connection ended: an HTTP 4xx/5xx
  status with a reason, or (after ``101``) a close frame with a valid code
  (draft-76: ``0xFF 0x00``; draft-75: plain EOF) and then EOF.  Anything
  else -- silence, a reset without a close, invalid frames from the server, a
  hang -- is a finding.
"""

import argparse
import gc
import json
import os
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ratchet_sel.websocket.hixie import HixieParser  # noqa: E402
from ratchet_sel.websocket.rfc6455 import (OP_CLOSE, Close, Failure, FrameParser, Message,  # noqa: E402
                                           Ping, Pong, encode_frame, is_valid_close_code)

HOST = "127.0.0.1"


# -- findings -----------------------------------------------------------------------------------

class Findings:
    """Collects findings; keeps the first few details of each kind."""

    def __init__(self, name: str, verbose: bool = False) -> None:
        self.name = name
        self.verbose = verbose
        self.items: List[Tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def add(self, kind: str, case: str, detail: str) -> None:
        with self.lock:
            self.items.append((kind, case, detail))
            if self.verbose or sum(1 for k, _, _ in self.items if k == kind) <= 3:
                sys.stderr.write("%s: FINDING %s [%s]: %s\n" % (self.name, kind, case, detail[:600]))

    def __len__(self) -> int:
        return len(self.items)

    def kinds(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for kind, _, _ in self.items:
            counts[kind] = counts.get(kind, 0) + 1
        return counts


def short(data: bytes, limit: int = 160) -> str:
    """A printable excerpt of ``data``."""
    text = repr(data[:limit])
    return text + ("... (%d bytes)" % len(data) if len(data) > limit else "")


def chunkings(rng: random.Random, data: bytes, max_pieces: int = 4000) -> List[bytes]:
    """``data`` cut into pieces in one of several ways (whole, bytes, random, halves)."""
    style = rng.random()
    if not data:
        return [data]
    if style < 0.15:
        return [data]
    if style < 0.25 and len(data) <= max_pieces:
        return [data[i:i + 1] for i in range(len(data))]
    if style < 0.4:
        cut = rng.randrange(0, len(data) + 1)
        return [data[:cut], data[cut:]]
    pieces = []
    pos = 0
    largest = max(rng.choice((3, 17, 200, 5000)), 2 * len(data) // max_pieces)   # about max_pieces at most
    while pos < len(data):
        size = rng.randint(1, largest)
        pieces.append(data[pos:pos + size])
        pos += size
    return pieces


def mutate_bytes(rng: random.Random, data: bytes, rounds: int = 0) -> bytes:
    """Generic byte-level mutations: flips, inserts, deletes, duplications, truncation, splices."""
    buf = bytearray(data)
    for _ in range(rounds or rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 2:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and buf:
            del buf[pos:pos + rng.randint(1, 16)]
        elif op == 4 and buf:
            end = min(len(buf), pos + rng.randint(1, 64))
            buf[pos:pos] = buf[pos:end] * rng.randint(1, 4)
        elif op == 5:
            del buf[pos:]
        elif op == 6 and buf:
            buf[pos:pos] = rng.choice((b"\x00", b"\xff", b"\r\n", b"\n", b"\r\n\r\n", b"\x80", b"\xc0\xaf",
                                       b"\xed\xa0\x80", b" ", b":", b",", b";", b"="))
        elif op == 7 and len(buf) > 2:
            a, b = sorted((rng.randrange(len(buf)), rng.randrange(len(buf))))
            buf[a:b] = bytes(reversed(buf[a:b]))
    return bytes(buf)


# -- the server under test -------------------------------------------------------------------------

def _serve(argv: List[str]) -> int:
    import logging

    from ratchet_sel import IoServer, WsServer
    from ratchet_sel.demo import Echo
    from ratchet_sel.http.response import Response
    from ratchet_sel.io.stream import Connection, StreamState
    from ratchet_sel.websocket.connection import WsConnection

    parser = argparse.ArgumentParser(prog="_fuzz_common.py serve")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", required=True)
    parser.add_argument("--max-message-size", type=int, default=64 * 1024)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    class FuzzEcho(Echo):
        subprotocols = ["chat", "superchat"]

    holder: Dict[str, Any] = {}
    stats_path = "/__stats/" + args.token

    def rss_kib() -> int:
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def http_handler(request: Any) -> Any:
        if request.path != stats_path:
            return None
        io, ws = holder["io"], holder["ws"]
        gc.collect()
        live = {"Connection": 0, "WsConnection": 0, "FrameParser": 0, "HixieParser": 0}
        for obj in gc.get_objects():
            name = type(obj).__name__
            if name in live and isinstance(obj, (Connection, WsConnection, FrameParser, HixieParser)):
                live[name] += 1
        leftovers = []
        for obj in gc.get_objects():
            if isinstance(obj, Connection) and obj.state is not StreamState.CLOSED:
                leftovers.append("%r state=%s" % (obj, obj.state.value))
            elif isinstance(obj, Connection) and len(leftovers) < 5:
                holders = sorted({type(r).__name__ for r in gc.get_referrers(obj)})
                leftovers.append("%r closed, held by %s" % (obj, holders))
        body = {
            "leftovers": leftovers[:10],
            "connections": len(io.connections), "lingering": len(io._lingering),
            "ws_connections": len(ws.connections), "handshaking": len(ws._reader._pending),
            "awaiting_key3": len(ws._awaiting_key3), "timers": len(io.loop._timers),
            "live": live, "rss_kib": rss_kib(),
        }
        return Response(200, json.dumps(body), {"Content-Type": "application/json"})

    ws = WsServer(FuzzEcho(), max_message_size=args.max_message_size, handshake_timeout=2.0,
                  close_timeout=0.5, idle_timeout=2.0, write_limit=1024 * 1024, http_handler=http_handler)
    io = IoServer(ws, HOST, args.port, close_timeout=1.0, max_connections=4096)
    holder.update(io=io, ws=ws)
    sys.stdout.write("PORT %d\n" % io.port)
    sys.stdout.flush()
    io.run()
    return 0


class ServerProcess:
    """The fuzz server in a subprocess; see the module docstring."""

    def __init__(self, max_message_size: int = 64 * 1024) -> None:
        self.token = "%016x" % random.SystemRandom().getrandbits(64)
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "serve", "--token", self.token,
             "--max-message-size", str(max_message_size)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        match = re.match(r"PORT (\d+)", line or "")
        if not match:
            self.proc.kill()
            raise RuntimeError("the fuzz server did not start: %r %s" % (line, self.proc.stderr.read()))
        self.port = int(match.group(1))
        self.log: List[str] = []
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))

    def error_lines(self) -> List[str]:
        """Log lines at ERROR or worse, and traceback lines."""
        return [line for line in list(self.log)
                if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]

    def rss_kib(self) -> int:
        try:
            with open("/proc/%d/status" % self.proc.pid) as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def stats(self) -> Dict[str, Any]:
        with socket.create_connection((HOST, self.port), timeout=10) as sock:
            sock.sendall(("GET /__stats/%s HTTP/1.1\r\nHost: fuzz\r\n\r\n" % self.token).encode())
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200 "):
            raise RuntimeError("stats request failed: %r" % head[:100])
        return json.loads(body.decode())

    def settled_stats(self, timeout: float = 10.0) -> Tuple[bool, Dict[str, Any]]:
        """Stats once no connection but the stats one is left.

        A closed connection stays referenced by its cancelled timers until their
        deadline (at most the server's 2 s handshake timeout), so this waits
        longer than that before each look -- also after its own previous request.
        """
        deadline = time.monotonic() + timeout
        while True:
            time.sleep(2.3)
            stats = self.stats()
            clean = (stats["connections"] <= 1 and stats["lingering"] == 0 and stats["ws_connections"] == 0
                     and stats["handshaking"] == 0 and stats["awaiting_key3"] == 0
                     and stats["live"]["WsConnection"] == 0 and stats["live"]["Connection"] <= 1)
            if clean or time.monotonic() > deadline:
                return clean, stats

    def stop(self) -> int:
        """SIGTERM, then the exit status (killed after 15 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
            self.log.append("Traceback-like: the server did not stop within 15 s of SIGTERM; killed")
        self._reader.join(5)
        return code


# -- live cases -----------------------------------------------------------------------------------

class ClientInflater:
    """The client's side of permessage-deflate, for reading the server's compressed messages."""

    def __init__(self, reset_each_message: bool) -> None:
        self.reset = reset_each_message
        self.inflater: Any = None

    def start_message(self) -> None:
        if self.inflater is None:
            self.inflater = zlib.decompressobj(-15)  # a 32 KiB window reads any smaller one

    def decompress(self, data: bytes, limit: int) -> bytes:
        return self.inflater.decompress(data, limit)

    def end_message(self, limit: int) -> bytes:
        out = self.inflater.decompress(b"\x00\x00\xff\xff", limit)
        if self.reset:
            self.inflater = None
        return out


def _extension_for(headers: Dict[str, str]) -> Optional[ClientInflater]:
    value = headers.get("sec-websocket-extensions")
    if not value or "permessage-deflate" not in value:
        return None
    return ClientInflater("server_no_context_takeover" in value)


class LiveCase:
    """One connection to the fuzz server; see the module docstring.

    ``pieces`` are sent in order, ``pace`` seconds apart at most (randomly).
    ``expect``: for an unmutated stream, the messages the echo server must send
    back (in order) and the close code it must answer with.
    """

    def __init__(self, case_id: str, pieces: List[bytes], rng: random.Random, *, pace: float = 0.004,
                 expect: Optional[Tuple[List[Any], Optional[int]]] = None, expect_status: Optional[int] = None,
                 timeout: float = 15.0) -> None:
        self.case_id = case_id
        self.pieces = [p for p in pieces if p]
        self.sent_all = b"".join(self.pieces)
        self.rng = rng
        self.pace = pace
        self.expect = expect
        self.expect_status = expect_status
        self.timeout = timeout
        self.sock: Optional[socket.socket] = None
        self.out = bytearray()
        self.next_send = 0.0
        self.send_failed = False
        self.head = bytearray()
        self.status: Optional[int] = None
        self.headers: Dict[str, str] = {}
        self.body = bytearray()
        self.mode = "http"           # http | rfc6455 | hixie-key | hixie | done
        self.hixie_version = ""
        self.hixie_answer_left = 0
        self.parser: Any = None
        self.messages: List[Any] = []
        self.close_events: List[Any] = []
        self.failures: List[str] = []
        self.reset = False
        self.eof = False
        self.started = 0.0
        self.replied = False

    def start(self) -> socket.socket:
        sock = socket.create_connection((HOST, self._port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self.sock = sock
        self.started = time.monotonic()
        self.next_send = self.started
        return sock

    # -- sending ------------------------------------------------------------------------------
    def wants_write(self, now: float) -> bool:
        return not self.send_failed and (bool(self.out) or (bool(self.pieces) and now >= self.next_send))

    def next_deadline(self) -> Optional[float]:
        if self.pieces and not self.out and not self.send_failed:
            return self.next_send
        return None

    def on_writable(self, now: float) -> None:
        if not self.out and self.pieces and now >= self.next_send:
            self.out += self.pieces.pop(0)
            self.next_send = now + self.rng.random() * self.pace
        if self.out:
            try:
                sent = self.sock.send(self.out)
                del self.out[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.send_failed = True      # the server closed; what it said is still readable

    def queue_reply(self, data: bytes) -> None:
        if not self.replied:
            self.replied = True
            self.pieces.append(data)

    # -- receiving -----------------------------------------------------------------------------
    def on_readable(self) -> bool:
        """Read what is there; True once the connection has ended."""
        try:
            data = self.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return False
        except ConnectionResetError:
            self.reset = True
            return True
        except OSError:
            self.reset = True
            return True
        if not data:
            self.eof = True
            return True
        self._received(data)
        return False

    def _received(self, data: bytes) -> None:
        if self.mode == "http":
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > 1 << 20:
                    self.failures.append("response head over 1 MiB")
                    self.mode = "done"
                return
            head, rest = bytes(self.head[:end]), bytes(self.head[end + 4:])
            lines = head.decode("latin-1").split("\r\n")
            match = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0] + " ")
            if not match:
                self.failures.append("malformed status line %r" % lines[0][:100])
                self.mode = "done"
                return
            self.status = int(match.group(1))
            for line in lines[1:]:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
            if self.status != 101:
                self.mode = "body"
                self.body += rest
                return
            if "sec-websocket-accept" in self.headers:
                self.mode = "rfc6455"
                self.parser = FrameParser(require_mask=False, max_message_size=1 << 26,
                                          extension=_extension_for(self.headers))
            else:
                self.mode = "hixie-key"
                self.hixie_version = "hixie-76" if "sec-websocket-origin" in self.headers else "hixie-75"
                self.hixie_answer_left = 16 if self.hixie_version == "hixie-76" else 0
                self.parser = HixieParser(max_message_size=1 << 26)
            if rest:
                self._received(rest)
            return
        if self.mode == "body":
            self.body += data
            return
        if self.mode == "hixie-key":
            take = min(self.hixie_answer_left, len(data))
            self.hixie_answer_left -= take
            data = data[take:]
            if self.hixie_answer_left:
                return
            self.mode = "hixie"
            if not data:
                return
        if self.mode in ("rfc6455", "hixie"):
            try:
                events = self.parser.feed(data)
            except Exception as exc:  # our parser choking is a finding about the server's bytes
                self.failures.append("client parser raised %r" % (exc,))
                self.mode = "done"
                return
            for event in events:
                kind = event.__class__
                if kind is Message:
                    self.messages.append(event.data)
                elif kind is Close:
                    self.close_events.append(event)
                    if self.mode == "rfc6455":
                        payload = b"" if event.code is None else event.code.to_bytes(2, "big")
                        self.queue_reply(encode_frame(OP_CLOSE, payload, mask=os.urandom(4)))
                    else:
                        self.queue_reply(b"\xff\x00")
                elif kind is Failure:
                    self.failures.append("invalid frames from the server: %d %s" % (event.code, event.reason))
                elif kind in (Ping, Pong):
                    pass

    # -- the verdict -----------------------------------------------------------------------------
    def inconclusive(self) -> bool:
        """An unmutated case the server timed out (408, or idle close 1001): the machine was too
        slow for the fuzz server's short timeouts, which says nothing about correctness."""
        if self.failures:
            return False
        if self.expect_status is not None and self.status == 408 and self.expect_status != 408:
            return True
        return (self.expect is not None and self.status == 101 and bool(self.close_events)
                and self.close_events[0].code == 1001 and self.expect[1] != 1001)

    def verdict(self, timed_out: bool) -> List[Tuple[str, str]]:
        """[(kind, detail)] for everything wrong with how this connection ended."""
        problems: List[Tuple[str, str]] = [("server-output", f) for f in self.failures]
        sent = short(self.sent_all)
        if timed_out:
            problems.append(("hang", "no EOF after %.0f s (mode %s, status %s); sent %s"
                             % (self.timeout, self.mode, self.status, sent)))
            return problems
        if self.status is None:
            what = "a reset" if self.reset else "EOF"
            problems.append(("no-answer", "%s without any HTTP status (got %s); sent %s"
                             % (what, short(bytes(self.head)), sent)))
            return problems
        if self.status != 101:
            if not 400 <= self.status <= 599:
                problems.append(("bad-status", "status %d for a request that was not accepted; sent %s"
                                 % (self.status, sent)))
            if not self.body.strip():
                problems.append(("no-reason", "status %d without a reason in the body; sent %s"
                                 % (self.status, sent)))
            if self.expect_status is not None and self.status != self.expect_status:
                problems.append(("wrong-status", "status %d, expected %d; sent %s"
                                 % (self.status, self.expect_status, sent)))
            return problems
        if self.expect_status is not None and self.expect_status != 101:
            problems.append(("wrong-status", "101, expected %d; sent %s" % (self.expect_status, sent)))
        if self.mode == "rfc6455":
            if not self.close_events:
                problems.append(("no-close", "connection ended (%s) without a close frame; got %d message(s); "
                                 "sent %s" % ("reset" if self.reset else "EOF", len(self.messages), sent)))
                return problems
            code = self.close_events[0].code
            if code is None:
                if not _EMPTY_CLOSE.search(self.sent_all):
                    problems.append(("close-code", "close frame without a code, but we never sent one; sent %s"
                                     % sent))
            elif not is_valid_close_code(code):
                problems.append(("close-code", "invalid close code %d; sent %s" % (code, sent)))
        elif self.mode in ("hixie", "hixie-key"):
            if self.hixie_version == "hixie-76" and not self.close_events:
                problems.append(("no-close", "draft-76 connection ended without 0xFF 0x00; sent %s" % sent))
        if self.expect is not None and not problems:
            messages, code = self.expect
            if self.messages != messages:
                problems.append(("lost-or-changed", "echoed %d message(s), expected %d (first difference at %s); "
                                 "sent %s" % (len(self.messages), len(messages),
                                              _first_difference(self.messages, messages), sent)))
            if code is not None and (not self.close_events or self.close_events[0].code != code):
                got = self.close_events[0].code if self.close_events else None
                problems.append(("wrong-close", "close code %r, expected %d; sent %s" % (got, code, sent)))
        return problems


# A masked close frame without payload, in any length encoding: the server echoes it without a code.
_EMPTY_CLOSE = re.compile(rb"\x88(?:\x80|\xfe\x00\x00|\xff\x00{8})", re.S)


def _first_difference(got: List[Any], want: List[Any]) -> int:
    for index, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return index
    return min(len(got), len(want))


def run_live(port: int, cases: Iterator[LiveCase], findings: Findings, *, parallel: int = 16,
             deadline: float, server: Optional[ServerProcess] = None,
             on_done: Optional[Callable[[int], None]] = None) -> Dict[str, int]:
    """Run ``cases`` against 127.0.0.1:``port``, ``parallel`` at a time, until they or the time run out.

    Returns counters: started, finished, and each outcome.
    """
    sel = selectors.DefaultSelector()
    active: Dict[int, LiveCase] = {}
    counts = {"started": 0, "finished": 0, "http-error": 0, "upgraded": 0, "inconclusive": 0, "peak_rss_kib": 0}
    exhausted = False
    last_rss = 0.0
    while True:
        now = time.monotonic()
        while not exhausted and len(active) < parallel and now < deadline:
            try:
                case = next(cases)
            except StopIteration:
                exhausted = True
                break
            case._port = port
            try:
                sock = case.start()
            except OSError as exc:
                findings.add("connect", case.case_id, "cannot connect: %s" % exc)
                continue
            active[sock.fileno()] = case
            sel.register(sock, selectors.EVENT_READ, case)
            counts["started"] += 1
        if not active:
            if exhausted or now >= deadline:
                break
            continue
        for case in active.values():
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if case.wants_write(now) else 0)
            key = sel.get_key(case.sock)
            if key.events != events:
                sel.modify(case.sock, events, case)
        wake = min([d for d in (c.next_deadline() for c in active.values()) if d is not None] + [now + 0.1])
        ready = sel.select(max(0.0, wake - now))
        now = time.monotonic()
        ended: List[Tuple[LiveCase, bool]] = []
        for key, events in ready:
            case = key.data
            if events & selectors.EVENT_WRITE:
                case.on_writable(now)
            if events & selectors.EVENT_READ and case.on_readable():
                ended.append((case, False))
        for case in active.values():
            if case.wants_write(now) and not case.out and case.pieces:
                case.on_writable(now)            # paced pieces whose time has come
            if now - case.started > case.timeout and all(c is not case for c, _ in ended):
                ended.append((case, True))
        for case, timed_out in ended:
            fd = case.sock.fileno()
            sel.unregister(case.sock)
            case.sock.close()
            del active[fd]
            counts["finished"] += 1
            if case.status is not None:
                counts["upgraded" if case.status == 101 else "http-error"] += 1
            if not timed_out and case.inconclusive():
                counts["inconclusive"] += 1
                continue
            for kind, detail in case.verdict(timed_out):
                findings.add(kind, case.case_id, detail)
            if on_done is not None:
                on_done(counts["finished"])
        if server is not None and now - last_rss > 0.25:
            last_rss = now
            counts["peak_rss_kib"] = max(counts["peak_rss_kib"], server.rss_kib())
    sel.close()
    return counts


def live_session(name: str, findings: Findings, cases: Iterator[LiveCase], *, deadline: float, parallel: int,
                 max_message_size: int = 64 * 1024) -> Dict[str, Any]:
    """Start the server, run ``cases``, check its log, tables and memory, stop it (must exit 0)."""
    server = ServerProcess(max_message_size=max_message_size)
    marks: Dict[str, int] = {}

    def on_done(finished: int) -> None:
        if finished == 20 and "warm_kib" not in marks:
            marks["warm_kib"] = server.rss_kib()

    try:
        counts = run_live(server.port, cases, findings, parallel=parallel, deadline=deadline,
                          server=server, on_done=on_done)
        clean, stats = server.settled_stats()
        if not clean:
            findings.add("leak", "end", "connections left behind after every client ended: %s" % json.dumps(stats))
        warm = marks.get("warm_kib", stats["rss_kib"])
        end_kib = stats["rss_kib"]
        if end_kib - warm > max(64 * 1024, warm // 2):
            findings.add("memory", "end", "server RSS grew from %d KiB (after 20 cases) to %d KiB" % (warm, end_kib))
    finally:
        code = server.stop()
    for line in server.error_lines()[:20]:
        findings.add("server-error-log", "log", line)
    if code != 0:
        findings.add("exit-status", "end", "the server exited with %r after SIGTERM" % code)
    counts.update(rss_start_kib=marks.get("warm_kib", 0), rss_end_kib=end_kib, server_exit=code,
                  peak_rss_kib=max(counts["peak_rss_kib"], end_kib))
    return counts


def add_common_arguments(parser: argparse.ArgumentParser, count: int, seconds: float) -> None:
    parser.add_argument("--seed", type=int, default=None, help="base seed (default: random, printed)")
    parser.add_argument("--count", type=int, default=count, help="codec cases (default: %(default)s)")
    parser.add_argument("--live-count", type=int, default=None,
                        help="live connections (default: a fifth of --count, at most 2000)")
    parser.add_argument("--seconds", type=float, default=seconds,
                        help="time bound for the whole run (default: %(default)s)")
    parser.add_argument("--live", dest="live", action="store_true", default=True,
                        help="also fuzz a live server in a subprocess (default)")
    parser.add_argument("--no-live", dest="live", action="store_false", help="codec fuzzing only")
    parser.add_argument("--parallel", type=int, default=16, help="live connections at once (default: %(default)s)")
    parser.add_argument("--case", type=int, default=None, help="run only this codec case index (replay), verbosely")
    parser.add_argument("--live-case", type=int, default=None,
                        help="run only this live case index (replay) against a fresh server, verbosely")
    parser.add_argument("--verbose", action="store_true", help="print every finding")


def resolve_seed(seed: Optional[int]) -> int:
    return seed if seed is not None else random.SystemRandom().randrange(1 << 31)


def pick(cases: Iterator[LiveCase], index: Optional[int]) -> Iterator[LiveCase]:
    """All ``cases``, or only the one at ``index`` (for replaying a finding)."""
    for position, case in enumerate(cases):
        if index is None or position == index:
            yield case


def paced(rng: random.Random, pieces: List[bytes]) -> float:
    """A pause between pieces that keeps a request well inside the server's 2 s handshake timeout."""
    if len(pieces) > 30:
        return 0.0
    return rng.choice((0.0, 0.002, 0.01))


def case_rng(seed: int, space: str, index: int) -> random.Random:
    """The generator of one case: reproducible from (seed, space, index) alone."""
    return random.Random("%d/%s/%d" % (seed, space, index))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(_serve(sys.argv[2:]))
    sys.exit("usage: _fuzz_common.py serve --token T [--port P]")
