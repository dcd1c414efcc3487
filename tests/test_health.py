"""``--health PATH`` on the command line: 200 and a JSON status on any Host, in every worker."""

import json
import os
import subprocess
import sys

import pytest
from redis_support import REDIS_SERVER, ROOT, RedisProcess, ServerProcess, wait_until
from wsclient import WsClient, http_exchange

pytestmark = pytest.mark.timeout(90)

HOSTS = ["127.0.0.1", "10.0.0.5", "10.0.0.5:8000", "example.com", "[::1]:80"]
FIELDS = {"status", "connections", "uptime_s", "pid", "redis", "worker"}


def serve(command: str, *args: str) -> ServerProcess:
    return ServerProcess(["-m", "ratchet_sel", command, "--host", "127.0.0.1", "--port", "0", "--health", "/healthz",
                          *args])


def probe(port: int, host: "str | None", path: str = "/healthz", method: str = "GET"):
    """(status, JSON body) of one probe; ``host`` None sends HTTP/1.0 without a Host header."""
    if host is None:
        raw = b"%s %s HTTP/1.0\r\n\r\n" % (method.encode(), path.encode())
    else:
        raw = b"%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (method.encode(), path.encode(),
                                                                            host.encode())
    status, headers, body = http_exchange(port, raw)
    if status == 200:
        assert headers["content-type"] == "application/json" and headers["cache-control"] == "no-store"
        return status, json.loads(body.decode("utf-8"))
    return status, body


def check_any_host(port: int, pid: int, worker: "int | None" = None) -> dict:
    for host in HOSTS + [None]:
        status, body = probe(port, host)
        assert status == 200, (host, body)
        assert set(body) == FIELDS, body
        assert body["status"] == "ok" and body["redis"] is None
        assert isinstance(body["connections"], int) and body["connections"] >= 0
        assert isinstance(body["uptime_s"], (int, float)) and body["uptime_s"] >= 0
        if worker is None:
            assert body["pid"] == pid and body["worker"] is None
    return body


@pytest.mark.parametrize("command", ["chat", "echo"])
def test_health_answers_any_host_and_the_server_still_works(command):
    with serve(command) as server:
        check_any_host(server.port, server.proc.pid)
        with WsClient(server.port) as alice, WsClient(server.port) as bob:
            assert probe(server.port, "10.0.0.5")[1]["connections"] == 2
            alice.send("hello")
            if command == "chat":
                assert bob.recv_message() == "hello"
                page = http_exchange(server.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert page[0] == 200 and b"<html" in page[2].lower()
            else:
                assert alice.recv_message() == "hello"
        assert probe(server.port, "127.0.0.1", method="POST")[0] == 405
        assert probe(server.port, "127.0.0.1", path="/healthz/other")[0] != 200
        # the origin check and the proxy rule do not apply to the probe
    with serve(command, "--allowed-origin", "https://app.example", "--trusted-proxy", "10.0.0.0/8") as server:
        check_any_host(server.port, server.proc.pid)


def test_health_in_every_worker():
    with serve("chat", "--workers", "2") as server:
        server.log.wait_for(r"worker 1 \(pid \d+\) serving", 30)
        server.log.wait_for(r"worker 2 \(pid \d+\) serving", 30)
        seen = {}

        def both_answered() -> bool:
            body = check_any_host(server.port, server.proc.pid, worker=-1)
            assert body["worker"] in (1, 2) and body["pid"] != server.proc.pid   # a worker answers
            seen[body["worker"]] = body["pid"]
            return len(seen) == 2

        wait_until(both_answered, 30, "both workers to answer the health URL")
        assert len(set(seen.values())) == 2
        with WsClient(server.port) as alice, WsClient(server.port) as bob:
            alice.send("across workers")
            assert bob.recv_message() == "across workers"


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_health_reports_the_redis_link():
    with RedisProcess() as redis, serve("chat", "--redis", redis.url) as server:
        wait_until(lambda: probe(server.port, "10.0.0.5")[1]["redis"] == "connected", 15, "redis connected")
        redis.stop()
        wait_until(lambda: probe(server.port, "10.0.0.5")[1]["redis"] == "disconnected", 15,
                   "redis disconnected")
        assert probe(server.port, "10.0.0.5")[0] == 200   # local clients are still served


def test_a_bad_health_path_is_a_usage_error():
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-m", "ratchet_sel", "echo", "--port", "0", "--health", "healthz"],
                          capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 2 and "a health path starts with '/'" in done.stderr
    assert "Traceback" not in done.stderr
