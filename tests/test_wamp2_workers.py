"""WAMP v2 across processes: calls between workers through the master, events through the hub or Redis."""

import os
import re
import signal
import sys
from typing import Dict, List

import pytest

from support import ensure_fd_limit
from test_workers import SERVING, ServerProcess
from wamp2_client import Wamp2Client
from wsclient import http_exchange

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="prefork workers need os.fork")


def start_router(workers: int, extra: List[str] = ()) -> ServerProcess:
    return ServerProcess([sys.executable, "-m", "ratchet_sel", "wamp", "--realm", "realm1", "--host", "127.0.0.1",
                          "--port", "0", "--workers", str(workers), "--log-level", "DEBUG"] + list(extra))


def clients_on_each_worker(server: ServerProcess, port: int, per_worker: int,
                           subprotocol: str = "wamp.2.json") -> Dict[int, List[Wamp2Client]]:
    """Connect until every worker serves ``per_worker`` joined clients; returns them by worker pid."""
    pids = [pid for pid in server.worker_pids(2)]
    by_pid: Dict[int, List[Wamp2Client]] = {pid: [] for pid in pids}
    spare: List[Wamp2Client] = []
    for _ in range(80):
        if all(len(found) >= per_worker for found in by_pid.values()):
            break
        client = Wamp2Client(port, subprotocol)
        pid = server.pid_of(client.ws)
        if len(by_pid[pid]) < per_worker:
            client.join()
            by_pid[pid].append(client)
        else:
            spare.append(client)
    for client in spare:
        client.close()
    assert all(len(found) >= per_worker for found in by_pid.values()), "a worker got too few clients"
    return by_pid


@pytest.mark.timeout(60)
def test_calls_and_events_between_two_workers():
    ensure_fd_limit(256)
    server = start_router(2)
    clients: List[Wamp2Client] = []
    try:
        port = int(server.wait_for(re.compile(r"ws://127\.0\.0\.1:(\d+)/"))[0].group(1))
        by_pid = clients_on_each_worker(server, port, 2)
        (callee, caller_here), (caller, other) = by_pid.values()
        clients = [c for found in by_pid.values() for c in found]
        registration = callee.register("com.cross.echo")
        # the same URI from the other worker: one callee across the workers
        other.send([64, 1, {}, "com.cross.echo"])
        assert other.recv()[:5] == [8, 64, 1, {}, "wamp.error.procedure_already_exists"]
        for who in (caller, caller_here):
            who.send([48, 5, {}, "com.cross.echo", [1, b"\x00"], {"k": "v"}])
            invocation = callee.recv()
            assert invocation[2:] == [registration, {}, [1, b"\x00"], {"k": "v"}]
            callee.send([70, invocation[1], {}, ["ok"], {"from": "callee"}])
            assert who.recv() == [50, 5, {}, ["ok"], {"from": "callee"}]
        caller.send([48, 6, {"disclose_me": True}, "com.cross.echo"])
        invocation = callee.recv()
        assert invocation[3]["caller"] == caller.session_id      # caller identification across workers
        callee.send([8, 68, invocation[1], {}, "com.app.failed", ["no"], {"code": 3}])
        assert caller.recv() == [8, 48, 6, {}, "com.app.failed", ["no"], {"code": 3}]
        assert caller.call("com.cross.missing")[4] == "wamp.error.no_such_procedure"
        # events cross the workers through the master's hub
        subscription = callee.subscribe("com.cross.news")
        caller.send([16, 7, {"acknowledge": True}, "com.cross.news", ["hello"]])
        assert caller.recv()[0] == 17
        assert callee.recv()[1::3] == [subscription, ["hello"]]
        # the callee leaves mid-call: the caller on the other worker gets an ERROR
        caller.send([48, 8, {}, "com.cross.echo"])
        callee.recv()
        callee.close()
        assert caller.recv()[:5] == [8, 48, 8, {}, "wamp.error.canceled"]
        # its procedure is free again, for a client of the other worker
        assert other.register("com.cross.echo")
        assert caller_here.call("com.cross.missing")[4] == "wamp.error.no_such_procedure"
    finally:
        for client in clients:
            client.close()
        server.stop()
    assert server.proc.returncode == 0, server.log()


@pytest.mark.timeout(60)
def test_a_callee_worker_that_dies_mid_call_answers_with_error():
    ensure_fd_limit(256)
    server = start_router(2)
    clients: List[Wamp2Client] = []
    try:
        port = int(server.wait_for(re.compile(r"ws://127\.0\.0\.1:(\d+)/"))[0].group(1))
        by_pid = clients_on_each_worker(server, port, 1, "wamp.2.msgpack")
        (victim_pid, (callee,)), (_, (caller,)) = by_pid.items()
        clients = [callee, caller]
        callee.register("com.doomed")
        caller.send([48, 1, {}, "com.doomed", ["x"]])
        assert callee.recv()[0] == 68
        os.kill(victim_pid, signal.SIGKILL)
        assert caller.recv()[:5] == [8, 48, 1, {}, "wamp.error.canceled"]
        assert caller.call("com.doomed")[4] == "wamp.error.no_such_procedure"
        server.wait_for(SERVING, 3)     # replaced
    finally:
        for client in clients:
            client.close()
        server.stop()
    assert server.proc.returncode == 0, server.log()


@pytest.mark.timeout(60)
def test_the_wamp_command_in_one_process_with_health_and_two_realms():
    server = ServerProcess([sys.executable, "-m", "ratchet_sel", "wamp", "--realm", "realm1", "--realm", "com.other",
                            "--host", "127.0.0.1", "--port", "0", "--health", "/healthz"])
    try:
        line = server.wait_for(re.compile(r"WAMP router listening on ws://127\.0\.0\.1:(\d+)/ \(realms realm1, "
                                          r"com\.other; wamp\.2\.json, wamp\.2\.msgpack, wamp\)"))[0]
        port = int(line.group(1))
        status, _, body = http_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: lb\r\n\r\n")
        assert status == 200 and b'"ok"' in body
        with Wamp2Client(port, "wamp.2.msgpack", path="/any/path") as one, Wamp2Client(port) as two:
            one.join("com.other")
            two.join("com.other")
            two.register("com.other.proc")
            one.send([48, 1, {}, "com.other.proc", [1]])
            invocation = two.recv()
            two.send([70, invocation[1], {}, [2]])
            assert one.recv() == [50, 1, {}, [2]]
            one.send([1, "realm1", {}])       # HELLO when established: a protocol violation
            assert one.recv()[2] == "wamp.error.protocol_violation"
        server.wait_for(re.compile(r"protocol violation: HELLO is not allowed in state ESTABLISHED"))
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log()


@pytest.mark.timeout(60)
def test_a_caller_worker_that_dies_mid_call_interrupts_the_callee():
    ensure_fd_limit(256)
    server = start_router(2)
    clients: List[Wamp2Client] = []
    try:
        port = int(server.wait_for(re.compile(r"ws://127\.0\.0\.1:(\d+)/"))[0].group(1))
        by_pid = clients_on_each_worker(server, port, 1)
        (_, (callee,)), (victim_pid, (caller,)) = by_pid.items()
        clients = [callee, caller]
        callee.register("com.survivor")
        caller.send([48, 1, {}, "com.survivor"])
        invocation = callee.recv()
        os.kill(victim_pid, signal.SIGKILL)
        assert callee.recv() == [69, invocation[1], {"mode": "killnowait"}]
        callee.send([70, invocation[1], {}, ["too late"]])       # dropped quietly
        replacement = int(server.wait_for(SERVING, 3)[2].group(2))
        for _ in range(40):                                       # a new caller on the new worker
            newcomer = Wamp2Client(port)
            clients.append(newcomer)
            if server.pid_of(newcomer.ws) == replacement:
                break
        assert server.pid_of(newcomer.ws) == replacement, "no client reached the new worker"
        newcomer.join()
        newcomer.send([48, 2, {}, "com.survivor", [1]])
        invocation = callee.recv()
        callee.send([70, invocation[1], {}, [2]])
        assert newcomer.recv() == [50, 2, {}, [2]]
    finally:
        for client in clients:
            client.close()
        server.stop()
    assert server.proc.returncode == 0, server.log()
