"""deploy/ratchet-chat.socket and .service: systemd-analyze verify accepts them, and the service's command
serves a socket handed over the way systemd hands it (LISTEN_FDS/LISTEN_PID).

The verify test skips only when systemd-analyze is not installed; CI installs it and fails on a skip
(scripts/ci_privileges.sh).
"""

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from test_socket_activation import Served, activated, listener
from wsclient import WsClient, http_exchange

pytestmark = pytest.mark.timeout(90)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(ROOT, "deploy")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
BUNDLE = "/usr/bin/python3 -I -S /srv/chat/ratchet_sel.pyz"


def unit_text(name):
    with open(os.path.join(DEPLOY, name), encoding="utf-8") as unit:
        return unit.read()


def exec_start():
    """The service's ExecStart= line, split as a shell would."""
    lines = [line for line in unit_text("ratchet-chat.service").splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1
    return lines[0][len("ExecStart="):]


def verify(folder):
    """systemd-analyze verify of the pair in ``folder``: (exit status, output)."""
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(folder / "ratchet-chat.socket"),
                           str(folder / "ratchet-chat.service")], capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def local_copies(folder, socket_text=None):
    """The two units in ``folder``, ExecStart naming files of this machine (verify checks the program exists)."""
    assert exec_start().startswith(BUNDLE + " chat ")
    service = unit_text("ratchet-chat.service").replace(BUNDLE, "%s -I -S %s" % (sys.executable,
                                                                                   os.path.join(ROOT, "README.md")))
    (folder / "ratchet-chat.service").write_text(service)
    (folder / "ratchet-chat.socket").write_text(socket_text or unit_text("ratchet-chat.socket"))


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
def test_systemd_analyze_verifies_the_units(tmp_path):
    local_copies(tmp_path)
    status, output = verify(tmp_path)
    assert status == 0 and "ratchet-chat" not in output, output


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
def test_the_check_catches_a_broken_socket_unit(tmp_path):
    local_copies(tmp_path, unit_text("ratchet-chat.socket").replace("ListenStream=80", "ListenStreem=80"))
    status, output = verify(tmp_path)
    assert status != 0 and "ListenStreem" in output, output


def test_the_units_agree():
    socket_unit, service = unit_text("ratchet-chat.socket"), unit_text("ratchet-chat.service")
    assert "ListenStream=80\n" in socket_unit and "Accept=no\n" in socket_unit
    assert "Requires=ratchet-chat.socket" in service and "User=root" not in service
    assert "--user" not in exec_start() and "--port" not in exec_start()   # nothing to bind, nobody to become


def test_the_deployment_guide_shows_the_files_as_they_are():
    with open(os.path.join(ROOT, "docs", "tutorial", "deployment.md"), encoding="utf-8") as page:
        text = page.read()
    for name in ("ratchet-chat.socket", "ratchet-chat.service"):
        assert "```ini\n%s```" % unit_text(name) in text, name


def test_the_service_command_serves_the_handed_socket():
    argv = shlex.split(exec_start())[len(shlex.split(BUNDLE)):]          # chat --workers 2 --health /healthz
    sock = listener()
    port = sock.getsockname()[1]
    lines = ["worker 1 (pid", "worker 2 (pid"]
    with Served(activated([sock], ["-m", "ratchet_sel"] + argv, names="web"), lines=lines):
        sock.close()
        status, _, body = http_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: 10.0.0.5\r\nConnection: close\r\n\r\n")
        assert status == 200 and b'"status"' in body
        with WsClient(port) as alice, WsClient(port) as bob:
            alice.send("through systemd's socket")
            assert bob.recv_message() == "through systemd's socket"
