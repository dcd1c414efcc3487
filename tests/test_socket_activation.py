"""systemd socket activation: the commands serve the sockets named by LISTEN_FDS/LISTEN_PID instead of binding.

A small wrapper plays systemd: it moves the test's listening sockets to descriptors 3, 4, ..., sets
LISTEN_PID to its own pid and execs the server (so the pid is the server's).
"""

import os
import re
import signal
import socket
import ssl
import subprocess
import sys

import pytest

from ratchet_sel.io.activation import ActivationError, inherited_listeners
from wsclient import WsClient

pytestmark = pytest.mark.timeout(90)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CERTFILE = os.path.join(ROOT, "tests", "certs", "localhost.pem")
KEYFILE = os.path.join(ROOT, "tests", "certs", "localhost.key")
URL = re.compile(r"listening on (\w+)://127\.0\.0\.1:(\d+)/")

# Plays systemd: descriptors TEST_FDS become 3, 4, ...; LISTEN_PID is this pid, which exec keeps.
WRAPPER = """
import fcntl, os, sys
fds = [int(fd) for fd in os.environ.pop("TEST_FDS").split(",")]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100 + i) for i, fd in enumerate(fds)]
for fd in fds:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable] + sys.argv[1:])
"""


def listener(kind=socket.SOCK_STREAM, listening=True):
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    if listening:
        sock.listen(16)
    return sock


def activated(sockets, argv, names=None, count=None):
    """Popen of the wrapper running ``argv`` on ``sockets`` (LISTEN_FDS is ``count``, by default their number)."""
    env = dict({k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LISTEN_"))}, PYTHONPATH=ROOT,
               TEST_FDS=",".join(str(s.fileno()) for s in sockets),
               LISTEN_FDS=str(len(sockets) if count is None else count))
    if names is not None:
        env["LISTEN_FDNAMES"] = names
    return subprocess.Popen([sys.executable, "-c", WRAPPER] + argv, cwd=ROOT, env=env, stderr=subprocess.PIPE,
                            text=True, pass_fds=[s.fileno() for s in sockets])


class Served:
    """The activated server until it logged ``urls`` URLs (and ``lines``); SIGTERM on exit."""

    def __init__(self, proc, urls=1, lines=()):
        self.proc = proc
        self.log = []
        self.urls = []
        while len(self.urls) < urls or not all(any(text in line for line in self.log) for text in lines):
            line = proc.stderr.readline()
            if not line:
                raise AssertionError("the server ended early: %s" % "".join(self.log))
            self.log.append(line)
            self.urls += [(m.group(1), int(m.group(2))) for m in [URL.search(line)] if m]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0


def test_echo_serves_the_inherited_socket():
    sock = listener()
    port = sock.getsockname()[1]
    with Served(activated([sock], ["-m", "ratchet_sel", "echo", "--port", "1"])) as served:
        sock.close()                   # only the server holds it now
        assert served.urls == [("ws", port)]      # not --port 1: nothing was bound
        assert any("serving 1 socket(s) from systemd" in line for line in served.log)
        with WsClient(port) as client:
            client.send("activated")
            assert client.recv_message() == "activated"


def test_workers_share_the_inherited_socket():
    sock = listener()
    port = sock.getsockname()[1]
    proc = activated([sock], ["-m", "ratchet_sel", "echo", "--workers", "2"])
    lines = ["one socket shared by the workers", "worker 1 (pid", "worker 2 (pid"]   # "(pid N) serving"
    with Served(proc, lines=lines):
        sock.close()
        clients = [WsClient(port) for _ in range(6)]
        for index, client in enumerate(clients):
            client.send("worker echo %d" % index)
        assert [client.recv_message() for client in clients] == ["worker echo %d" % i for i in range(6)]
        for client in clients:
            client.shutdown()


def test_tls_on_the_inherited_socket():
    sock = listener()
    port = sock.getsockname()[1]
    argv = ["-m", "ratchet_sel", "echo", "--certfile", CERTFILE, "--keyfile", KEYFILE]
    with Served(activated([sock], argv)) as served:
        sock.close()
        assert served.urls == [("wss", port)]
        with WsClient(port, tls=ssl.create_default_context(cafile=CERTFILE)) as client:
            client.send("over tls")
            assert client.recv_message() == "over tls"


def test_tls_port_takes_the_socket_named_tls():
    plain, secure = listener(), listener()
    ports = plain.getsockname()[1], secure.getsockname()[1]
    argv = ["-m", "ratchet_sel", "echo", "--certfile", CERTFILE, "--keyfile", KEYFILE, "--tls-port", "0"]
    with Served(activated([plain, secure], argv, names="web:tls"), urls=2) as served:
        plain.close()
        secure.close()
        assert sorted(served.urls) == [("ws", ports[0]), ("wss", ports[1])]
        with WsClient(ports[0]) as client:
            client.send("plain")
            assert client.recv_message() == "plain"
        with WsClient(ports[1], tls=ssl.create_default_context(cafile=CERTFILE)) as client:
            client.send("secure")
            assert client.recv_message() == "secure"


def _refused(sockets, argv, text, status=1, **kwargs):
    proc = activated(sockets, ["-m", "ratchet_sel"] + argv, **kwargs)
    _, stderr = proc.communicate(timeout=60)
    for sock in sockets:
        sock.close()
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr, stderr
    assert len([line for line in stderr.splitlines() if text in line]) == 1, stderr


def test_a_datagram_socket_is_refused():
    _refused([listener(socket.SOCK_DGRAM, listening=False)], ["echo"],
             "LISTEN_FDS: descriptor 3 is not a stream socket (SOCK_DGRAM): use ListenStream=")


def test_a_socket_that_does_not_listen_is_refused():
    _refused([listener(listening=False)], ["chat", "--workers", "2"], "LISTEN_FDS: descriptor 3 is not listening")


def test_a_missing_descriptor_is_refused():
    _refused([listener()], ["echo"], "LISTEN_FDS: descriptor 4 is not a socket", count=2)


def test_tls_port_without_a_tls_name_is_a_usage_error():
    _refused([listener(), listener()], ["echo", "--certfile", CERTFILE, "--keyfile", KEYFILE, "--tls-port", "0"],
             "name the TLS socket FileDescriptorName=tls", status=2)


def test_another_pid_is_not_this_process():
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}
    assert inherited_listeners(env) == []
    assert env == {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}   # left for whom it names


def test_malformed_count_is_an_error_and_the_variables_go():
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "many", "LISTEN_FDNAMES": "x"}
    with pytest.raises(ActivationError, match="LISTEN_FDS is 'many', not a number"):
        inherited_listeners(env)
    assert env == {}


def test_children_do_not_inherit_the_variables_or_the_socket():
    sock = listener()
    script = ("import os, subprocess, sys\n"
              "from ratchet_sel.io.activation import inherited_listeners\n"
              "found = inherited_listeners()\n"
              "print(len(found), found[0].socket.getsockname()[1], found[0].socket.get_inheritable())\n"
              "child = 'import os; print(sorted(k for k in os.environ if k.startswith(\"LISTEN_\")))'\n"
              "sys.stdout.flush()\n"
              "subprocess.run([sys.executable, '-c', child], close_fds=False)\n")
    env = dict({k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LISTEN_"))}, PYTHONPATH=ROOT,
               TEST_FDS=str(sock.fileno()), LISTEN_FDS="1")
    result = subprocess.run([sys.executable, "-c", WRAPPER, "-c", script], env=env, pass_fds=[sock.fileno()],
                            capture_output=True, text=True, timeout=60)
    port = sock.getsockname()[1]
    sock.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1 %d False" % port, "[]"]


def test_run_workers_serves_the_inherited_socket(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(
        "import logging\n"
        "from ratchet_sel import WsServer\n"
        "from ratchet_sel.demo import Echo\n"
        "from ratchet_sel.workers import run_workers\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "run_workers(lambda worker: WsServer(Echo()), '127.0.0.1', 1, workers=2)\n")
    sock = listener()
    port = sock.getsockname()[1]
    with Served(activated([sock], [str(app)]), lines=["worker 1 (pid", "worker 2 (pid"]) as served:
        sock.close()
        assert served.urls == [("ws", port)]        # not port 1: nothing was bound
        with WsClient(port) as client:
            client.send("run_workers on systemd's socket")
            assert client.recv_message() == "run_workers on systemd's socket"
