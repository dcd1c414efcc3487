"""The deployment guide's configurations, run for real: nginx in front of the chat, and the systemd unit.

The nginx block under "nginx in front, tested" in docs/tutorial/deployment.md is
read from the page, its ports replaced, wrapped in a minimal nginx.conf in a
temporary prefix (``-p``, ``daemon off``) and started on a free port; a
WebSocket chat and the health URL go through it.  The systemd unit of the page
is checked with ``systemd-analyze verify``.  Each test skips only when its
program is not installed; CI installs both and fails on a skip
(scripts/ci_redis.sh).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
from redis_support import ROOT, ServerProcess, free_port
from wsclient import WsClient, http_exchange

pytestmark = pytest.mark.timeout(60)

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
PAGE = os.path.join(ROOT, "docs", "tutorial", "deployment.md")


def page_block(heading: str, language: str) -> str:
    """The first ```language block after ``heading`` on the deployment page."""
    with open(PAGE, encoding="utf-8") as page:
        text = page.read()
    start = text.index(heading)
    match = re.compile(r"^```%s\n(.*?)^```" % language, re.M | re.S).search(text, start)
    assert match, "no %s block after %r" % (language, heading)
    return match.group(1)


def nginx_conf(prefix: str, block: str) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""   # workers must read the private temporary prefix
    temp = "".join("    %s_temp_path %s/%s;\n" % (kind, prefix, kind)
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return ("%sworker_processes 1;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/error.log info;\n"
            "events { worker_connections 128; }\nhttp {\n    access_log %s/access.log;\n%s%s}\n"
            % (user, prefix, prefix, prefix, temp, block))


@pytest.fixture
def nginx_in_front(tmp_path):
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    with ServerProcess(["-m", "ratchet_sel", "chat", "--host", "127.0.0.1", "--port", "0", "--health", "/healthz",
                        "--trusted-proxy", "127.0.0.1"]) as backend:
        port = free_port()
        block = page_block("### nginx in front, tested", "nginx")
        assert "listen 80;" in block and "127.0.0.1:8000" in block
        block = block.replace("listen 80;", "listen 127.0.0.1:%d;" % port)
        block = block.replace("127.0.0.1:8000", "127.0.0.1:%d" % backend.port)
        (tmp_path / "nginx.conf").write_text(nginx_conf(str(tmp_path), block))
        check = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                                "-e", str(tmp_path / "error.log")], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                                 "-e", str(tmp_path / "error.log")], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert proc.poll() is None, "nginx ended: %s" % proc.stderr.read()   # type: ignore[union-attr]
                    assert time.monotonic() < deadline, "nginx did not listen within 15 s"
                    time.sleep(0.05)
            yield port, backend
        finally:
            proc.send_signal(signal.SIGQUIT)   # graceful stop
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stderr is not None:
                proc.stderr.close()


def test_the_health_url_and_a_websocket_chat_through_nginx(nginx_in_front):
    port, backend = nginx_in_front
    for host in (b"10.0.0.5", b"127.0.0.1:%d" % port, b"chat.example.com"):
        status, headers, body = http_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                                              % host)
        assert status == 200, body
        status_body = json.loads(body.decode("utf-8"))
        assert status_body["status"] == "ok" and status_body["pid"] == backend.proc.pid
    status, _, body = http_exchange(port, b"GET /healthz HTTP/1.0\r\n\r\n")   # no Host: nginx fills in its own
    assert status == 200 and json.loads(body.decode("utf-8"))["status"] == "ok"
    with WsClient(port) as alice, WsClient(port) as bob:
        assert alice.status == 101
        alice.send("through nginx")
        assert bob.recv_message() == "through nginx"
        bob.send(b"\x00\xffbinary")
        assert alice.recv_message() == b"\x00\xffbinary"
        status, _, body = http_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: 10.0.0.5\r\nConnection: close\r\n\r\n")
        assert json.loads(body.decode("utf-8"))["connections"] == 2
    page = http_exchange(port, b"GET / HTTP/1.1\r\nHost: chat.example.com\r\nConnection: close\r\n\r\n")
    assert page[0] == 200 and b"<html" in page[2].lower()


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
def test_the_systemd_unit_verifies(tmp_path):
    unit = page_block("## systemd", "ini")
    assert "ExecStart=/usr/bin/python3" in unit
    # The unit names /srv/chat/chat.pyz and user "chat", which exist only on the server;
    # verify it with the path of a file that exists here and no User=/Group= lines.
    python3 = shutil.which("python3") or "/usr/bin/python3"
    unit = unit.replace("/usr/bin/python3", python3).replace("/srv/chat/chat.pyz", os.path.join(ROOT, "README.md"))
    unit = unit.replace("WorkingDirectory=/srv/chat", "WorkingDirectory=%s" % ROOT)
    unit = "\n".join(line for line in unit.splitlines() if not line.startswith(("User=", "Group=")))
    path = tmp_path / "chat.service"
    path.write_text(unit + "\n")
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(path)], capture_output=True, text=True,
                          timeout=60)
    problems = [line for line in (done.stdout + done.stderr).splitlines() if "chat.service" in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr
