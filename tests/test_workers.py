"""Prefork workers (ratchet_sel.workers) with real processes: sharing a port, one chat room
across workers (through the master's hub, or through Redis), graceful stop, respawn, errors.

The server logs, at DEBUG, which worker pid accepted each client port: that is how
the tests tell which worker serves which client.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Dict, List, Optional, Tuple

import pytest

from ratchet_sel.websocket.rfc6455 import OP_CLOSE, Close, encode_close_payload
from ratchet_sel.workers import (PUBLISH, READY, SUBSCRIBE, UNSUBSCRIBE, ChannelError, FrameReader,
                                 encode_channel_frame, reuse_port_available)
from support import ensure_fd_limit
from wsclient import WsClient, http_exchange

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="prefork workers need os.fork")

ACCEPTED = re.compile(r"worker \d+ \(pid (\d+)\) accepted 127\.0\.0\.1:(\d+)")
SERVING = re.compile(r"worker (\d+) \(pid (\d+)\) serving")
URL = re.compile(r"ws://127\.0\.0\.1:(\d+)/")


class ServerProcess:
    """A server started as a real process; its stderr is collected line by line."""

    def __init__(self, argv: List[str], env: Optional[Dict[str, str]] = None) -> None:
        self.lines: List[str] = []
        self._changed = threading.Condition()
        environment = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        environment.update(env or {})
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=environment, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: "re.Pattern", count: int = 1, timeout: float = 10.0) -> List["re.Match"]:
        """The first ``count`` matches of ``pattern`` in the log, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in map(pattern.search, self.lines) if m]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError("%d x %r not in the log:\n%s" % (count, pattern.pattern, "\n".join(self.lines)))
                self._changed.wait(min(left, 0.5))

    def port(self) -> int:
        return int(self.wait_for(URL)[0].group(1))

    def worker_pids(self, count: int) -> List[int]:
        return [int(m.group(2)) for m in self.wait_for(SERVING, count)]

    def pid_of(self, client: WsClient) -> int:
        """The pid of the worker that accepted ``client``."""
        local_port = client.sock.getsockname()[1]
        pattern = re.compile(r"worker \d+ \(pid (\d+)\) accepted 127\.0\.0\.1:%d\b" % local_port)
        return int(self.wait_for(pattern)[0].group(1))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def wait_gone(pids: List[int], timeout: float) -> List[int]:
    """Wait until none of ``pids`` is alive; returns those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)  # polling the process table: there is no event to wait on for a non-child


def redis_server_path() -> Optional[str]:
    return shutil.which("redis-server")


def cli_has_redis() -> bool:
    from ratchet_sel.__main__ import build_parser
    try:
        build_parser().parse_args(["chat", "--redis", "redis://127.0.0.1:1/"])
    except SystemExit:
        return False
    return True


class RedisServer:
    """A private redis-server on a free port, without persistence."""

    def __init__(self) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        path = redis_server_path()
        assert path is not None
        self.proc = subprocess.Popen([path, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise AssertionError("redis-server did not start")
            time.sleep(0.05)  # waiting for another program to listen

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Backplane:
    """How the workers share the room: the master's hub (no arguments) or a real Redis."""

    def __init__(self, redis: Optional[RedisServer] = None) -> None:
        self.redis = redis
        self.args = ["--redis", "redis://127.0.0.1:%d/" % redis.port] if redis is not None else []

    def wait_subscribed(self, workers: int, timeout: float = 10.0) -> None:
        """With Redis: until ``workers`` connections subscribe to the room's channel.

        A worker's Redis subscription is confirmed asynchronously, on its own
        connection; the master's hub needs no such wait (a subscription reaches
        the master before the client sees the handshake's answer).
        """
        if self.redis is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            with socket.create_connection(("127.0.0.1", self.redis.port), timeout=5) as sock:
                sock.sendall(b"PUBSUB NUMSUB ratchet_sel:chat\r\n")
                reply = b""
                while reply.count(b"\r\n") < 4:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            count = int(reply.split(b"\r\n")[3].lstrip(b":"))
            if count >= workers:
                return
            assert time.monotonic() < deadline, "only %d worker(s) subscribed on Redis" % count
            time.sleep(0.05)  # polling another program's state: there is no event to wait on


@pytest.fixture(params=["hub", "redis"])
def backplane(request):
    """The master's hub, or --redis against a real redis-server."""
    if request.param == "hub":
        yield Backplane()
        return
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed (CI installs it)")
    if not cli_has_redis():
        pytest.skip("the CLI has no --redis option in this build")
    redis = RedisServer()
    try:
        yield Backplane(redis)
    finally:
        redis.stop()


def start_chat(workers: int, extra: Optional[List[str]] = None) -> ServerProcess:
    return ServerProcess([sys.executable, "-m", "ratchet_sel", "chat", "--host", "127.0.0.1", "--port", "0",
                          "--workers", str(workers), "--log-level", "DEBUG"] + list(extra or []))


def connect_clients(server: ServerProcess, port: int, count: int) -> List[WsClient]:
    clients = []
    for _ in range(count):
        client = WsClient(port)
        assert client.status == 101, client.status
        clients.append(client)
    return clients


def assert_chat_reaches_all(sender: WsClient, others: List[WsClient], text: str,
                            server: Optional[ServerProcess] = None, late: Optional[WsClient] = None,
                            published_before_it_joined: Tuple[str, ...] = ()) -> None:
    """``text`` from ``sender`` reaches each of ``others``, next in what each reads.

    ``late`` (one of ``others``) joined just after ``published_before_it_joined``
    were published elsewhere; it may read those first.  Across processes that is
    the hub's documented window: the master relays what it read in one loop
    iteration at the end of it, to every worker subscribed by then, so a
    subscription read in the same iteration as an earlier publication gets it too.
    """
    sender.send(text)
    for index, client in enumerate(others):
        try:
            received = client.recv_message()
            while client is late and received in published_before_it_joined and received != text:
                received = client.recv_message()
            assert received == text
        except (OSError, AssertionError) as exc:
            where = " (sender port %d, receiver %d of %d, port %d)" % (
                sender.sock.getsockname()[1], index, len(others), client.sock.getsockname()[1])
            raise AssertionError("%r did not reach everyone: %r%s\n%s" % (
                text, exc, where, server.log() if server is not None else "")) from exc


def close_all(clients: List[WsClient]) -> None:
    for client in clients:
        client.shutdown()


# -- the channel codec: byte strings only ------------------------------------------------------------
def test_frames_round_trip_when_fed_byte_by_byte():
    frames = [(SUBSCRIBE, "chat", b""), (PUBLISH, "chat", b"\x00rsel1{}\nhello"), (UNSUBSCRIBE, "é", b""),
              (READY, "", b"")]
    stream = b"".join(encode_channel_frame(*frame) for frame in frames)
    reader = FrameReader()
    got = []
    for index in range(len(stream)):
        got.extend(reader.feed(stream[index:index + 1]))
    assert got == frames
    assert reader.buffered == 0


def test_frames_in_one_read_and_a_partial_tail():
    reader = FrameReader()
    stream = encode_channel_frame(PUBLISH, "t", b"x" * 1000) * 3
    assert len(reader.feed(stream[:-10])) == 2
    assert reader.buffered == len(stream) // 3 - 10
    assert reader.feed(stream[-10:]) == [(PUBLISH, "t", b"x" * 1000)]


def test_frame_over_the_limit_is_refused_before_it_is_read():
    reader = FrameReader(max_frame=100)
    with pytest.raises(ChannelError, match="limit"):
        reader.feed(encode_channel_frame(PUBLISH, "t", b"x" * 200)[:8])


@pytest.mark.parametrize("data, message", [
    (b"\x00\x00\x00\x03\x63\x00\x00", "unknown frame kind"),   # 99: 6 to 13 are the mailbox kinds
    (b"\x00\x00\x00\x02\x03\x00", "too short"),
    (b"\x00\x00\x00\x04\x03\x00\x05x", "overruns"),
    (b"\x00\x00\x00\x05\x01\x00\x02\xff\xfe", "UTF-8"),
])
def test_broken_frames_are_errors(data, message):
    with pytest.raises(ChannelError, match=message):
        FrameReader().feed(data)


def test_topic_names_longer_than_the_length_field_are_refused():
    with pytest.raises(ChannelError):
        encode_channel_frame(SUBSCRIBE, "x" * 70000)


# -- the command line -----------------------------------------------------------------------------
@pytest.mark.parametrize("count", ["0", "-1", "65", "two"])
def test_worker_count_out_of_range_is_a_usage_error(count):
    result = subprocess.run([sys.executable, "-m", "ratchet_sel", "echo", "--port", "0", "--workers", count],
                            cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--workers" in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_busy_port_is_named(workers):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "ratchet_sel", "echo", "--host", "127.0.0.1",
                                 "--port", str(port), "--workers", workers],
                                cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "127.0.0.1:%d" % port in result.stderr
    assert "Address already in use" in result.stderr


def test_one_worker_does_not_share_its_port():
    server = ServerProcess([sys.executable, "-m", "ratchet_sel", "echo", "--host", "127.0.0.1", "--port", "0"])
    try:
        port = server.port()
        with WsClient(port) as client:  # serving: the signal handlers are in place
            client.send("ping")
            assert client.recv_message() == "ping"
        if hasattr(socket, "SO_REUSEPORT"):
            with socket.socket() as intruder:
                intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                with pytest.raises(OSError):
                    intruder.bind(("127.0.0.1", port))
                    intruder.listen(1)
        assert "worker" not in server.log()
    finally:
        server.stop()
    assert server.proc.returncode == 0


@pytest.mark.timeout(60)
def test_a_second_master_on_a_busy_port_fails_instead_of_sharing():
    first = start_chat(2)
    try:
        port = first.port()
        first.worker_pids(2)
        result = subprocess.run([sys.executable, "-m", "ratchet_sel", "chat", "--host", "127.0.0.1",
                                 "--port", str(port), "--workers", "2"],
                                cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        assert result.returncode == 1
        assert "127.0.0.1:%d" % port in result.stderr and "Address already in use" in result.stderr
    finally:
        first.stop()


# -- the four groups, with the master's hub and with Redis ------------------------------------
@pytest.mark.timeout(90)
def test_two_workers_serve_twenty_clients_in_one_chat_room(backplane):
    ensure_fd_limit(256)
    server = start_chat(2, backplane.args)
    clients: List[WsClient] = []
    try:
        port = server.port()
        pids = set(server.worker_pids(2))
        clients = connect_clients(server, port, 20)
        served = {client: server.pid_of(client) for client in clients}
        assert set(served.values()) == pids, "both workers must serve some of the 20 clients"
        backplane.wait_subscribed(2)
        # One sender on each worker: each message reaches the 19 others, wherever they are.
        for pid in sorted(pids):
            sender = next(client for client in clients if served[client] == pid)
            assert_chat_reaches_all(sender, [c for c in clients if c is not sender], "from %d" % pid)
        binary = b"\x00\xffbinary stays binary"
        clients[0].send(binary)
        for client in clients[1:]:
            assert client.recv_message() == binary
    finally:
        close_all(clients)
        server.stop()
    assert server.proc.returncode == 0, server.log()


@pytest.mark.timeout(90)
def test_sigterm_closes_every_client_with_1001_and_every_process_exits(backplane):
    ensure_fd_limit(256)
    server = start_chat(2, backplane.args)
    clients: List[WsClient] = []
    try:
        port = server.port()
        pids = server.worker_pids(2)
        clients = connect_clients(server, port, 20)
        assert {server.pid_of(client) for client in clients} == set(pids)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        for client in clients:
            close = client.expect_close()
            assert isinstance(close, Close) and close.code == 1001
            client.send_frame(OP_CLOSE, encode_close_payload(1001))  # completes the closing handshake
        assert server.proc.wait(6) == 0, server.log()
        assert wait_gone([server.proc.pid] + pids, max(0.0, 6 - (time.monotonic() - started))) == []
        assert time.monotonic() - started < 6
    finally:
        close_all(clients)
        server.stop()
    assert "stopped" in server.log()


@pytest.mark.timeout(90)
def test_a_killed_worker_is_replaced_and_the_other_workers_clients_go_on(backplane):
    ensure_fd_limit(256)
    server = start_chat(2, backplane.args)
    clients: List[WsClient] = []
    try:
        port = server.port()
        pids = server.worker_pids(2)
        clients = connect_clients(server, port, 20)
        served = {client: server.pid_of(client) for client in clients}
        backplane.wait_subscribed(2)
        victim, survivor = pids
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        server.wait_for(re.compile(r"worker \d+ \(pid %d\) killed by signal 9" % victim))
        replacement = int(server.wait_for(SERVING, 3, timeout=5)[2].group(2))
        assert replacement not in pids
        # The victim's clients lost their connection; the survivor's did not notice.
        for client in clients:
            if served[client] == victim:
                with pytest.raises((ConnectionError, OSError)):
                    client.recv()
        kept = [client for client in clients if served[client] == survivor]
        assert kept
        assert_chat_reaches_all(kept[0], kept[1:], "still here")
        # New clients reach the new worker within 5 s of the kill, and it is in the same room.
        newcomer = None
        extra: List[WsClient] = []
        while newcomer is None:
            assert time.monotonic() - killed_at < 5 or len(extra) < 40, "no client reached the new worker"
            client = WsClient(port)
            assert client.status == 101
            extra.append(client)
            if server.pid_of(client) == replacement:
                newcomer = client
        clients.extend(extra)
        backplane.wait_subscribed(2)
        everyone_else = kept + [client for client in extra if client is not newcomer]
        assert_chat_reaches_all(newcomer, everyone_else, "new worker")
        assert_chat_reaches_all(kept[0], [c for c in everyone_else if c is not kept[0]] + [newcomer], "old worker",
                                late=newcomer, published_before_it_joined=("still here",))
    finally:
        close_all(clients)
        server.stop()
    assert server.proc.returncode == 0, server.log()


# -- supervision details ---------------------------------------------------------------------------
APP = textwrap.dedent('''
    import logging, os, sys, time
    from ratchet_sel import WsServer
    from ratchet_sel.demo import Chat
    from ratchet_sel.workers import run_workers

    logging.basicConfig(level=logging.DEBUG, format="%(process)d %(name)s: %(message)s")
    mode = sys.argv[1]

    def build(worker):
        if mode == "crash-2" and worker.index == 2:
            worker.loop.call_later(0.05, os._exit, 7)      # dies young, again and again
        if mode == "boot-fails":
            raise RuntimeError("no database")
        if mode == "wamp":
            from ratchet_sel.wamp import WampServer, WampServerInterface
            return WsServer(WampServer(WampServerInterface(), worker.topics))
        if mode == "hang-on-stop" and worker.index == 1:
            worker.on_stop(lambda: time.sleep(60))        # a worker that never finishes stopping
        return WsServer(Chat(worker.topics))

    sys.exit(run_workers(build, "127.0.0.1", 0, workers=2, reuse_port=(mode != "shared-socket"),
                         shutdown_timeout=1.0 if mode == "hang-on-stop" else 5.0))
''')


def start_app(tmp_path, mode: str) -> ServerProcess:
    script = tmp_path / "app.py"
    script.write_text(APP)
    return ServerProcess([sys.executable, str(script), mode])


@pytest.mark.timeout(60)
def test_library_entry_point_with_one_socket_shared_by_the_workers(tmp_path):
    server = start_app(tmp_path, "shared-socket")
    clients: List[WsClient] = []
    try:
        port = server.port()
        server.wait_for(re.compile("one socket shared by the workers"))
        pids = set(server.worker_pids(2))
        # Both workers wait on the same socket: keep connecting until each took some (bounded).
        served: Dict[WsClient, int] = {}
        while set(served.values()) != pids:
            assert len(clients) < 200, "one worker took every connection: %s" % served
            client = WsClient(port)
            clients.append(client)
            served[client] = server.pid_of(client)
        sender = clients[-1]
        assert_chat_reaches_all(sender, clients[:-1], "shared", server)
    finally:
        close_all(clients)
        server.stop()
    assert server.proc.returncode == 0, server.log()


@pytest.mark.timeout(60)
def test_a_worker_dying_at_once_is_replaced_with_backoff(tmp_path):
    server = start_app(tmp_path, "crash-2")
    try:
        server.port()
        delays = [float(m.group(1)) for m in server.wait_for(
            re.compile(r"worker 2 died young \d+ time\(s\) in a row: next start in ([\d.]+) s"), 3, timeout=20)]
        assert delays == sorted(delays) and delays[0] < delays[2]
        assert "exited with status 7" in server.log()
        starts = len([line for line in server.lines if re.search(r"worker 2 started: pid", line)])
        assert starts <= 5, "respawned in a tight loop:\n" + server.log()
        # Worker 1 serves all along.
        with WsClient(server.port()) as client:
            assert client.status == 101
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log()


@pytest.mark.timeout(60)
def test_a_worker_stuck_in_shutdown_is_killed_at_the_deadline(tmp_path):
    server = start_app(tmp_path, "hang-on-stop")
    server.port()
    # Which pid is worker 1 comes from its own "serving" line: the two may log in either order.
    serving = {int(m.group(1)): int(m.group(2)) for m in server.wait_for(SERVING, 2)}
    pids = list(serving.values())
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 1  # not a clean stop: said by the status
    assert time.monotonic() - started < 1.0 + 1.0 + 3.0  # the shutdown timeout, the grace second, slack
    server.stop()
    assert re.search(r"worker 1 \(pid %d\) did not stop in time: killing it" % serving[1], server.log())
    assert wait_gone(pids, 5) == []


def test_tls_and_plain_listeners_in_every_worker():
    certs = os.path.join(ROOT, "tests", "certs")
    server = ServerProcess([sys.executable, "-m", "ratchet_sel", "echo", "--host", "127.0.0.1", "--port", "0",
                            "--tls-port", "0", "--certfile", os.path.join(certs, "localhost.pem"),
                            "--keyfile", os.path.join(certs, "localhost.key"), "--workers", "2",
                            "--log-level", "DEBUG"])
    try:
        import ssl
        plain = int(server.wait_for(re.compile(r" ws://127\.0\.0\.1:(\d+)/"))[0].group(1))
        secure = int(server.wait_for(re.compile(r"wss://127\.0\.0\.1:(\d+)/"))[0].group(1))
        pids = set(server.worker_pids(2))
        context = ssl.create_default_context(cafile=os.path.join(certs, "localhost.pem"))
        for port, tls in ((plain, None), (secure, context)):
            with WsClient(port, tls=tls) as client:
                client.send("over %s" % ("wss" if tls else "ws"))
                assert client.recv_message() == "over %s" % ("wss" if tls else "ws")
                assert server.pid_of(client) in pids
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log()


@pytest.mark.timeout(60)
def test_workers_that_cannot_start_stop_the_master(tmp_path):
    server = start_app(tmp_path, "boot-fails")
    assert server.proc.wait(30) == 1
    server.stop()
    assert "no database" in server.log()
    assert "could not start and no worker ever did" in server.log()


@pytest.mark.timeout(60)
def test_workers_stop_when_the_master_is_killed():
    server = start_chat(2)
    clients: List[WsClient] = []
    try:
        port = server.port()
        pids = server.worker_pids(2)
        clients = connect_clients(server, port, 6)
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        for client in clients:
            assert client.expect_close().code == 1001
        assert wait_gone(pids, 10) == []
    finally:
        close_all(clients)
        server.stop()


def test_reuse_port_is_used_where_it_spreads_connections():
    assert reuse_port_available() == (sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT"))


# -- what a worker inherits ---------------------------------------------------------------------------
def test_a_loop_dropped_in_a_forked_child_keeps_working_in_the_parent():
    from ratchet_sel import Loop

    loop = Loop()
    left, right = socket.socketpair()
    got: List[bytes] = []
    loop.add_reader(left, lambda: got.append(left.recv(16)))
    try:
        pid = os.fork()
        if pid == 0:  # the child drops the loop: nothing of it may reach the parent's epoll
            status = 1
            try:
                loop.close_after_fork()
                status = 0
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        right.send(b"still watched")
        loop.run_once(10)
        assert got == [b"still watched"]
        woke = threading.Event()
        threading.Thread(target=loop.call_soon_threadsafe, args=(woke.set,)).start()
        for _ in range(3):
            loop.run_once(10)  # the wake-up pair survived the child too
            if woke.is_set():
                break
        assert woke.is_set()
    finally:
        loop.forget(left)
        left.close()
        right.close()
        loop.close()


# -- a worker's channel in this process: bounded, ordered, size-limited -----------------------------------
def test_a_channel_to_a_peer_that_does_not_read_stays_bounded_and_keeps_order(caplog):
    from ratchet_sel import Loop
    from ratchet_sel.pubsub import Topics
    from ratchet_sel.workers import Worker

    loop = Loop()
    ours, master = socket.socketpair()
    master.setblocking(False)
    worker = Worker(1, loop, ours, max_buffer=64 * 1024, max_frame=32 * 1024)
    hub = Topics(worker.backplane)
    try:
        hub.add_listener("room", lambda publication: None)  # subscribes the worker: a control frame
        chunk = "x" * 8000
        for index in range(2000):                            # ~16 MB offered to a master that reads nothing
            hub.publish("room", "%05d%s" % (index, chunk))
            loop.run_once(0)
        assert worker.backplane.dropped > 0
        assert 0 < worker._channel.buffered_amount <= 64 * 1024 + 8100
        assert "does not keep up" in caplog.text
        hub.publish("room", "y" * 40000)                     # over max_frame: stays in this worker
        assert "over the 32768-byte relay limit" in caplog.text
        hub.remove_listener("room", hub._listeners["room"][0])  # an unsubscription is never dropped
        reader = FrameReader()
        frames = []
        while True:
            loop.run_once(0)
            try:
                data = master.recv(1 << 20)
            except BlockingIOError:
                if not worker._channel.buffered_amount:
                    break
                continue
            frames.extend(reader.feed(data))
        kinds = [kind for kind, _, _ in frames]
        assert kinds[0] == SUBSCRIBE and kinds[-1] == UNSUBSCRIBE
        numbers = [int(payload.split(b"\n", 1)[1][:5]) for kind, _, payload in frames if kind == PUBLISH]
        assert numbers == sorted(numbers) and 0 < len(numbers) < 2000
    finally:
        worker.close()
        master.close()
        loop.close()


# -- what spans workers besides the chat room -------------------------------------------------------------
@pytest.mark.timeout(60)
def test_post_publish_on_any_worker_reaches_the_clients_of_every_worker():
    server = start_chat(2, ["--publish-token", "s3cret"])
    clients: List[WsClient] = []
    try:
        port = server.port()
        pids = set(server.worker_pids(2))
        clients = connect_clients(server, port, 20)
        assert {server.pid_of(client) for client in clients} == pids
        body = "pushed over HTTP".encode()
        request = ("POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret\r\n"
                   "Content-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)).encode()
        status, _, _ = http_exchange(port, request + body)
        assert status == 200
        for client in clients:
            assert client.recv_message() == "pushed over HTTP"
    finally:
        close_all(clients)
        server.stop()


@pytest.mark.timeout(60)
def test_wamp_topics_span_workers_with_session_ids(tmp_path):
    import json

    server = start_app(tmp_path, "wamp")
    clients: List[WsClient] = []
    try:
        port = server.port()
        pids = set(server.worker_pids(2))
        sessions: Dict[WsClient, str] = {}
        served: Dict[WsClient, int] = {}
        while set(served.values()) != pids or len(clients) < 4:
            assert len(clients) < 60, "the clients all went to one worker"
            client = WsClient(port, extra=[("Sec-WebSocket-Protocol", "wamp")])
            assert client.headers.get("sec-websocket-protocol") == "wamp"
            welcome = json.loads(client.recv_message())
            assert welcome[0] == 0
            sessions[client] = welcome[1]
            served[client] = server.pid_of(client)
            client.send(json.dumps([5, "http://example.com/news"]))
            clients.append(client)
        publisher = next(c for c in clients if served[c] != served[clients[0]])
        others = [c for c in clients if c is not publisher]
        # An exclude list of session ids (it replaces excludeMe, so the publisher gets it too); the
        # excluded client is on the publisher's worker or on the other one, its session id says which.
        excluded = next(c for c in others if served[c] != served[publisher])
        publisher.send(json.dumps([7, "http://example.com/news", {"n": 1}, [sessions[excluded]]]))
        for client in clients:
            if client is not excluded:
                assert json.loads(client.recv_message()) == [8, "http://example.com/news", {"n": 1}]
        # Eligible: only the excluded client this time, across the workers; the others get nothing.
        publisher.send(json.dumps([7, "http://example.com/news", {"n": 2}, [], [sessions[excluded]]]))
        assert json.loads(excluded.recv_message()) == [8, "http://example.com/news", {"n": 2}]
        # Default excludeMe: everyone but the publisher; what the others read next proves that
        # they got neither n=2 nor anything else in between.
        publisher.send(json.dumps([7, "http://example.com/news", {"n": 3}]))
        for client in others:
            assert json.loads(client.recv_message()) == [8, "http://example.com/news", {"n": 3}]
        publisher.send(json.dumps([7, "http://example.com/news", {"n": 4}, False]))  # excludeMe false: all
        for client in clients:
            assert json.loads(client.recv_message()) == [8, "http://example.com/news", {"n": 4}]
    finally:
        close_all(clients)
        server.stop()
    assert server.proc.returncode == 0, server.log()


@pytest.mark.timeout(90)
def test_a_burst_crosses_workers_complete_and_in_order():
    server = start_chat(2)
    clients: List[WsClient] = []
    try:
        port = server.port()
        pids = set(server.worker_pids(2))
        served: Dict[WsClient, int] = {}
        while set(served.values()) != pids or len(clients) < 4:
            assert len(clients) < 60, "the clients all went to one worker"
            client = WsClient(port)
            clients.append(client)
            served[client] = server.pid_of(client)
        sender = clients[0]
        for index in range(2000):
            sender.send("message %04d %s" % (index, "z" * 200))
        for client in clients[1:]:
            for index in range(2000):
                assert client.recv_message() == "message %04d %s" % (index, "z" * 200)
    finally:
        close_all(clients)
        server.stop()
    assert server.proc.returncode == 0, server.log()


@pytest.mark.timeout(60)
def test_metrics_from_any_worker_cover_every_worker():
    server = ServerProcess([sys.executable, "-m", "ratchet_sel", "echo", "--host", "127.0.0.1", "--port", "0",
                            "--workers", "2", "--metrics", "--log-level", "DEBUG"])
    clients: List[WsClient] = []
    try:
        port = server.port()
        pids = set(server.worker_pids(2))
        clients = connect_clients(server, port, 20)
        assert {server.pid_of(client) for client in clients} == pids
        for client in clients:
            client.send("counted")
            assert client.recv_message() == "counted"
        wanted = ['ratchet_sel_connections_open{version="rfc6455"} 20', "ratchet_sel_messages_received_total 20",
                  'ratchet_sel_loop_lag_seconds{worker="1"}', 'ratchet_sel_loop_lag_seconds{worker="2"}']
        deadline = time.monotonic() + 15
        while True:  # snapshots travel once a second: poll the scrape (bounded)
            status, _, body = http_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                  b"Connection: close\r\n\r\n")
            text = body.decode("utf-8")
            if status == 200 and all(line in text for line in wanted):
                break
            assert time.monotonic() < deadline, "the scrape never covered both workers:\n" + text
            time.sleep(0.2)
    finally:
        close_all(clients)
        server.stop()
    assert server.proc.returncode == 0, server.log()
