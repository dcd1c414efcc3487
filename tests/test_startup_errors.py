"""A busy port (or any OSError at start) is one logged line naming the address and a non-zero exit,
from the command line, the examples, a bundled .pyz and a run_workers application: never a traceback."""

import logging
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from ratchet_sel import IoServer, WsServer, exit_on_startup_error
from ratchet_sel.demo import Echo

pytestmark = pytest.mark.timeout(90)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


@pytest.fixture
def busy_port():
    """A port some other socket listens on, on 127.0.0.1."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


def _env():
    return dict({k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}, PYTHONPATH=ROOT)


def _run(argv, cwd):
    return subprocess.run([sys.executable] + argv, cwd=str(cwd), env=_env(), capture_output=True, text=True,
                          timeout=60)


def _assert_one_line(result, port):
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "cannot listen" in line]
    assert len(lines) == 1, result.stderr
    assert "127.0.0.1:%d" % port in lines[0] and "Address already in use" in lines[0]


def test_the_helper_logs_one_line_and_exits_1(busy_port, caplog):
    with caplog.at_level(logging.ERROR, logger="ratchet_sel"):
        with pytest.raises(SystemExit) as info:
            with exit_on_startup_error():
                IoServer.factory(WsServer(Echo()), busy_port, "127.0.0.1")
    assert info.value.code == 1
    assert [r.getMessage() for r in caplog.records] == [
        "cannot listen on 127.0.0.1:%d: Address already in use" % busy_port]


def test_the_helper_lets_other_errors_through():
    with pytest.raises(ValueError):
        with exit_on_startup_error():
            raise ValueError("a bug, not the user's to fix")


def test_the_command_line_reports_a_busy_port(busy_port, tmp_path):
    _assert_one_line(_run(["-m", "ratchet_sel", "chat", "--host", "127.0.0.1", "--port", str(busy_port)],
                          tmp_path), busy_port)


@pytest.mark.parametrize("argv", [["chat.py"], ["line_chat.py"], ["push.py", "server"], ["wamp_push.py"],
                                  ["app_routes.py", "--address", "127.0.0.1"]], ids=lambda argv: argv[0])
def test_each_example_that_listens_reports_a_busy_port(argv, busy_port, tmp_path):
    argv = [os.path.join(EXAMPLES, argv[0])] + argv[1:]
    if "--address" not in argv:
        argv += ["--host", "127.0.0.1"]
    _assert_one_line(_run(argv + ["--port", str(busy_port)], tmp_path), busy_port)


def test_a_bundled_chat_reports_a_busy_port(busy_port, tmp_path):
    build = _run(["-m", "ratchet_sel", "bundle", os.path.join(EXAMPLES, "chat.py"), "-o",
                  str(tmp_path / "chat.pyz")], tmp_path)
    assert build.returncode == 0, build.stderr
    result = subprocess.run([sys.executable, "-I", "-S", "chat.pyz", "--host", "127.0.0.1", "--port",
                             str(busy_port)], cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    _assert_one_line(result, busy_port)


def test_a_run_workers_application_reports_a_busy_port(busy_port, tmp_path):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent('''
        import sys
        from ratchet_sel import WsServer
        from ratchet_sel.demo import Echo
        from ratchet_sel.workers import run_workers

        run_workers(lambda worker: WsServer(Echo()), "127.0.0.1", int(sys.argv[1]), workers=2)
        print("run_workers returned")
    '''))
    result = _run([str(app), str(busy_port)], tmp_path)
    _assert_one_line(result, busy_port)
    assert "run_workers returned" not in result.stdout
