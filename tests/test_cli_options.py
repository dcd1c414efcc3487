"""The deployment options of ``python -m ratchet_sel echo|chat``: --help, usage errors, and their effect."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from wsclient import WsClient, http_exchange, upgrade_request

from ratchet_sel.__main__ import build_parser, main
from ratchet_sel.websocket.rfc6455 import Ping

pytestmark = pytest.mark.timeout(60)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIONS = ("--max-connections", "--idle-timeout", "--keepalive", "--allowed-origin", "--trusted-proxy")


class Cli:
    """``python -m ratchet_sel ARGS --host 127.0.0.1 --port 0``, its port and its log lines."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "ratchet_sel", *args, "--host", "127.0.0.1",
                                      "--port", "0"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        self.log = []
        self.logged = threading.Condition()
        self.port = None
        for line in self.proc.stderr:
            self.log.append(line)
            match = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                self.port = int(match.group(1))
                break
        if self.port is None:
            self.stop()
            raise AssertionError("the server did not log its URL: %s" % "".join(self.log))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            with self.logged:
                self.log.append(line)
                self.logged.notify_all()

    def wait_for_log(self, pattern, timeout=10.0):
        with self.logged:
            found = self.logged.wait_for(lambda: any(re.search(pattern, line) for line in self.log), timeout)
        assert found, "no log line matching %r in:\n%s" % (pattern, "".join(self.log))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@pytest.mark.parametrize("command", ["echo", "chat"])
def test_help_documents_every_option(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    for option in OPTIONS:
        assert option in help_text


@pytest.mark.parametrize("argv", [
    ["--max-connections", "0"], ["--max-connections", "-5"], ["--max-connections", "many"],
    ["--max-connections", "\u00b2"], ["--max-connections", "1" * 12],
    ["--idle-timeout", "0"], ["--idle-timeout", "nan"], ["--idle-timeout", "inf"], ["--idle-timeout", "soon"],
    ["--keepalive", "-1"], ["--keepalive", ""],
    ["--allowed-origin", ""], ["--allowed-origin", "two words"],
    ["--trusted-proxy", "10.0.0.0/33"], ["--trusted-proxy", "proxy.example"], ["--trusted-proxy", "10.0.0.0/\u00b9"],
    ["--port", "70000"], ["--port", "-1"], ["--port", "65536"], ["--port", "http"], ["--tls-port", "99999"],
], ids=lambda argv: " ".join(argv))
@pytest.mark.parametrize("command", ["echo", "chat"])
def test_bad_values_are_usage_errors(command, argv, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([command] + argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage:") and argv[0] in err


def test_good_values_parse():
    args = build_parser().parse_args(["chat", "--max-connections", "50", "--idle-timeout", "30",
                                      "--keepalive", "2.5", "--allowed-origin", "example.com",
                                      "--allowed-origin", "https://app.example:8443", "--trusted-proxy", "10.0.0.0/8",
                                      "--trusted-proxy", "::1"])
    assert (args.max_connections, args.idle_timeout, args.keepalive) == (50, 30.0, 2.5)
    assert args.allowed_origin == ["example.com", "https://app.example:8443"]
    assert args.trusted_proxy == ["10.0.0.0/8", "::1"]
    defaults = build_parser().parse_args(["echo"])
    assert defaults.max_connections == 10000
    assert (defaults.idle_timeout, defaults.keepalive, defaults.allowed_origin, defaults.trusted_proxy) == (
        None, None, [], [])


def test_a_bad_value_exits_2_from_the_real_command():
    proc = subprocess.run([sys.executable, "-m", "ratchet_sel", "echo", "--idle-timeout", "-3"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "usage:" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["chat", "--port", "70000"], ["chat", "--port=-1"],
                                  ["echo", "--port", "65536", "--workers", "2"]], ids=" ".join)
def test_a_port_out_of_range_exits_2_without_a_traceback(argv):
    proc = subprocess.run([sys.executable, "-m", "ratchet_sel", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "usage:" in proc.stderr and "argument --port: a port is from 0 to 65535" in proc.stderr


def test_max_connections_refuses_past_the_limit_with_503():
    with Cli("echo", "--max-connections", "1") as cli:
        with WsClient(cli.port) as member:
            assert member.status == 101
            status, headers, body = http_exchange(cli.port, upgrade_request())
            assert status == 503 and headers["retry-after"] and body.strip()
            member.send("still served")
            assert member.recv_message() == "still served"


def test_idle_timeout_closes_a_silent_client_with_1001():
    with Cli("echo", "--idle-timeout", "0.5") as cli:
        with WsClient(cli.port) as silent:
            started = time.monotonic()
            assert silent.expect_close().code == 1001
            assert time.monotonic() - started >= 0.4


def test_keepalive_pings_and_closes_a_client_that_never_answers():
    with Cli("echo", "--keepalive", "0.3") as cli:
        with WsClient(cli.port) as mute:
            events = []
            while True:
                event = mute.recv()
                events.append(event)
                if not isinstance(event, Ping):
                    break
            assert isinstance(events[0], Ping)
            assert events[-1].code == 1011


def test_allowed_origin_admits_listed_origins_and_clients_without_one():
    with Cli("chat", "--allowed-origin", "good.example", "--allowed-origin", "https://other.example") as cli:
        status, _, body = http_exchange(cli.port, upgrade_request(extra=[("Origin", "http://evil.example")]))
        assert status == 403 and b"evil.example" in body
        with WsClient(cli.port, extra=[("Origin", "http://good.example")]) as good:
            assert good.status == 101
        with WsClient(cli.port, extra=[("Origin", "https://other.example")]) as other:
            assert other.status == 101
        with WsClient(cli.port) as tool:                      # no Origin: not a browser
            assert tool.status == 101
        status, headers, body = http_exchange(cli.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert status == 200 and b"<html" in body.lower()    # the page itself is still served


def test_trusted_proxy_takes_the_client_address_from_x_forwarded_for():
    with Cli("echo", "--trusted-proxy", "127.0.0.0/8", "--log-level", "DEBUG") as cli:
        with WsClient(cli.port, extra=[("X-Forwarded-For", "203.0.113.9")]) as client:
            assert client.status == 101
            client.send("hi")
            assert client.recv_message() == "hi"
        cli.wait_for_log(r"client 203\.0\.113\.9 via proxy 127\.0\.0\.1")
    with Cli("echo", "--log-level", "DEBUG") as cli:          # without the option the header is ignored
        with WsClient(cli.port, extra=[("X-Forwarded-For", "203.0.113.9")]) as client:
            client.send("hi")
            assert client.recv_message() == "hi"
    assert not any("203.0.113.9" in line for line in cli.log)


def test_the_chat_demo_admits_upgrades_on_slash_only():
    with Cli("chat") as cli:
        for version in ("13", "8"):
            refused = WsClient(cli.port, path="/elsewhere", version=version)
            assert refused.status == 404
            refused.sock.close()
        with WsClient(cli.port, path="/") as member:
            assert member.status == 101
        status, _, body = http_exchange(cli.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert status == 200 and b"<html" in body
        assert http_exchange(cli.port, b"GET /elsewhere HTTP/1.1\r\nHost: h\r\n\r\n")[0] == 404
        cli.wait_for_log(r"refused with 404: no chat room at /elsewhere")


def test_version_and_the_top_level_help():
    import ratchet_sel
    version = subprocess.run([sys.executable, "-m", "ratchet_sel", "--version"], cwd=ROOT, capture_output=True,
                             text=True, timeout=30)
    assert version.returncode == 0 and version.stdout.split() == ["python", "-m", "ratchet_sel",
                                                                   ratchet_sel.__version__]
    help_text = subprocess.run([sys.executable, "-m", "ratchet_sel", "--help"], cwd=ROOT, capture_output=True,
                               text=True, timeout=30).stdout
    assert "RFC 6455" in help_text and "HyBi-10" in help_text and "Hixie-76" in help_text
