"""--user/--group: bind as root, then serve as another user for good; refusals are one line and an exit status.

The tests that switch users need root: CI runs the suite as root (on a fresh machine), and so does this
project's test machine.  Without root they skip, saying why.
"""

import logging
import os
import pwd
import re
import signal
import subprocess
import sys
import traceback

import pytest

from ratchet_sel.ops import privileges
from ratchet_sel.ops.privileges import PrivilegeError, drop_privileges, lookup_group, lookup_user
from wsclient import WsClient, http_exchange

pytestmark = pytest.mark.timeout(90)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (CI runs the suite as root)")
NOBODY = pwd.getpwnam("nobody")
NOGROUP = lookup_group("nogroup") if os.path.exists("/etc/group") and "nogroup" in open("/etc/group").read() \
    else NOBODY.pw_gid
URL = re.compile(r"listening on \w+://127\.0\.0\.1:(\d+)/")


def _env():
    return dict({k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}, PYTHONPATH=ROOT)


def status_ids(pid):
    """The (real, effective, saved, fs) uids and gids and the groups of a process, from /proc."""
    fields = {}
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return [int(v) for v in fields["Uid"]], [int(v) for v in fields["Gid"]], [int(v) for v in fields["Groups"]]


class Server:
    """``python -m ratchet_sel ARGS`` until it logs its URL; stopped with SIGTERM on exit."""

    def __init__(self, argv, command=None):
        self.proc = subprocess.Popen(command or [sys.executable, "-m", "ratchet_sel"] + argv, cwd=ROOT, env=_env(),
                                     stderr=subprocess.PIPE, text=True)
        self.log = []
        while True:
            line = self.proc.stderr.readline()
            if not line:
                raise AssertionError("the server ended before it listened: %s" % "".join(self.log))
            self.log.append(line)
            match = URL.search(line)
            if match:
                self.port = int(match.group(1))
                return

    def wait_for_line(self, text):
        while not any(text in line for line in self.log):
            line = self.proc.stderr.readline()
            assert line, "no %r in: %s" % (text, "".join(self.log))
            self.log.append(line)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=30)


def children(pid):
    path = "/proc/%d/task/%d/children" % (pid, pid)
    with open(path) as f:
        return [int(p) for p in f.read().split()]


@needs_root
def test_chat_binds_then_serves_as_nobody():
    with Server(["chat", "--host", "127.0.0.1", "--port", "0", "--user", "nobody", "--group", "nogroup"]) as server:
        uids, gids, groups = status_ids(server.proc.pid)   # read after the URL line: already switched
        assert uids == [NOBODY.pw_uid] * 4
        assert gids == [NOGROUP] * 4
        assert 0 not in groups
        assert any("running as user nobody (uid %d), group %d" % (NOBODY.pw_uid, NOGROUP) in line
                   for line in server.log), server.log
        status, _, body = http_exchange(server.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert status == 200 and b"<html" in body.lower()
        with WsClient(server.port) as first, WsClient(server.port) as second:
            assert first.status == second.status == 101
            first.send("hello from nobody")
            assert second.recv_message() == "hello from nobody"


@needs_root
def test_workers_master_switches_before_forking():
    with Server(["echo", "--host", "127.0.0.1", "--port", "0", "--workers", "2", "--user", "nobody"]) as server:
        server.wait_for_line("one socket shared by the workers")
        pids = [server.proc.pid]
        for _ in range(2):
            server.wait_for_line("serving")
        pids += children(server.proc.pid)
        assert len(pids) == 3
        for pid in pids:
            uids, gids, _ = status_ids(pid)
            assert uids == [NOBODY.pw_uid] * 4 and gids == [NOBODY.pw_gid] * 4, pid
        with WsClient(server.port) as client:
            client.send("echo as nobody")
            assert client.recv_message() == "echo as nobody"


def _run(argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "ratchet_sel"] + argv, cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=60, **kwargs)


def _one_error_line(result, status, text):
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len([line for line in result.stderr.splitlines() if text in line]) == 1, result.stderr


@pytest.mark.parametrize("argv, text", [
    (["--user", "no-such-user-here"], "argument --user: no such user: 'no-such-user-here'"),
    (["--user", "nobody", "--group", "no-such-group-here"], "argument --group: no such group: 'no-such-group-here'"),
    (["--group", "nogroup"], "--group needs --user"),
])
def test_usage_errors_exit_2(argv, text):
    _one_error_line(_run(["echo", "--host", "127.0.0.1", "--port", "0"] + argv), 2, text)


def _as_nobody(fn):
    """``fn()`` (an exit status) in a forked child that became nobody first: (exit status, stderr).

    A fork rather than a new interpreter: this machine's Python may live where nobody cannot read it.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: never returns
        status = 99
        try:
            os.close(read_end)
            os.dup2(write_end, 2)
            sys.stderr = open(2, "w", closefd=False)   # pytest's capture replaced the object, not the fd
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            logging.getLogger().handlers.clear()     # pytest's capture handlers are the parent's
            status = fn()
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 98
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "r") as pipe:
        output = pipe.read()
    _, wait_status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(wait_status), output


@needs_root
def test_a_process_that_is_not_root_refuses_to_switch():
    from ratchet_sel.__main__ import main

    status, stderr = _as_nobody(lambda: main(["echo", "--host", "127.0.0.1", "--port", "0", "--user", "root"]))
    assert status == 1, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if "cannot switch" in line]
    assert len(lines) == 1 and lines[0].endswith(
        "cannot switch to user root (uid 0), group 0: this process runs as uid %d, not root" % NOBODY.pw_uid), stderr


@needs_root
def test_a_process_already_running_as_the_user_goes_on():
    def switch():
        print(drop_privileges("nobody"), file=sys.stderr)
        return 0

    status, stderr = _as_nobody(switch)
    assert status == 0 and stderr.strip() == "already user nobody (uid %d), group %d" % (NOBODY.pw_uid, NOBODY.pw_gid)


def test_lookups_take_names_and_numbers():
    assert lookup_user("nobody") == ("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
    assert lookup_user(str(NOBODY.pw_uid))[0] == "nobody"
    assert lookup_group(str(NOGROUP)) == NOGROUP
    with pytest.raises(PrivilegeError) as info:
        lookup_user("no-such-user-here")
    assert info.value.status == 2


def test_nothing_to_do_without_user():
    assert drop_privileges(None) is None


def test_a_failed_switch_is_an_error(monkeypatch):
    monkeypatch.setattr(privileges.os, "geteuid", lambda: 0)
    monkeypatch.setattr(privileges.os, "setgroups", lambda groups: None)
    monkeypatch.setattr(privileges.os, "initgroups", lambda name, gid: None)
    monkeypatch.setattr(privileges.os, "setgid", lambda gid: None)

    def refuse(uid):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(privileges.os, "setuid", refuse)
    with pytest.raises(PrivilegeError) as info:
        drop_privileges("nobody")
    assert info.value.status == 1 and "cannot switch to user nobody" in str(info.value)
    assert "Operation not permitted" in str(info.value)


def test_root_that_could_be_regained_is_an_error(monkeypatch):
    ids = {"uid": 0}
    monkeypatch.setattr(privileges.os, "geteuid", lambda: ids["uid"])
    monkeypatch.setattr(privileges.os, "getuid", lambda: ids["uid"])
    monkeypatch.setattr(privileges.os, "getgid", lambda: NOBODY.pw_gid)
    monkeypatch.setattr(privileges.os, "getegid", lambda: NOBODY.pw_gid)
    monkeypatch.setattr(privileges.os, "setgroups", lambda groups: None)
    monkeypatch.setattr(privileges.os, "initgroups", lambda name, gid: None)
    monkeypatch.setattr(privileges.os, "setgid", lambda gid: None)
    monkeypatch.setattr(privileges.os, "setuid", lambda uid: ids.update(uid=uid))   # a kernel that lets it back
    with pytest.raises(PrivilegeError) as info:
        drop_privileges("nobody")
    assert "root could be regained" in str(info.value)


@needs_root
def test_run_workers_takes_user(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(
        "import logging\n"
        "from ratchet_sel import WsServer\n"
        "from ratchet_sel.demo import Echo\n"
        "from ratchet_sel.workers import run_workers\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "run_workers(lambda worker: WsServer(Echo()), '127.0.0.1', 0, workers=2, user='nobody')\n")
    os.chmod(str(tmp_path), 0o755)
    with Server([], command=[sys.executable, str(app)]) as server:
        server.wait_for_line("running as user nobody")
        uids, _, _ = status_ids(server.proc.pid)
        assert uids == [NOBODY.pw_uid] * 4
        with WsClient(server.port) as client:
            client.send("x")
            assert client.recv_message() == "x"


def test_run_workers_unknown_user_exits_2(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(
        "from ratchet_sel import WsServer\n"
        "from ratchet_sel.demo import Echo\n"
        "from ratchet_sel.workers import run_workers\n"
        "run_workers(lambda worker: WsServer(Echo()), '127.0.0.1', 0, workers=2, user='no-such-user-here')\n")
    result = subprocess.run([sys.executable, str(app)], env=_env(), capture_output=True, text=True, timeout=60)
    _one_error_line(result, 2, "no such user: 'no-such-user-here'")


@needs_root
def test_bundle_entry_point_takes_user(tmp_path):
    folder = tmp_path / "pub"
    folder.mkdir()
    os.chmod(str(tmp_path), 0o755)
    os.chmod(str(folder), 0o755)      # nobody reads the archive for the modules imported after the switch
    archive = folder / "ratchet_sel.pyz"
    subprocess.run([sys.executable, "-m", "ratchet_sel", "bundle", "-o", str(archive)], cwd=ROOT, env=_env(),
                   check=True, capture_output=True, timeout=60)
    os.chmod(str(archive), 0o755)
    command = [sys.executable, "-I", "-S", str(archive), "echo", "--host", "127.0.0.1", "--port", "0",
               "--user", "nobody"]
    with Server([], command=command) as server:
        assert status_ids(server.proc.pid)[0] == [NOBODY.pw_uid] * 4
        with WsClient(server.port) as client:
            client.send("bundled")
            assert client.recv_message() == "bundled"
