"""examples/notify.py as a user runs it: a subprocess, real sockets, a real redis-server.

Refusals (401 with the challenge, 403) come before any upgrade; a publication to
``user:<id>`` reaches every connection of that user and no other user's, across two
servers on one Redis and across two worker processes (through the master's hub, or
Redis); ``all`` reaches everyone; bad command lines are usage errors (exit 2).
"""

import re
import socket
import subprocess
import sys
from typing import Dict, List

import pytest
from redis_support import REDIS_SERVER, SKIP_REASON, RedisProcess, ServerProcess, wait_subscribers
from wsclient import WsClient, http_exchange, upgrade_request

from ratchet_sel.pubsub import publish

pytestmark = [pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON), pytest.mark.timeout(120)]

EXAMPLE = "examples/notify.py"
TOKENS = "# token      user\nt-alice alice\nt-alice-2 alice   # her phone\nt-bob bob\n"
ACCEPTED = r"worker \d+ \(pid (\d+)\) accepted 127\.0\.0\.1:%d\b"


@pytest.fixture
def redis():
    with RedisProcess() as server:
        yield server


@pytest.fixture
def tokens(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text(TOKENS)
    return str(path)


def notify(tokens: str, *extra: str) -> ServerProcess:
    return ServerProcess([EXAMPLE, "--host", "127.0.0.1", "--port", "0", "--tokens", tokens, *extra])


def connect(port: int, token: str, header: bool = False) -> WsClient:
    if header:
        client = WsClient(port, "/", extra=[("Authorization", "Bearer " + token)])
    else:
        client = WsClient(port, "/?token=" + token)
    assert client.status == 101, client.status
    return client


def channel(topic: str) -> str:
    return "ratchet_sel:" + topic


def test_missing_and_wrong_tokens_are_refused_before_the_upgrade(redis, tokens):
    server = notify(tokens, "--redis", redis.url)
    try:
        status, headers, body = http_exchange(server.port, upgrade_request("/"))
        assert status == 401 and headers["www-authenticate"] == 'Bearer realm="notify"'
        assert "sec-websocket-accept" not in headers and headers["connection"] == "close"
        for request in (upgrade_request("/?token=t-mallory"),
                        upgrade_request("/", extra=[("Authorization", "Bearer t-mallory")])):
            status, headers, _ = http_exchange(server.port, request)
            assert status == 403 and "sec-websocket-accept" not in headers
        assert "t-mallory" not in "\n".join(server.log.lines)  # tokens are never logged
    finally:
        assert server.stop() == 0


def test_a_user_is_reached_on_two_servers_sharing_one_redis_and_nobody_else_is(redis, tokens):
    a = notify(tokens, "--redis", redis.url)
    b = notify(tokens, "--redis", redis.url)
    clients: List[WsClient] = []
    try:
        alice_a = connect(a.port, "t-alice")
        alice_b = connect(b.port, "t-alice-2", header=True)
        bob_a = connect(a.port, "t-bob", header=True)
        clients = [alice_a, alice_b, bob_a]
        wait_subscribers(redis.port, channel("user:alice"), 2)
        wait_subscribers(redis.port, channel("user:bob"), 1)
        wait_subscribers(redis.port, channel("all"), 2)
        assert publish(redis.url, "user:alice", "for alice") == 2      # two servers got it
        assert publish(redis.url, "user:bob", b"\x00for bob") == 1
        assert publish(redis.url, "all", "for everyone") == 2
        assert [alice_a.recv_message(), alice_a.recv_message()] == ["for alice", "for everyone"]
        assert [alice_b.recv_message(), alice_b.recv_message()] == ["for alice", "for everyone"]
        assert [bob_a.recv_message(), bob_a.recv_message()] == [b"\x00for bob", "for everyone"]
    finally:
        for client in clients:
            client.shutdown()
        assert a.stop() == 0 and b.stop() == 0
    assert re.search(r"alice connected from 127\.0\.0\.1", "\n".join(a.log.lines))


def pid_of(server: ServerProcess, client: WsClient) -> int:
    return int(server.log.wait_for(ACCEPTED % client.sock.getsockname()[1], 15).group(1))


@pytest.mark.parametrize("backplane", ["hub", "redis"])
def test_a_user_is_reached_on_two_worker_processes_and_nobody_else_is(redis, tokens, backplane):
    extra = ["--redis", redis.url] if backplane == "redis" else ["--publish-token", "push-secret"]
    server = notify(tokens, "--workers", "2", "--log-level", "DEBUG", *extra)
    alice: Dict[WsClient, int] = {}
    bob = None
    try:
        for index in (1, 2):  # the port is listed before the workers serve it
            server.log.wait_for(r"worker %d \(pid \d+\) serving" % index, 30)
        # Connect alice until two worker processes serve her (bounded: the kernel spreads connections).
        while len(set(alice.values())) < 2:
            assert len(alice) < 100, "one worker took every connection"
            client = connect(server.port, "t-alice" if len(alice) % 2 else "t-alice-2", header=len(alice) % 3 == 0)
            alice[client] = pid_of(server, client)
        bob = connect(server.port, "t-bob")
        if backplane == "redis":
            url = redis.url
            wait_subscribers(redis.port, channel("user:alice"), 2)
            wait_subscribers(redis.port, channel("user:bob"), 1)
            wait_subscribers(redis.port, channel("all"), 2)
        else:
            url = "http://127.0.0.1:%d/publish?token=push-secret" % server.port
        publish(url, "user:alice", "for alice")
        publish(url, "all", "for everyone")
        for client in alice:
            assert [client.recv_message(), client.recv_message()] == ["for alice", "for everyone"]
        assert bob.recv_message() == "for everyone"  # the first bob gets: alice's never reached him
    finally:
        for client in list(alice) + ([bob] if bob else []):
            client.shutdown()
        assert server.stop() == 0


def run_example(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, EXAMPLE, *args], capture_output=True, text=True, timeout=60,
                          cwd=__file__.rsplit("/tests/", 1)[0])


@pytest.mark.parametrize("args, says", [
    ([], "--tokens"),
    (["--port", "70000"], "a port is from 0 to 65535"),
    (["--workers", "0"], "must be from 1 to 64"),
    (["--redis", "http://nope"], "--redis"),
    (["--tokens", "/nonexistent/tokens.txt"], "cannot read"),
])
def test_usage_errors_exit_2_without_a_traceback(tokens, args, says):
    if args and args[0] != "--tokens" and args != []:
        args = ["--tokens", tokens] + args
    result = run_example(*args)
    assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr


def test_a_bad_tokens_line_is_named(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text("ok alice\njust-one-field\n")
    result = run_example("--tokens", str(path))
    assert result.returncode == 2 and "tokens.txt:2: expected 'TOKEN USER'" in result.stderr
    path.write_text("same alice\nsame bob\n")
    result = run_example("--tokens", str(path))
    assert result.returncode == 2 and "tokens.txt:2: this token is already given to alice" in result.stderr


def test_a_busy_port_is_one_line(tokens):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_example("--tokens", tokens, "--port", str(port))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "127.0.0.1:%d" % port in result.stderr
