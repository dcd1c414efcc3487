#!/usr/bin/env python3
"""Endurance run: two chat servers joined by Redis, held connections with churn, faults on a schedule.

    python3 scripts/soak.py                          # one hour, 10,000 connections
    python3 scripts/soak.py --duration 600           # ten minutes
    python3 scripts/soak.py --smoke                  # CI: 3 minutes, 2,000 connections
    python3 scripts/soak.py --out /tmp/soak          # where the JSON, the SVG and the logs go

What runs (every process on 127.0.0.1):

- one ``redis-server`` (a temporary directory, a free port, no persistence);
- two servers ``python -m ratchet_sel chat --workers 2 --redis URL --keepalive K
  --metrics --health /healthz --publish-token T``: server A with a ``--max-connections``
  a little above its share of the connections (the burst past it is answered 503),
  server B with a soft ``RLIMIT_NOFILE`` a little above its share (the burst past it
  makes accept() fail with EMFILE);
- this process: one selector loop holding the WebSocket clients (raw sockets, RFC 6455
  frames written and read here), a thread that samples /proc and /metrics, a thread
  that runs the fault schedule.

The clients: ``--connections`` held, split over the two servers.  A quarter are
*stable* (open from the start to the end; judged for completeness), the rest are a
*churn* pool: each lives a random 10 to 60 s and ends by a clean close, a reset
(SO_LINGER 0) or by *vanishing* (it stops reading and never answers a ping again, so
that only the server's keepalive can find it).  ``--senders`` stable clients send
numbered chat messages (``<source> <seq> <ms>``) at ``--rate`` messages per second in
all, and POST /publish broadcasts numbered the same way, one source per server.
Every client counts what it receives per source: gaps (loss), repeats (duplicates),
older than the last (reordering), and the delivery latency.

Faults (twice in the smoke, three rounds in a long run; the last tenth is quiet):
``kill -9`` of a worker of server A (the master replaces it), SIGSTOP of Redis for
20 s then SIGCONT, a Redis restart on the same port, a burst of connections past
server A's --max-connections, a burst past server B's fd limit, and slow consumers
(small receive buffer, never read, flood pings) that must hit the 8 MiB write limit.

The at-most-once windows (docs/push.md, docs/scaling.md): messages of a client whose
worker was killed that no receiver on another worker got (in flight at the kill: the
worker may have delivered it to its own clients and died before Redis had it); and deliveries from
one worker process to another (they go through Redis) of messages sent while some
worker's Redis connection was down (from the fault until the last worker logged
``restored``, plus one second).  Each message lost inside a window is counted and
listed apart; any loss outside them fails the run.

Goals checked at the end (exit 1 if any fails): RSS drift of every server process
(and Redis) <= 5 % from minute 10 (1/3 of the run for shorter runs) to the end,
judged on the medians of the first and last few samples; fds of every server process
back to their level before each burst; zero loss/duplication/reordering outside the
windows; every vanished client sent its close (1011) within 2x the keepalive interval;
no crash (a traceback, a worker death we did not cause, a non-zero exit).

Writes ``soak.json`` (samples, events, summary), ``soak.svg`` (the picture; drawn
here, no library) and the servers' logs into ``--out``.
"""

import argparse
import base64
import gc
import http.client
import json
import os
import random
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Set, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "soak-publish-token-0123456789"
KEY = base64.b64encode(b"soak-client-key!").decode()
TCP_ESTABLISHED = 1
PAGE = os.sysconf("SC_PAGE_SIZE")


def now() -> float:
    return time.time()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(msg: str) -> None:
    print("%s %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---------------------------------------------------------------- frames (client side)

def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked frame with the all-zero masking key (payload unchanged): cheap and valid."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload


def parse_frames(buf: bytearray) -> Tuple[List[Tuple[int, bytes]], int]:
    """Complete server frames at the start of ``buf``: ([(opcode, payload)], bytes used)."""
    frames = []
    pos = 0
    end = len(buf)
    while end - pos >= 2:
        b1 = buf[pos + 1] & 0x7F
        head = 2
        if b1 == 126:
            if end - pos < 4:
                break
            b1 = (buf[pos + 2] << 8) | buf[pos + 3]
            head = 4
        elif b1 == 127:
            if end - pos < 10:
                break
            b1 = struct.unpack_from("!Q", buf, pos + 2)[0]
            head = 10
        if end - pos < head + b1:
            break
        frames.append((buf[pos] & 0x0F, bytes(buf[pos + head:pos + head + b1])))
        pos += head + b1
    return frames, pos


PING_FLOOD = client_frame(9, b"p" * 125) * 500


# ---------------------------------------------------------------- the clients

class Conn:
    """One client connection and what it received."""

    __slots__ = ("cid", "role", "server", "sock", "state", "inbuf", "out", "opened", "closed",
                 "last", "first", "gaps", "dups", "reorders", "received", "vanished_at",
                 "close_frame_at", "close_code", "tcp_closed_at", "ended_by", "source", "port",
                 "ping_bytes", "slow_done", "was_refused")

    def __init__(self, cid: int, role: str, server: int) -> None:
        self.cid = cid
        self.role = role            # stable, sender, churn, burst, slow
        self.server = server        # 0 = A, 1 = B
        self.sock: Any = None
        self.state = "connecting"   # connecting, handshake, open, closing, vanished, slow, done
        self.inbuf = bytearray()
        self.out = b""
        self.opened = 0.0
        self.closed = 0.0
        self.last: Dict[str, int] = {}
        self.first: Dict[str, int] = {}
        self.gaps: set = set()
        self.dups = 0
        self.reorders = 0
        self.received = 0
        self.vanished_at = 0.0
        self.close_frame_at = 0.0
        self.close_code = 0
        self.tcp_closed_at = 0.0
        self.ended_by = ""
        self.source = ""
        self.port = 0
        self.ping_bytes = 0
        self.slow_done = False
        self.was_refused = 0


class Clients:
    """Every client socket on one selector, driven by :meth:`step`."""

    def __init__(self, ports: List[int], t0: float) -> None:
        self.ports = ports
        self.t0 = t0
        self.sel = selectors.DefaultSelector()
        self.conns: Dict[int, Conn] = {}
        self.next_cid = 0
        # Held while a socket is closed and while the vanish watcher peeks one (another thread).
        self.lock = threading.Lock()
        self.vanished: Dict[int, Conn] = {}   # cid -> a vanished client still open
        self.sent: Dict[str, Dict[int, float]] = {}      # source -> seq -> send time
        self.source_server: Dict[str, int] = {}
        self.source_conn: Dict[str, int] = {}
        self.source_ended: Dict[str, str] = {}
        self.source_key: Dict[str, str] = {}
        self.latencies: List[float] = []
        self.delivered = 0
        self.connects_ok = 0
        self.connect_failed = 0
        self.refused_503 = 0
        self.ended: List[Conn] = []        # ended lives with something to judge (gaps, repeats, vanished)
        # source -> highest seq received by a client of a worker that was not killed: a killed
        # worker may deliver a message to its own clients and die before Redis has it.
        self.max_seen: Dict[str, int] = {}
        self.killed_sockets: Set[str] = set()   # keys of the sockets the killed workers held
        self.arrival: Dict[str, Dict[int, float]] = {}   # source -> seq -> last time any client got it
        self.anomalies: List[Dict[str, Any]] = []   # the first repeats and reorderings, for the report
        self.counters: Counter = Counter()
        self.requests: List[Tuple[str, Any]] = []   # from the fault thread
        self.pending_handshakes = [0, 0]                 # per server, bursts not counted
        self.endings: Counter = Counter()                # (role, how) of every life that ended

    # -- opening
    def open(self, role: str, server: int) -> Conn:
        self.next_cid += 1
        conn = Conn(self.next_cid, role, server)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if role == "slow":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        conn.sock = sock
        try:
            sock.connect_ex(("127.0.0.1", self.ports[server]))
        except OSError:
            pass
        conn.out = ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % KEY).encode()
        conn.opened = now()
        self.conns[conn.cid] = conn
        if role != "burst":
            self.pending_handshakes[server] += 1
        self.sel.register(sock, selectors.EVENT_WRITE, conn)
        return conn

    def _set_events(self, conn: Conn) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        if conn.state == "slow":
            events = selectors.EVENT_WRITE
        try:
            self.sel.modify(conn.sock, events, conn)
        except (KeyError, ValueError):
            pass

    def finish(self, conn: Conn, how: str) -> None:
        """Forget ``conn``: its socket is closed, its life goes to the judged lives."""
        if conn.state == "done":
            return
        if conn.state in ("connecting", "handshake") and conn.role != "burst":
            self.pending_handshakes[conn.server] -= 1
        conn.state = "done"
        conn.closed = now()
        conn.ended_by = conn.ended_by or how
        self.endings[conn.role + ": " + re.sub(r"\d+", "N", conn.ended_by)] += 1
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        with self.lock:
            try:
                conn.sock.close()
            except OSError:
                pass
        self.conns.pop(conn.cid, None)
        self.vanished.pop(conn.cid, None)
        max_seen = self.max_seen
        for source, last in (conn.last.items() if self.key(conn) not in self.killed_sockets else ()):
            if last > max_seen.get(source, 0):
                max_seen[source] = last
        if conn.role in ("stable", "sender", "churn") and (conn.gaps or conn.dups or conn.reorders
                                                             or conn.vanished_at):
            conn.inbuf = bytearray()
            conn.last = conn.first = {}
            self.ended.append(conn)    # only what the judge needs: a long run ends ~10^6 lives
        if conn.source:
            self.source_ended[conn.source] = how
            self.source_key[conn.source] = self.key(conn)    # kept: the life itself may be forgotten

    def key(self, conn: Conn) -> str:
        """The socket's key in :func:`socket_owners`: client port > server port."""
        return "%d>%d" % (conn.port, self.ports[conn.server])

    def close_clean(self, conn: Conn) -> None:
        if conn.state != "open":
            return
        conn.state = "closing"
        conn.closed = now()
        conn.ended_by = "client close"
        self.send(conn, client_frame(8, struct.pack("!H", 1000)))

    def reset(self, conn: Conn) -> None:
        conn.ended_by = "client reset"
        try:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.finish(conn, "client reset")

    def vanish(self, conn: Conn) -> None:
        """Stop reading and answering: only the server's keepalive can find this one."""
        if conn.state != "open":
            return
        conn.state = "vanished"
        conn.vanished_at = now()
        self.vanished[conn.cid] = conn
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass

    def send(self, conn: Conn, data: bytes) -> None:
        if conn.out:
            conn.out += data
            return
        try:
            n = conn.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.finish(conn, "send failed")
            return
        if n < len(data):
            conn.out = data[n:]
            self._set_events(conn)

    # -- events
    def step(self, timeout: float) -> None:
        for key, mask in self.sel.select(timeout):
            conn = key.data
            if conn.state == "done":
                continue
            if mask & selectors.EVENT_WRITE:
                self._writable(conn)
            if mask & selectors.EVENT_READ and conn.state not in ("done", "slow"):
                self._readable(conn)

    def _writable(self, conn: Conn) -> None:
        if conn.state == "connecting":
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.connect_failed += 1
                self.finish(conn, "connect failed: %s" % os.strerror(err))
                return
            conn.state = "handshake"
            conn.port = conn.sock.getsockname()[1]
        if conn.state == "slow":
            self._flood(conn)
            return
        if conn.out:
            try:
                n = conn.sock.send(conn.out)
            except BlockingIOError:
                n = 0
            except OSError:
                self.finish(conn, "send failed")
                return
            conn.out = conn.out[n:]
        self._set_events(conn)

    def _flood(self, conn: Conn) -> None:
        """Pings as fast as the server takes them, never reading its pongs."""
        try:
            while conn.ping_bytes < 256 * 1024 * 1024:
                data = conn.out or PING_FLOOD
                n = conn.sock.send(data)
                conn.ping_bytes += n
                conn.out = data[n:]
                if conn.out:
                    break
        except BlockingIOError:
            pass
        except OSError as exc:   # the server gave up on us: the point of the exercise
            conn.slow_done = True
            self.counters["slow consumers dropped by the server"] += 1
            self.finish(conn, "slow consumer dropped (%s)" % exc.__class__.__name__)

    def _readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError as exc:
            self.finish(conn, "recv failed: %s" % exc.__class__.__name__)
            return
        if not data:
            self.finish(conn, conn.ended_by or "server closed")
            return
        conn.inbuf += data
        if conn.state == "handshake":
            end = conn.inbuf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(conn.inbuf[9:12])
            del conn.inbuf[:end + 4]
            if conn.role != "burst":
                self.pending_handshakes[conn.server] -= 1
            if status != b"101":
                if status == b"503":
                    self.refused_503 += 1
                self.counters["%s handshake %s" % (conn.role, status.decode("latin-1"))] += 1
                conn.state = "refused"
                self.finish(conn, "refused %s" % status.decode("latin-1"))
                return
            self.counters["%s upgraded" % conn.role] += 1
            conn.state = "open"
            conn.opened = now()
            self.connects_ok += 1
            if conn.role == "slow":
                conn.state = "slow"
                self._set_events(conn)
                return
        self._frames(conn)

    def _frames(self, conn: Conn) -> None:
        frames, used = parse_frames(conn.inbuf)
        if used:
            del conn.inbuf[:used]
        t = now()
        for opcode, payload in frames:
            if opcode == 1:
                self._message(conn, payload, t)
            elif opcode == 9:
                if conn.state == "open":
                    self.send(conn, client_frame(10, payload))
            elif opcode == 8:
                conn.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                if conn.state == "open":
                    conn.ended_by = "server close %d" % conn.close_code
                    self.send(conn, client_frame(8, payload[:2]))
                self.finish(conn, conn.ended_by or "closed")
                return

    def _message(self, conn: Conn, payload: bytes, t: float) -> None:
        try:
            source, seq_s, ms = payload.split(b" ")
            source = source.decode()
            seq = int(seq_s)
        except ValueError:
            self.counters["unparsable messages"] += 1
            return
        conn.received += 1
        self.delivered += 1
        self.latencies.append(t - self.t0 - int(ms) / 1000.0)
        arrivals = self.arrival.get(source)
        if arrivals is None:
            arrivals = self.arrival[source] = {}
        arrivals[seq] = t                   # ends as the last arrival anywhere
        last = conn.last.get(source)
        if last is None:
            conn.first[source] = seq
            conn.last[source] = seq
        elif seq < conn.first[source]:
            # Published before an earlier one reached us: this client joined while it was
            # on its way (delayed, e.g. by a stopped Redis), not a repeat.
            conn.gaps.update((source, n) for n in range(seq + 1, conn.first[source]))
            conn.first[source] = seq
            self.counters["arrived before the first one seen (joined meanwhile)"] += 1
        elif seq == last + 1:
            conn.last[source] = seq
        elif seq > last + 1:
            for missing in range(last + 1, seq):
                conn.gaps.add((source, missing))
            conn.last[source] = seq
        elif (source, seq) in conn.gaps:
            conn.gaps.discard((source, seq))
            conn.reorders += 1
            self.anomaly("reordered", conn, source, seq, last, t)
        else:
            conn.dups += 1
            self.anomaly("repeated", conn, source, seq, last, t)

    def anomaly(self, kind: str, conn: Conn, source: str, seq: int, last: int, t: float) -> None:
        self.counters["%s (%s)" % (kind, "chat" if source.startswith("s") else "POST /publish")] += 1
        if len(self.anomalies) < 300:
            self.anomalies.append({"kind": kind, "t": round(t - self.t0, 2), "receiver": conn.cid, "role": conn.role,
                                   "server": "AB"[conn.server], "port": conn.port, "source": source, "seq": seq,
                                   "last": last, "sent_at": round(self.sent.get(source, {}).get(seq, 0) - self.t0, 2)})

    # -- sending numbered messages
    def chat(self, conn: Conn) -> None:
        if conn.state != "open":
            return
        seqs = self.sent.setdefault(conn.source, {})
        seq = len(seqs) + 1
        t = now()
        seqs[seq] = t
        self.send(conn, client_frame(1, ("%s %d %d" % (conn.source, seq, int((t - self.t0) * 1000))).encode()))

    def open_counts(self) -> Dict[str, int]:
        counts: Counter = Counter()
        for conn in list(self.conns.values()):
            counts[conn.state] += 1
        return dict(counts)


# ---------------------------------------------------------------- processes

def start_redis(port: int, workdir: str) -> subprocess.Popen:
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir,
                             "--loglevel", "warning"],
                            stdout=open(os.path.join(workdir, "redis.log"), "ab"), stderr=subprocess.STDOUT)
    deadline = now() + 10
    while now() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start on port %d" % port)


def start_server(name: str, port: int, redis_port: int, args: Any, out: str, max_conn: int,
                 nofile: Optional[int]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ratchet_sel", "chat", "--host", "127.0.0.1", "--port", str(port),
           "--workers", "2", "--redis", "redis://127.0.0.1:%d/0" % redis_port,
           "--max-connections", str(max_conn), "--keepalive", str(args.keepalive),
           "--metrics", "--health", "/healthz", "--publish-token", TOKEN]

    def limit() -> None:
        if nofile:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, preexec_fn=limit, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(out, "server-%s.log" % name), "ab"))
    deadline = now() + 30
    while now() < deadline:
        if http_get(port, "/healthz") is not None and len(children(proc.pid)) == 2:
            return proc
        time.sleep(0.2)
    raise SystemExit("server %s did not start; see %s/server-%s.log" % (name, out, name))


def http_get(port: int, path: str, timeout: float = 3.0) -> Optional[str]:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read().decode()
        conn.close()
        return body if resp.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None


def children(pid: int) -> List[int]:
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def proc_figures(pid: int) -> Optional[Tuple[float, int, float]]:
    """(RSS MiB, open fds, CPU seconds) of ``pid`` from /proc, or None if it is gone."""
    try:
        with open("/proc/%d/statm" % pid) as f:
            rss = int(f.read().split()[1]) * PAGE / 1048576.0
        fds = len(os.listdir("/proc/%d/fd" % pid))
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return rss, fds, cpu
    except (OSError, IndexError, ValueError):
        return None


def socket_owners(pids: Dict[int, str]) -> Dict[str, str]:
    """Socket key (see :meth:`Clients.key`) -> process name, for the sockets ``pids`` hold (from /proc).

    A key names the client's port *and* the server's: Linux gives one ephemeral port to two
    connections at once when their destinations differ, so a client of server A and one of
    server B can share a port number, and a map by port alone mixed them up (it put receivers
    on server B on the sender's worker of server A)."""
    inode_owner = {}
    for pid, name in pids.items():
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inode_owner[target[8:-1]] = name
        except OSError:
            continue
    owners = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            owner = inode_owner.get(parts[9])
            if owner is not None:
                owners["%d>%d" % (int(parts[2].split(":")[1], 16), int(parts[1].split(":")[1], 16))] = owner
    return owners


def metric_sum(text: Optional[str], name: str, label: str = "") -> Optional[float]:
    if text is None:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def load_average() -> List[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ---------------------------------------------------------------- the run

class Soak:
    """The processes, the clients, the sampler and the fault schedule of one run."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self.out = args.out
        os.makedirs(self.out, exist_ok=True)
        # The servers' logs are judged (workers replaced, reconnects counted), so a run must
        # not read an earlier run's lines left in the same folder: start them empty.
        for name in ("A", "B"):
            open(os.path.join(self.out, "server-%s.log" % name), "wb").close()
        self.workdir = tempfile.mkdtemp(prefix="soak-redis-")
        self.t0 = now()
        self.end_at = self.t0 + args.duration
        self.stop_sending_at = self.end_at - args.drain
        self.redis_port = free_port()
        self.ports = [free_port(), free_port()]
        share = args.connections // 4                      # per worker
        self.max_conn_a = int(share * 1.3) + 64
        self.nofile_b = int(share * 1.3) + 64
        self.redis: Any = None
        self.servers: List[subprocess.Popen] = []
        self.clients = Clients(self.ports, self.t0)
        self.samples: List[Dict[str, Any]] = []
        self.events: List[Dict[str, Any]] = []
        self.names: Dict[int, str] = {}
        self.stop = threading.Event()
        self.sending = False
        self.churn_due: Dict[int, float] = {}
        self.sender_due: Dict[int, float] = {}
        self.burst_results: Dict[str, Any] = {}
        self.state_counts: Dict[str, int] = {}
        self.loop_gap_max = 0.0

    def rel(self, t: float) -> float:
        return round(t - self.t0, 2)

    def event(self, kind: str, **details: Any) -> Dict[str, Any]:
        record = dict(kind=kind, t=self.rel(now()), **details)
        self.events.append(record)
        log("event %s %s" % (kind, json.dumps(details, default=str)[:200]))
        return record

    def process_table(self) -> Dict[int, str]:
        """pid -> name of every server process now (masters, workers, redis)."""
        table = {}
        for name, proc in zip("AB", self.servers):
            table[proc.pid] = "%s master" % name
            for pid in sorted(children(proc.pid)):
                table[pid] = "%s worker %d" % (name, pid)
        if self.redis is not None:
            table[self.redis.pid] = "redis %d" % self.redis.pid
        return table

    def workers_only(self) -> Dict[int, str]:
        return {pid: name for pid, name in self.process_table().items() if "worker" in name}

    # -- setup and teardown
    def start(self) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.redis = start_redis(self.redis_port, self.workdir)
        self.servers.append(start_server("A", self.ports[0], self.redis_port, self.args, self.out,
                                         self.max_conn_a, None))
        self.servers.append(start_server("B", self.ports[1], self.redis_port, self.args, self.out,
                                         10 * self.args.connections, self.nofile_b))
        self.event("started", redis_port=self.redis_port, ports=self.ports,
                   a_max_connections_per_worker=self.max_conn_a, b_nofile_per_process=self.nofile_b,
                   client_nofile=hard)

    def shutdown(self) -> Dict[str, Any]:
        statuses = {}
        for name, proc in zip("AB", self.servers):
            proc.send_signal(signal.SIGTERM)
        for name, proc in zip("AB", self.servers):
            try:
                statuses[name] = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                statuses[name] = "killed after 30 s"
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return statuses

    # -- the client loop (main thread)
    def run_clients(self) -> None:
        clients = self.clients
        args = self.args
        stable_target = args.connections // 4
        churn_target = args.connections - stable_target
        warm = True
        next_tick = now()
        last_iteration = now()
        while now() < self.end_at and not self.stop.is_set():
            clients.step(0.02)
            t = now()
            self.loop_gap_max = max(self.loop_gap_max, t - last_iteration)
            last_iteration = t
            self.handle_requests()
            if t < next_tick:
                continue
            next_tick = t + 0.1
            self.state_counts = Counter(c.state for c in clients.conns.values())
            roles = Counter((c.role, c.server) for c in clients.conns.values()
                            if c.state in ("open", "connecting", "handshake"))
            if warm:
                self.fill(roles, stable_target, churn_target, 400)
                if self.state_counts.get("open", 0) >= 0.98 * args.connections and \
                        self.state_counts.get("open", 0) >= 0.98 * args.connections:
                    warm = False
                    self.first_send = t
                    self.sending = True
                    gc.freeze()     # the warm-up's objects leave the collector's scans: no long pauses later
                    self.event("warm", open=self.state_counts.get("open", 0),
                               seconds=self.rel(t))
                continue
            self.fill(roles, stable_target, churn_target, 60)
            self.churn(t)
            if self.sending:
                self.send_chat(t)
                if t >= self.stop_sending_at:
                    self.sending = False
                    self.event("sending stopped")
            self.check_vanished(t)
            self.expire_handshakes(t)

    def fill(self, roles: Counter, stable_target: int, churn_target: int, budget: int) -> None:
        """Open clients until each role has its count on each server (half each), with at most
        ``budget`` handshakes in flight per server: a server that does not accept holds back
        only its own half."""
        clients = self.clients
        pending = clients.pending_handshakes
        for server in (0, 1):
            senders = roles[("sender", server)]
            while senders < (self.args.senders + 1 - server) // 2 and pending[server] < budget:
                self.sources_new(clients.open("sender", server))
                senders += 1
            stable = roles[("stable", server)] + senders
            while stable < stable_target // 2 and pending[server] < budget:
                clients.open("stable", server)
                stable += 1
            churn = roles[("churn", server)]
            while churn < churn_target // 2 and pending[server] < budget:
                conn = clients.open("churn", server)
                churn += 1
                low, high = self.args.churn_life
                self.churn_due[conn.cid] = now() + random.uniform(low, high)

    def sources_new(self, conn: Conn) -> None:
        self.clients.counters["sender lives"] += 1
        conn.source = "s%d" % conn.cid
        self.clients.source_server[conn.source] = conn.server
        self.clients.source_conn[conn.source] = conn.cid
        self.sender_due[conn.cid] = now() + random.uniform(0, self.args.senders / self.args.rate)

    def churn(self, t: float) -> None:
        clients = self.clients
        due = [cid for cid, when in self.churn_due.items() if when <= t]
        vanish_p = self.args.vanish_rate * (sum(self.args.churn_life) / 2) / max(1, len(self.churn_due))
        for cid in due:
            del self.churn_due[cid]
            conn = clients.conns.get(cid)
            if conn is None or conn.state != "open":
                continue
            pick = random.random()
            if pick < vanish_p:
                clients.vanish(conn)
            elif pick < 0.5 + vanish_p / 2:
                clients.close_clean(conn)
                clients.counters["clean closes"] += 1
            else:
                clients.reset(conn)
                clients.counters["resets"] += 1
        stuck = [c for c in clients.conns.values() if c.state == "closing" and t - c.closed > 10]
        for conn in stuck:
            clients.counters["close handshakes unanswered for 10 s"] += 1
            clients.finish(conn, "close handshake unanswered")

    def send_chat(self, t: float) -> None:
        interval = self.args.senders / self.args.rate
        for cid, when in list(self.sender_due.items()):
            if when > t:
                continue
            conn = self.clients.conns.get(cid)
            if conn is None:
                del self.sender_due[cid]
                continue
            self.sender_due[cid] = when + interval if t - when < interval else t + interval
            self.clients.chat(conn)

    def watch_vanished(self) -> None:
        """Thread: every 0.2 s, has the server sent its close frame to a vanished client (peeked),
        has it dropped TCP?  A thread of its own, not the clients' loop: that loop lags by up
        to seconds under 10,000 connections, and the lag was read as the server's lateness."""
        clients = self.clients
        while not self.stop.wait(0.2):
            for conn in list(clients.vanished.values()):
                with clients.lock:
                    if conn.state != "vanished":
                        continue
                    t = now()
                    if not conn.close_frame_at:
                        try:
                            peeked = conn.sock.recv(1024 * 1024, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                        except OSError:
                            peeked = b""
                        frames, _ = parse_frames(bytearray(conn.inbuf) + peeked)
                        for opcode, payload in frames:
                            if opcode == 8:
                                conn.close_frame_at = t
                                conn.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    try:
                        info = conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
                    except OSError:
                        continue
                    if info[0] != TCP_ESTABLISHED and not conn.tcp_closed_at:
                        conn.tcp_closed_at = t

    def check_vanished(self, t: float) -> None:
        """Once a second, in the clients' loop: forget the vanished clients the watcher saw closed."""
        if int(t) == int(t - 0.1):
            return
        clients = self.clients
        for conn in list(clients.vanished.values()):
            if conn.tcp_closed_at:
                clients.finish(conn, "vanished; server closed")
            elif t - conn.vanished_at > 4 * self.args.keepalive + 30:
                clients.finish(conn, "vanished; never closed by the server")

    def expire_handshakes(self, t: float) -> None:
        for conn in [c for c in self.clients.conns.values() if c.state in ("connecting", "handshake")]:
            if t - conn.opened > 15 and conn.role != "burst":
                self.clients.counters["handshake timeouts"] += 1
                self.clients.finish(conn, "handshake timeout")

    # -- requests from the fault thread, run in the loop
    def handle_requests(self) -> None:
        while self.clients.requests:
            what, arg = self.clients.requests.pop(0)
            if what == "burst":
                server, count, tag = arg
                for _ in range(count):
                    conn = self.clients.open("burst", server)
                    conn.source = tag
            elif what == "end burst":
                for conn in [c for c in self.clients.conns.values() if c.role == "burst" and c.source == arg]:
                    if conn.state == "open":
                        self.clients.close_clean(conn)
                    else:
                        self.clients.finish(conn, "burst over")
            elif what == "slow":
                for i in range(arg):
                    self.clients.open("slow", i % 2)

    # -- sampling (its own thread)
    def sample_loop(self) -> None:
        last_cpu: Dict[int, float] = {}
        last_t = now()
        last_delivered = 0
        last_sent_total = 0.0
        while not self.stop.is_set():
            t = now()
            record = self.sample(last_cpu, t - last_t)
            delivered = self.clients.delivered
            record["deliveries_per_s"] = round((delivered - last_delivered) / max(1e-6, t - last_t), 1)
            sent_total = record.get("metrics_messages_sent") or 0.0
            record["server_sends_per_s"] = round((sent_total - last_sent_total) / max(1e-6, t - last_t), 1)
            last_delivered, last_t, last_sent_total = delivered, t, sent_total
            self.samples.append(record)
            self.stop.wait(self.args.sample)

    def sample(self, last_cpu: Dict[int, float], dt: float) -> Dict[str, Any]:
        t = now()
        record: Dict[str, Any] = {"t": self.rel(t), "procs": {}}
        table = self.process_table()
        table[os.getpid()] = "soak client"
        for pid, name in table.items():
            figures = proc_figures(pid)
            if figures is None:
                continue
            rss, fds, cpu = figures
            cpu_share = (cpu - last_cpu[pid]) / dt if pid in last_cpu and dt > 0 else None
            last_cpu[pid] = cpu
            record["procs"][name] = {"pid": pid, "rss_mib": round(rss, 2), "fds": fds,
                                     "cpu": None if cpu_share is None else round(cpu_share, 3)}
        opens, sent = 0.0, 0.0
        for port in self.ports:
            text = http_get(port, "/metrics", timeout=5)
            value = metric_sum(text, "ratchet_sel_connections_open")
            opens = None if value is None or opens is None else opens + value
            sent_now = metric_sum(text, "ratchet_sel_messages_sent_total")
            sent = None if sent_now is None or sent is None else sent + sent_now
        record["metrics_open"] = opens
        record["metrics_messages_sent"] = sent
        counts = dict(self.state_counts)
        record["client_open"] = counts.get("open", 0) + counts.get("vanished", 0) + counts.get("slow", 0) \
            + counts.get("closing", 0)
        record["client_states"] = counts
        latencies, self.clients.latencies = self.clients.latencies, []
        latencies.sort()
        if latencies:
            record["latency_p50_ms"] = round(1000 * latencies[len(latencies) // 2], 2)
            record["latency_p99_ms"] = round(1000 * latencies[int(len(latencies) * 0.99)], 2)
            record["latency_max_ms"] = round(1000 * latencies[-1], 2)
        record["client_loop_gap_max_ms"] = round(1000 * self.loop_gap_max, 1)
        self.loop_gap_max = 0.0
        record["load"] = load_average()
        return record

    # -- POST /publish broadcasts (its own thread)
    def publish_loop(self) -> None:
        """POST /publish to each server in turn; one numbered source per server ("bA", "bB").

        The endpoint closes the connection after each answer, so each publication may
        come from another worker of that server: two of them are seconds apart, so
        any reordering among them is still reported."""
        seqs = [0, 0]
        turn = 0
        interval = 1.0 / self.args.broadcast_rate if self.args.broadcast_rate > 0 else None
        while interval and not self.stop.is_set() and now() < self.stop_sending_at:
            if not self.sending:
                self.stop.wait(0.2)
                continue
            server = turn % 2
            turn += 1
            source = "b" + "AB"[server]
            self.clients.source_server[source] = server
            seqs[server] += 1
            t = now()
            body = "%s %d %d" % (source, seqs[server], int((t - self.t0) * 1000))
            conn = http.client.HTTPConnection("127.0.0.1", self.ports[server], timeout=10)
            try:
                self.clients.sent.setdefault(source, {})[seqs[server]] = t
                conn.request("POST", "/publish", body=body.encode(),
                             headers={"Authorization": "Bearer " + TOKEN,
                                      "Content-Type": "text/plain; charset=utf-8"})
                response = conn.getresponse()
                response.read()
                if response.status != 200:   # refused (503 at capacity): nothing was published
                    self.clients.counters["publish answered %d" % response.status] += 1
                    del self.clients.sent[source][seqs[server]]
                    seqs[server] -= 1
            except (OSError, http.client.HTTPException) as exc:
                self.clients.counters["publish errors: %s" % exc.__class__.__name__] += 1
            finally:
                conn.close()
            self.stop.wait(interval)

    # -- faults (their own thread)
    def schedule(self) -> List[Tuple[float, str]]:
        """(seconds from the start, fault): rounds of every fault, the last tenth of the run quiet."""
        d = self.args.duration
        kinds = ["kill_worker", "redis_stop", "redis_restart", "burst_max_connections", "burst_fd_limit",
                 "slow_consumers"]
        if self.args.smoke:
            return [(15, "burst_max_connections"), (25, "burst_fd_limit"), (35, "slow_consumers"),
                    (50, "kill_worker"), (58, "redis_stop"), (98, "redis_restart"),
                    (115, "burst_max_connections"), (125, "burst_fd_limit")]
        if self.args.faults:
            kinds = [k for k in kinds if k in self.args.faults]
        rounds = [0.05, 0.25, 0.58] if d >= 1800 else [0.1, 0.45]
        spacing = min(90.0, d * 0.9 / (len(rounds) * len(kinds) + 2))
        plan = []
        for start in rounds:
            for i, kind in enumerate(kinds):
                plan.append((max(start * d, 30.0) + i * spacing, kind))
        return [(t, kind) for t, kind in plan if t < d * 0.85]

    def fault_loop(self) -> None:
        for at, kind in self.schedule():
            while not self.stop.is_set() and now() < self.t0 + at:
                self.stop.wait(0.2)
            if self.stop.is_set() or not self.sending:
                if self.stop.is_set():
                    return
                self.event("fault skipped", fault=kind, why="not sending (still warming up or draining)")
                continue
            try:
                getattr(self, "fault_" + kind)()
            except Exception as exc:   # a broken fault must not stop the run; it is reported
                self.event("fault error", fault=kind, error=repr(exc))

    def fault_kill_worker(self) -> None:
        master = self.servers[0].pid
        before = sorted(children(master))
        owners = socket_owners(self.workers_only())
        victim = before[0]
        sockets = [k for k, name in owners.items() if name.endswith(" %d" % victim)]
        self.clients.killed_sockets.update(sockets)
        os.kill(victim, signal.SIGKILL)
        record = self.event("kill -9 worker", server="A", pid=victim, sockets=sockets)
        deadline = now() + 60
        while now() < deadline:
            after = children(master)
            if len(after) == 2 and victim not in after:
                record["respawned_after_s"] = round(self.rel(now()) - record["t"], 2)
                record["new_pid"] = [p for p in after if p not in before][0]
                return
            time.sleep(0.05)
        record["respawned_after_s"] = None

    def fault_redis_stop(self) -> None:
        record = self.event("redis SIGSTOP", owners=socket_owners(self.workers_only()))
        os.kill(self.redis.pid, signal.SIGSTOP)
        self.stop.wait(self.args.redis_stop)
        os.kill(self.redis.pid, signal.SIGCONT)
        record["end"] = self.rel(now())
        self.event("redis SIGCONT")

    def fault_redis_restart(self) -> None:
        restored_before = self.count_log("restored after")
        record = self.event("redis restart", owners=socket_owners(self.workers_only()))
        self.redis.terminate()
        self.redis.wait(10)
        self.redis = start_redis(self.redis_port, self.workdir)
        record["redis_back"] = self.rel(now())
        deadline = now() + 60
        while now() < deadline and self.count_log("restored after") < restored_before + 4:
            time.sleep(0.1)
        record["all_restored"] = self.rel(now())

    def count_log(self, needle: str) -> int:
        total = 0
        for name in "AB":
            with open(os.path.join(self.out, "server-%s.log" % name), errors="replace") as f:
                total += f.read().count(needle)
        return total

    def fds_of(self, server: int) -> Dict[int, int]:
        result = {}
        for pid in [self.servers[server].pid] + children(self.servers[server].pid):
            figures = proc_figures(pid)
            if figures is not None:
                result[pid] = figures[1]
        return result

    def burst(self, server: int, label: str, count: int) -> None:
        tag = "burst%d" % len(self.events)
        before = self.fds_of(server)
        refused_before = self.clients.refused_503
        upgraded_before = self.clients.counters["burst upgraded"]
        record = self.event(label, server="AB"[server], connections=count, fds_before=before)
        self.clients.requests.append(("burst", (server, count, tag)))
        self.stop.wait(self.args.burst_hold)
        record["during"] = self.fds_of(server)
        record["refused_503"] = self.clients.refused_503 - refused_before
        record["upgraded"] = self.clients.counters["burst upgraded"] - upgraded_before
        self.clients.requests.append(("end burst", tag))
        deadline = now() + 60
        while now() < deadline:
            fds = self.fds_of(server)
            back = all(fds.get(pid, 0) <= self.fd_tolerance(n) for pid, n in before.items())
            if back:
                record["fds_after"] = fds
                record["back_after_s"] = round(self.rel(now()) - record["t"] - self.args.burst_hold, 2)
                return
            time.sleep(0.5)
        record["fds_after"] = self.fds_of(server)
        record["back_after_s"] = None

    @staticmethod
    def fd_tolerance(baseline: int) -> float:
        """fds 'back to baseline': within 2 % (+10) of it, the churn moves the held count meanwhile."""
        return baseline * 1.02 + 10

    def fault_burst_max_connections(self) -> None:
        self.burst(0, "burst past --max-connections", self.args.burst)

    def fault_burst_fd_limit(self) -> None:
        self.burst(1, "burst past the fd limit", self.args.burst)

    def fault_slow_consumers(self) -> None:
        before = self.slow_closed()
        dropped = self.clients.counters["slow consumers dropped by the server"]
        record = self.event("slow consumers", count=self.args.slow)
        self.clients.requests.append(("slow", self.args.slow))
        deadline = now() + 60
        while now() < deadline:
            if self.clients.counters["slow consumers dropped by the server"] - dropped >= self.args.slow:
                break
            time.sleep(0.5)
        record["dropped_by_server"] = self.clients.counters["slow consumers dropped by the server"] - dropped
        record["seconds"] = round(self.rel(now()) - record["t"], 2)
        after = self.slow_closed()
        record["metrics_slow_clients_closed"] = None if None in (before, after) else after - before

    def slow_closed(self) -> Optional[float]:
        total = 0.0
        for port in self.ports:
            value = metric_sum(http_get(port, "/metrics"), "ratchet_sel_slow_clients_total", 'action="closed"')
            if value is None:
                return None
            total += value
        return total

    # -- judging
    def redis_windows(self) -> List[Dict[str, Any]]:
        """The Redis outages that a worker noticed: from the fault to the last 'restored' (+1 s)."""
        windows = []
        restored = self.log_times("restored after")
        lost = self.log_times("connection lost") + self.log_times("; reconnecting")
        for ev in self.events:
            if ev["kind"] not in ("redis SIGSTOP", "redis restart"):
                continue
            horizon = (ev.get("end", ev["t"]) + 10) if ev["kind"] == "redis SIGSTOP" else ev["t"] + 60
            noticed = [t for t in lost if ev["t"] - 1 <= t <= horizon]
            if not noticed:
                continue
            back = [t for t in restored if ev["t"] <= t <= horizon + 60]
            end = (max(back) if back else horizon) + 1.0
            windows.append({"fault": ev["kind"], "start": ev["t"], "end": round(end, 2),
                            "owners": ev.get("owners", {}), "lost_logged": len(noticed)})
        return windows

    def log_times(self, needle: str) -> List[float]:
        """Times (seconds from the start) of the server log lines containing ``needle``."""
        times = []
        for name in "AB":
            with open(os.path.join(self.out, "server-%s.log" % name), errors="replace") as f:
                for line in f:
                    if needle in line:
                        try:
                            stamp = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S"))
                            times.append(stamp + int(line[20:23]) / 1000.0 - self.t0)
                        except ValueError:
                            continue
        return times

    def judge_messages(self) -> Dict[str, Any]:
        clients = self.clients
        lives = clients.ended + list(clients.conns.values())
        lives = [c for c in lives if c.role in ("stable", "sender", "churn")]
        windows = self.redis_windows()
        kills = [ev for ev in self.events if ev["kind"] == "kill -9 worker"]
        killed_sockets = {k for ev in kills for k in ev.get("sockets", [])}
        source_key = {}
        cid_key = {c.cid: clients.key(c) for c in lives}
        for source, cid in clients.source_conn.items():
            source_key[source] = cid_key.get(cid) or clients.source_key.get(source, "")
        max_seen = dict(clients.max_seen)
        for conn in lives:
            if clients.key(conn) in clients.killed_sockets:
                continue
            for source, last in conn.last.items():
                max_seen[source] = max(max_seen.get(source, 0), last)
        killed_sources = {s for s, k in source_key.items() if k in killed_sockets}
        expected_last = {}
        for source, seqs in clients.sent.items():
            expected_last[source] = max_seen.get(source, 0) if source in killed_sources else len(seqs)
        in_flight_at_kill = {s: len(clients.sent.get(s, {})) - max_seen.get(s, 0) for s in killed_sources}

        def window_of(source: str, seq: int, conn: Conn) -> Optional[str]:
            sent_at = clients.sent.get(source, {}).get(seq)
            if sent_at is None:
                return None
            t = sent_at - self.t0
            for w in windows:
                if w["start"] <= t <= w["end"]:
                    owners = w["owners"]
                    src_owner = owners.get(source_key.get(source, ""))
                    dst_owner = owners.get(clients.key(conn))
                    if src_owner is None or dst_owner is None or src_owner != dst_owner:
                        return w["fault"]
            return None

        chat_reorders = clients.counters["reordered (chat)"]
        result = {"lives_judged": len(lives), "stable_lives": 0, "messages_sent": sum(len(s) for s in clients.sent.values()),
                  "sources": len(clients.sent), "delivered": clients.delivered, "lost": 0, "lost_examples": [],
                  "duplicated": sum(c.dups for c in lives), "reordered": sum(c.reorders for c in lives),
                  "reordered_chat": chat_reorders,
                  "reordered_note": "POST /publish lands on either worker of a server: two broadcasts from two "
                                    "workers have no common order (docs/scaling.md); a chat client's messages do",
                  "missed_by_a_client_that_closed_first": 0, "sent_before_the_client_joined": 0,
                  "lost_in_windows": Counter(), "in_flight_at_kill": in_flight_at_kill}
        end_time = now()
        by_second: Counter = Counter()
        for conn in lives:
            missing = set(conn.gaps)
            stable = conn.role in ("stable", "sender") and conn.state != "done" and conn.opened < self.first_send
            if stable:
                result["stable_lives"] += 1
                for source, last in expected_last.items():
                    if source == conn.source:
                        continue
                    first = conn.first.get(source, last + 1)
                    got_last = conn.last.get(source, 0)
                    missing.update((source, n) for n in range(1, min(first, last + 1)))
                    missing.update((source, n) for n in range(max(got_last, first - 1) + 1, last + 1))
            life_end = conn.vanished_at or (conn.closed if conn.state == "done" else end_time)
            for source, seq in missing:
                sent_at = clients.sent.get(source, {}).get(seq)
                if sent_at is not None and sent_at < conn.opened:
                    result["sent_before_the_client_joined"] += 1   # a late arrival may reach it, or not
                    continue
                arrived = clients.arrival.get(source, {}).get(seq)
                if arrived is not None and arrived + 1.0 > life_end:
                    result["missed_by_a_client_that_closed_first"] += 1   # still on its way when it left
                    continue
                window = window_of(source, seq, conn)
                sent_at = clients.sent.get(source, {}).get(seq)
                second = None if sent_at is None else int(sent_at - self.t0)
                by_second[(window or "outside", second, source)] += 1
                if window is not None:
                    result["lost_in_windows"][window] += 1
                    continue
                result["lost"] += 1
                if len(result["lost_examples"]) < 20:
                    sent_at = clients.sent.get(source, {}).get(seq)
                    result["lost_examples"].append({
                        "receiver": conn.cid, "role": conn.role, "receiver_server": "AB"[conn.server],
                        "source": source, "seq": seq, "sent_at": None if sent_at is None else self.rel(sent_at),
                        "receiver_ended": conn.ended_by or "open", "receiver_closed": self.rel(conn.closed) if conn.closed else None})
        result["lost_in_windows"] = dict(result["lost_in_windows"])
        result["missing_by_send_second"] = [{"window": w, "sent_second": sec, "source": src, "deliveries": n}
                                            for (w, sec, src), n in sorted(by_second.items(), key=str)][:200]
        latest_owners: Dict[Any, str] = {}
        for w in self.events:
            latest_owners.update(w.get("owners", {}))
        for record in clients.anomalies:
            record["receiver_worker"] = latest_owners.get(
                "%d>%d" % (record["port"], self.ports["AB".index(record["server"])]))
        result["anomalies"] = clients.anomalies
        result["redis_windows"] = [{k: v for k, v in w.items() if k != "owners"} for w in windows]
        result["judged_at"] = self.rel(end_time)
        return result

    def judge_vanished(self) -> Dict[str, Any]:
        vanished = [c for c in self.clients.ended + list(self.clients.conns.values()) if c.vanished_at]
        frame_delays = [c.close_frame_at - c.vanished_at for c in vanished if c.close_frame_at]
        tcp_delays = [c.tcp_closed_at - c.vanished_at for c in vanished if c.tcp_closed_at]
        limit = 2 * self.args.keepalive + 2.0     # +2: measuring slack (the watcher looks every 0.2 s)
        late = [round(c.close_frame_at - c.vanished_at, 1) for c in vanished
                if c.close_frame_at and c.close_frame_at - c.vanished_at > limit]
        never = [c.cid for c in vanished if c.state == "done" and not c.close_frame_at and not c.tcp_closed_at]
        pending = [c for c in vanished if c.state == "vanished"]
        codes = Counter(c.close_code for c in vanished if c.close_frame_at)
        detail = [(self.rel(c.vanished_at), "AB"[c.server], c.port,
                   round(c.close_frame_at - c.vanished_at, 1) if c.close_frame_at else None,
                   round(c.tcp_closed_at - c.vanished_at, 1) if c.tcp_closed_at else None) for c in vanished]
        return {"vanished": len(vanished), "close_frame_seen": len(frame_delays),
                "close_frame_delay_s": summary_stats(frame_delays), "tcp_closed_delay_s": summary_stats(tcp_delays),
                "close_codes": {str(k): v for k, v in codes.items()}, "later_than_2x_keepalive": late,
                "never_closed": never, "still_waiting_at_end": len(pending), "limit_s": limit,
                "detail_t_server_port_frame_tcp": detail}

    def judge_rss(self) -> Dict[str, Any]:
        """RSS drift per process: median of the first 5 samples of its window vs the last 5.

        The window opens at minute 10 (a third of a shorter run), after the first round of
        faults.  A process started during the run (a worker that replaced a killed one, a
        restarted Redis) starts empty: its window opens a minute after its start, and for a
        worker not before the end of the first burst at its server that it lives through.
        CPython keeps the memory of the most connections a process has held (pymalloc's
        arenas stay pinned by a few live objects; docs/endurance.md, "What the soak found"),
        so a burst sets a high-water mark once, and later bursts reuse it: the first burst
        is the new worker's round one, as the first round is everyone else's.  The drift
        from a minute after the start is reported too (``drift_from_start_pct``)."""
        window_start = 600.0 if self.args.duration >= 1800 else self.args.duration / 3.0
        series: Dict[str, List[Tuple[float, float]]] = {}
        for s in self.samples:
            for name, p in s["procs"].items():
                if name != "soak client":
                    series.setdefault(name, []).append((s["t"], p["rss_mib"]))
        bursts = [(ev["t"], ev.get("server")) for ev in self.events if ev["kind"].startswith("burst")]
        end = self.args.duration - self.args.drain / 2
        result = {}
        for name, points in series.items():
            first_t = points[0][0]
            start = early = max(window_start, first_t + 60.0)
            if first_t > 5.0 and " worker " in name:
                after = [t for t, server in bursts if server == name[0] and t > first_t]
                if after:
                    start = max(start, after[0] + self.args.burst_hold + 10.0)
            inside = [(t, r) for t, r in points if start <= t <= end]
            if len(inside) < 10:
                result[name] = {"judged": False, "why": "fewer than 10 samples in its window (a late process)",
                                "samples": len(inside)}
                continue
            head = statistics.median(r for _, r in inside[:5])
            tail = statistics.median(r for _, r in inside[-5:])
            from_start = [r for t, r in points if early <= t <= end]
            early_head = statistics.median(from_start[:5])
            result[name] = {"judged": True, "from_s": inside[0][0], "to_s": inside[-1][0],
                            "rss_start_mib": round(head, 2), "rss_end_mib": round(tail, 2),
                            "drift_pct": round(100.0 * (tail - head) / head, 2),
                            "drift_from_start_pct": round(100.0 * (tail - early_head) / early_head, 2),
                            "max_mib": round(max(r for _, r in points), 2)}
        return result

    def log_volume(self) -> Dict[str, Any]:
        result = {}
        hours = self.args.duration / 3600.0
        for name in "AB":
            kinds: Counter = Counter()
            levels: Counter = Counter()
            lines = 0
            tracebacks = 0
            with open(os.path.join(self.out, "server-%s.log" % name), errors="replace") as f:
                for line in f:
                    lines += 1
                    if "Traceback" in line:
                        tracebacks += 1
                    parts = line.split(" ", 4)
                    if len(parts) == 5:
                        levels[parts[2]] += 1
                        kinds[normalise(parts[4])] += 1
            result[name] = {"lines": lines, "lines_per_hour": round(lines / hours), "levels": dict(levels),
                            "tracebacks": tracebacks, "top": kinds.most_common(10)}
        return result


def normalise(message: str) -> str:
    """A log line without its numbers, addresses and object reprs: its kind."""
    message = re.sub(r"<[^>]*>", "<..>", message.strip())
    message = re.sub(r"\d+(\.\d+)?", "N", message)
    return message[:140]


def summary_stats(values: List[float]) -> Optional[Dict[str, float]]:
    if not values:
        return None
    values = sorted(values)
    return {"n": len(values), "min": round(values[0], 2), "median": round(statistics.median(values), 2),
            "p99": round(values[int(len(values) * 0.99)], 2), "max": round(values[-1], 2)}


# ---------------------------------------------------------------- the picture (SVG, no library)

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
          "#7f7f7f", "#bcbd22", "#393b79", "#637939"]


def svg_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** int(("%e" % value).split("e")[1])
    for step in (1, 2, 2.5, 5, 10):
        if step * exp >= value:
            return step * exp
    return 10 * exp


def draw_panel(title: str, series: Dict[str, List[Tuple[float, float]]], top: float, duration: float,
               marks: List[Tuple[float, str]], log_scale: bool = False) -> List[str]:
    """One chart: a title, axes, one polyline per series, a legend, the fault marks."""
    left, width, height = 70, 820, 170
    out = ['<text x="%d" y="%d" font-weight="bold">%s</text>' % (left, top - 8, svg_escape(title))]
    values = [v for pts in series.values() for _, v in pts if v is not None]
    ymax = nice_max(max(values) if values else 1.0)
    ymin = 0.0
    if log_scale:
        positive = [v for v in values if v > 0] or [1.0]
        ymin = 10 ** int(min(0, int(__import__("math").floor(__import__("math").log10(min(positive))))))
        ymax = 10 ** (int(__import__("math").ceil(__import__("math").log10(max(positive)))) or 1)

    def y_of(v: float) -> float:
        if log_scale:
            import math
            v = max(v, ymin)
            return top + height - height * (math.log10(v) - math.log10(ymin)) / (math.log10(ymax) - math.log10(ymin))
        return top + height - height * (v - ymin) / (ymax - ymin)

    def x_of(t: float) -> float:
        return left + width * t / max(duration, 1.0)

    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>' % (left, top, width, height))
    ticks = [ymax * i / 4 for i in range(5)] if not log_scale else \
        [10 ** e for e in range(int(round(__import__("math").log10(ymin))), int(round(__import__("math").log10(ymax))) + 1)]
    for v in ticks:
        out.append('<text x="%d" y="%.1f" text-anchor="end" font-size="10">%s</text>' % (left - 4, y_of(v) + 3, "%g" % v))
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>' % (left, left + width, y_of(v), y_of(v)))
    minutes = duration / 60.0
    step = max(1, int(nice_max(minutes / 10)))
    m = 0
    while m <= minutes + 1e-9:
        out.append('<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%d</text>' % (x_of(m * 60), top + height + 12, m))
        m += step
    for t, label in marks:
        out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#f90" stroke-dasharray="3,3"/>'
                   % (x_of(t), x_of(t), top, top + height))
    for i, (name, points) in enumerate(sorted(series.items())):
        color = COLORS[i % len(COLORS)]
        path = " ".join("%.1f,%.1f" % (x_of(t), y_of(v)) for t, v in points if v is not None)
        if path:
            out.append('<polyline fill="none" stroke="%s" stroke-width="1.2" points="%s"/>' % (color, path))
        out.append('<text x="%d" y="%d" font-size="10" fill="%s">%s</text>'
                   % (left + width + 8, top + 10 + 12 * i, color, svg_escape(name)))
    return out


def sends_per_second(samples: List[Dict[str, Any]]) -> List[Tuple[float, float]]:
    """Messages sent per second by both servers, from consecutive /metrics totals.

    A sample whose scrape failed (a server at its fd limit) and a total that went
    down (a killed worker's counters went with it) leave a hole, not a spike."""
    points = []
    for before, after in zip(samples, samples[1:]):
        a, b = before.get("metrics_messages_sent"), after.get("metrics_messages_sent")
        if a is not None and b is not None and b >= a and after["t"] > before["t"]:
            points.append((after["t"], round((b - a) / (after["t"] - before["t"]), 1)))
    return points


def draw(samples: List[Dict[str, Any]], events: List[Dict[str, Any]], duration: float, path: str,
         title: str) -> None:
    marks = [(ev["t"], ev["kind"]) for ev in events
             if ev["kind"] not in ("started", "warm", "sending stopped", "redis SIGCONT")]
    panels: List[Tuple[str, Dict[str, List[Tuple[float, float]]], bool]] = []

    def per_process(key: str) -> Dict[str, List[Tuple[float, float]]]:
        series: Dict[str, List[Tuple[float, float]]] = {}
        for s in samples:
            for name, p in s["procs"].items():
                if name != "soak client" and p.get(key) is not None:
                    series.setdefault(name, []).append((s["t"], p[key]))
        return series

    panels.append(("RSS (MiB) of every server process", per_process("rss_mib"), False))
    panels.append(("open fds of every server process", per_process("fds"), False))
    panels.append(("open connections: /metrics (both servers) and the clients' count",
                   {"/metrics": [(s["t"], s.get("metrics_open")) for s in samples],
                    "clients": [(s["t"], s.get("client_open")) for s in samples]}, False))
    panels.append(("messages per second: received by the clients, sent by the servers",
                   {"received": [(s["t"], s.get("deliveries_per_s")) for s in samples],
                    "sent (/metrics)": sends_per_second(samples)}, False))
    panels.append(("delivery latency (ms, log scale): p50, p99 per sample",
                   {"p50": [(s["t"], s.get("latency_p50_ms")) for s in samples if s.get("latency_p50_ms")],
                    "p99": [(s["t"], s.get("latency_p99_ms")) for s in samples if s.get("latency_p99_ms")]}, True))
    cpu = per_process("cpu")
    cpu["soak client"] = [(s["t"], s["procs"]["soak client"]["cpu"]) for s in samples
                          if s["procs"].get("soak client", {}).get("cpu") is not None]
    cpu["load average (1 min) / 2 cores"] = [(s["t"], s["load"][0] / 2) for s in samples]
    panels.append(("CPU (cores) per process; the machine's load", cpu, False))
    height = 60 + len(panels) * 230 + 20 * len(marks) + 40
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="1120" height="%d" font-family="sans-serif" font-size="12">' % height,
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="70" y="24" font-size="15" font-weight="bold">%s</text>' % svg_escape(title)]
    top = 60
    for name, series, log_scale in panels:
        out.extend(draw_panel(name, series, top, duration, marks, log_scale))
        top += 230
    out.append('<text x="70" y="%d">x: minutes from the start; dashed lines: faults</text>' % (top - 20))
    for i, (t, label) in enumerate(marks):
        out.append('<text x="70" y="%d" font-size="11">%6.1f min  %s</text>' % (top + 20 * i, t / 60.0, svg_escape(label)))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# ---------------------------------------------------------------- main

def evaluate(soak: Soak, statuses: Dict[str, Any]) -> Dict[str, Any]:
    """Every goal with its measured value and a verdict."""
    args = soak.args
    goals: Dict[str, Any] = {}
    rss = soak.judge_rss()
    worst = max((v["drift_pct"] for v in rss.values() if v.get("judged")), default=None)
    goals["rss_drift"] = {"ok": worst is not None and worst <= 5.0, "goal": "<= 5 %", "worst_pct": worst,
                          "per_process": rss}
    bursts = [ev for ev in soak.events if ev["kind"].startswith("burst past")]
    goals["fds_back_after_bursts"] = {
        "ok": bool(bursts) and all(ev.get("back_after_s") is not None for ev in bursts),
        "bursts": [{k: ev.get(k) for k in ("kind", "t", "server", "connections", "fds_before", "during",
                                            "fds_after", "back_after_s", "refused_503")} for ev in bursts]}
    messages = soak.judge_messages()
    goals["no_loss_outside_windows"] = {"ok": messages["lost"] == 0 and messages["duplicated"] == 0
                                        and messages["reordered_chat"] == 0 and messages["stable_lives"] > 0
                                        and messages["delivered"] > 0, **messages}
    vanished = soak.judge_vanished()
    goals["vanished_closed_within_2x_keepalive"] = {
        "ok": vanished["vanished"] > 0 and not vanished["later_than_2x_keepalive"] and not vanished["never_closed"],
        **vanished}
    slow = [ev for ev in soak.events if ev["kind"] == "slow consumers"]
    goals["slow_consumers_closed"] = {"ok": bool(slow) and all(ev.get("dropped_by_server") == args.slow for ev in slow),
                                      "rounds": slow}
    kills = [ev for ev in soak.events if ev["kind"] == "kill -9 worker"]
    logs = soak.log_volume()
    replaced = soak.count_log("replacing it")
    crashes = [] if all(status == 0 for status in statuses.values()) else ["exit statuses %s" % statuses]
    crashes += ["%d tracebacks in server %s's log" % (v["tracebacks"], k) for k, v in logs.items() if v["tracebacks"]]
    if replaced != len(kills):
        crashes.append("%d workers replaced, %d killed by the soak" % (replaced, len(kills)))
    crashes += ["fault error: %s" % ev for ev in soak.events if ev["kind"] == "fault error"]
    goals["no_crash"] = {"ok": not crashes, "problems": crashes, "exit_statuses": statuses,
                         "kills": [{k: ev.get(k) for k in ("t", "pid", "new_pid", "respawned_after_s")} for ev in kills]}
    goals["log_volume"] = {"ok": True, "note": "reported, no goal", **logs}
    last = [s for s in soak.samples if s["t"] <= args.duration - 1][-3:]
    goals["connections_counted_alike"] = {
        "ok": True, "note": "reported: /metrics and the clients' count in the last samples",
        "last": [(s["t"], s.get("metrics_open"), s.get("client_open")) for s in last]}
    return goals


def client_report(soak: Soak) -> Dict[str, Any]:
    samples = [s for s in soak.samples if s["procs"].get("soak client", {}).get("cpu") is not None]
    cpu = [s["procs"]["soak client"]["cpu"] for s in samples]
    gaps = [s["client_loop_gap_max_ms"] for s in soak.samples]
    return {"cpu_cores": summary_stats(cpu), "loop_gap_max_ms": summary_stats(gaps),
            "counters": dict(soak.clients.counters), "lives_ended": dict(soak.clients.endings.most_common()), "connects_ok": soak.clients.connects_ok,
            "connect_failed": soak.clients.connect_failed, "refused_503": soak.clients.refused_503,
            "load_average": summary_stats([s["load"][0] for s in soak.samples])}


def markdown(path: str) -> str:
    """The goals, the faults and the figures of a ``soak.json`` as Markdown (for docs/endurance.md)."""
    with open(path) as f:
        data = json.load(f)
    summary, events, samples = data["summary"], data["events"], data["samples"]
    goals = summary["goals"]
    lines = ["| goal | measured | verdict |", "| --- | --- | --- |"]
    rss = goals["rss_drift"]["per_process"]
    judged = {k: v for k, v in rss.items() if v.get("judged")}
    lines.append("| RSS drift ≤ 5 %% (window to the end) | worst %s %%; %s | %s |" % (
        goals["rss_drift"]["worst_pct"], "; ".join(
            "%s from %.0f s: %.1f→%.1f MiB (%+.1f %%; %+.1f %% from a minute after its start)" % (
                k, v["from_s"], v["rss_start_mib"], v["rss_end_mib"], v["drift_pct"],
                v.get("drift_from_start_pct", v["drift_pct"])) for k, v in judged.items()),
        verdict(goals["rss_drift"]["ok"])))
    bursts = goals["fds_back_after_bursts"]["bursts"]
    lines.append("| fds back after each burst | %s | %s |" % ("; ".join(
        "%s at %.0f s: back after %s s" % (b["kind"].replace("burst past ", "past "), b["t"], b["back_after_s"]) for b in bursts),
        verdict(goals["fds_back_after_bursts"]["ok"])))
    m = goals["no_loss_outside_windows"]
    lines.append("| no loss, repeat or chat reordering outside the windows | %d messages sent, %d deliveries; lost %d, "
                 "repeated %d, chat reordered %d; in windows: %s; in flight at a kill: %s; broadcasts reordered %d; "
                 "missed by a client that left first %d; sent before the client joined %d; %d stable clients judged "
                 "in full | %s |" % (m["messages_sent"], m["delivered"], m["lost"], m["duplicated"], m["reordered_chat"],
                                     m["lost_in_windows"] or "none", sum(m["in_flight_at_kill"].values()),
                                     m["reordered"] - m["reordered_chat"], m["missed_by_a_client_that_closed_first"],
                                     m["sent_before_the_client_joined"], m["stable_lives"], verdict(goals["no_loss_outside_windows"]["ok"])))
    v = goals["vanished_closed_within_2x_keepalive"]
    lines.append("| vanished clients closed within 2× keepalive (+2 s) | %d vanished; limit %s s; close frame after "
                 "(median, p99, max) %s, %s, %s s; TCP closed after median %s s, max %s s; codes %s | %s |" % (
                     v["vanished"], v["limit_s"], (v["close_frame_delay_s"] or {}).get("median"),
                     (v["close_frame_delay_s"] or {}).get("p99"), (v["close_frame_delay_s"] or {}).get("max"),
                     (v["tcp_closed_delay_s"] or {}).get("median"), (v["tcp_closed_delay_s"] or {}).get("max"),
                     v["close_codes"], verdict(v["ok"])))
    lines.append("| slow consumers closed at the write limit | %s | %s |" % ("; ".join(
        "%d of %d in %.0f s" % (r.get("dropped_by_server", 0), r["count"], r.get("seconds", 0)) for r in goals["slow_consumers_closed"]["rounds"]),
        verdict(goals["slow_consumers_closed"]["ok"])))
    c = goals["no_crash"]
    lines.append("| no crash | exit statuses %s; %s; workers killed and replaced: %s | %s |" % (
        c["exit_statuses"], "; ".join(c["problems"]) or "no problem", ", ".join(
            "%s s after the kill" % k["respawned_after_s"] for k in c["kills"]), verdict(c["ok"])))
    logs = goals["log_volume"]
    lines.append("| log lines per hour (no goal) | %s | reported |" % "; ".join(
        "server %s: %d (%s)" % (k, logs[k]["lines_per_hour"], logs[k]["levels"]) for k in "AB"))
    lines += ["", "Faults and what they did:", "", "| min | fault | effect |", "| ---: | --- | --- |"]
    for ev in events:
        if ev["kind"] in ("started", "warm", "sending stopped", "redis SIGCONT"):
            continue
        effect = {k: ev[k] for k in ev if k not in ("kind", "t", "sockets", "owners", "fds_before", "during", "fds_after")}
        if "fds_before" in ev:
            effect["fds (before, during, after)"] = [sum(ev["fds_before"].values()), sum((ev.get("during") or {}).values()),
                                                     sum((ev.get("fds_after") or {}).values())]
        lines.append("| %.1f | %s | %s |" % (ev["t"] / 60.0, ev["kind"], json.dumps(effect)))
    client = summary["client"]
    loads = [x["load"][0] for x in samples]
    lines += ["", "Client: CPU (cores) %s; longest loop iteration per sample (ms) %s; machine load average (1 min) "
              "median %.1f, max %.1f on %s cores." % (client["cpu_cores"], client["loop_gap_max_ms"],
                                                     statistics.median(loads), max(loads), summary["cpu_count"])]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def parse_args(argv: Optional[List[str]] = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds (default 3600)")
    parser.add_argument("--smoke", action="store_true", help="CI: 180 s, 2,000 connections, every fault")
    parser.add_argument("--connections", type=int, default=10000, help="held connections (default 10000)")
    parser.add_argument("--senders", type=int, default=4, help="clients sending numbered chat messages")
    parser.add_argument("--rate", type=float, default=1.0, help="chat messages per second, all senders")
    parser.add_argument("--broadcast-rate", type=float, default=0.5, help="POST /publish per second")
    parser.add_argument("--churn-life", type=float, nargs=2, default=(10.0, 60.0), metavar=("MIN", "MAX"),
                        help="life of a churned connection, uniform in seconds (default 10 60)")
    parser.add_argument("--vanish-rate", type=float, default=1.0, help="clients vanishing per second")
    parser.add_argument("--keepalive", type=float, default=10.0, help="the servers' --keepalive")
    parser.add_argument("--burst", type=int, default=0, help="connections per burst (default: 30 %% of --connections)")
    parser.add_argument("--burst-hold", type=float, default=8.0, help="seconds a burst stays open")
    parser.add_argument("--slow", type=int, default=4, help="slow consumers per round")
    parser.add_argument("--redis-stop", type=float, default=20.0, help="seconds Redis stays SIGSTOPped")
    parser.add_argument("--drain", type=float, default=15.0, help="quiet seconds at the end before judging")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--faults", nargs="*", help="only these faults (default: all): kill_worker redis_stop "
                        "redis_restart burst_max_connections burst_fd_limit slow_consumers")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "soak"), help="output directory")
    parser.add_argument("--svg", help="also copy the picture here (e.g. docs/endurance-soak.svg)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration = 180.0
        if args.connections == 10000:
            args.connections = 2000
        args.churn_life = (5.0, 20.0)
        args.keepalive = min(args.keepalive, 5.0)
        args.sample = 2.0
    if not args.burst:
        args.burst = int(args.connections * 0.3) + 200
    if args.duration < 60 or args.connections < 100:
        parser.error("--duration must be at least 60 s and --connections at least 100")
    if not shutil.which("redis-server"):
        parser.error("redis-server is not installed (apt-get install redis-server)")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--redraw"]:   # the picture again from a soak.json, with this version's drawing
        if len(argv) != 3:
            print("usage: soak.py --redraw SOAK_JSON OUT_SVG", file=sys.stderr)
            return 2
        with open(argv[1]) as f:
            data = json.load(f)
        summary = data["summary"]
        draw(data["samples"], data["events"], summary["duration_s"], argv[2],
             "ratchet_sel soak: %d connections, 2 servers x 2 workers + Redis, %g min, %s UTC" % (
                 summary["connections"], summary["duration_s"] / 60, summary["started_utc"]))
        return 0
    if argv[:1] == ["--markdown"]:
        if len(argv) != 2:
            print("usage: soak.py --markdown SOAK_JSON", file=sys.stderr)
            return 2
        print(markdown(argv[1]))
        return 0
    args = parse_args(argv)
    soak = Soak(args)
    log("soak: %d connections for %g s; output in %s" % (args.connections, args.duration, args.out))
    soak.start()
    soak.first_send = float("inf")
    threads = [threading.Thread(target=target, daemon=True)
               for target in (soak.sample_loop, soak.fault_loop, soak.publish_loop, soak.watch_vanished)]
    for thread in threads:
        thread.start()
    try:
        soak.run_clients()
        soak.stop.set()
        for thread in threads:
            thread.join(30)
        goals = evaluate(soak, {})
        statuses = soak.shutdown()
    except BaseException:
        soak.stop.set()
        soak.shutdown()
        raise
    goals["no_crash"]["exit_statuses"] = statuses
    if any(status != 0 for status in statuses.values()):
        goals["no_crash"]["ok"] = False
        goals["no_crash"]["problems"].append("exit statuses %s" % statuses)
    return report(soak, goals)


def report(soak: Soak, goals: Dict[str, Any]) -> int:
    args = soak.args
    summary = {"command": " ".join([sys.executable] + sys.argv), "duration_s": args.duration,
               "connections": args.connections, "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(soak.t0)),
               "cpu_count": os.cpu_count(), "client": client_report(soak),
               "goals": goals, "ok": all(g["ok"] for g in goals.values())}
    events = [{k: v for k, v in ev.items() if k != "owners"} for ev in soak.events]
    with open(os.path.join(args.out, "soak.json"), "w") as f:
        json.dump({"summary": summary, "events": events, "samples": soak.samples}, f, indent=1, default=str)
    title = "ratchet_sel soak: %d connections, 2 servers x 2 workers + Redis, %g min, %s UTC" % (
        args.connections, args.duration / 60, summary["started_utc"])
    draw(soak.samples, events, args.duration, os.path.join(args.out, "soak.svg"), title)
    if args.svg:
        shutil.copy(os.path.join(args.out, "soak.svg"), args.svg)
    for name, goal in goals.items():
        brief = {k: v for k, v in goal.items() if k not in ("per_process", "owners", "top", "rounds", "bursts")}
        log("%-40s %s  %s" % (name, "ok  " if goal["ok"] else "FAIL", json.dumps(brief, default=str)[:600]))
    log("client: %s" % json.dumps(summary["client"], default=str))
    log("%s; details in %s/soak.json, picture %s/soak.svg" % ("PASS" if summary["ok"] else "FAIL", args.out, args.out))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
