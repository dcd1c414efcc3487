"""python -m ratchet_sel bundle: one file that runs under python3 -I -S with nothing installed."""

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import zipfile

import pytest
from wsclient import WsClient, http_exchange

from ratchet_sel.ops.bundle import BundleError, archive_of, build_bundle, deployment_dir, read_beside

pytestmark = pytest.mark.timeout(90)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHAT = os.path.join(ROOT, "examples", "chat.py")
URL = re.compile(r"ws://127\.0\.0\.1:(\d+)/")


def _env_without_python_path():
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def _bundle_cli(*args, cwd=ROOT):
    """Run the documented command; returns the completed process."""
    env = dict(_env_without_python_path(), PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "ratchet_sel", "bundle"] + list(args), cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


def _start(command, cwd):
    """Start a server process and return it with the port its log names."""
    proc = subprocess.Popen(command, cwd=str(cwd), stderr=subprocess.PIPE, text=True,
                            env=_env_without_python_path())
    seen = []
    for line in proc.stderr:
        seen.append(line)
        match = URL.search(line)
        if match:
            return proc, int(match.group(1))
    proc.wait(timeout=10)
    raise AssertionError("the server did not log its URL; exit %s, output:\n%s" % (proc.returncode, "".join(seen)))


@pytest.fixture(scope="module")
def chat_pyz(tmp_path_factory):
    build = tmp_path_factory.mktemp("build")
    result = _bundle_cli(CHAT, "-o", str(build / "chat.pyz"))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stderr
    return build / "chat.pyz"


def test_bundled_chat_runs_alone_under_isolated_python_and_relays(chat_pyz, tmp_path):
    empty = tmp_path / "deploy"
    empty.mkdir()
    shutil.copy2(str(chat_pyz), str(empty / "chat.pyz"))
    assert os.listdir(str(empty)) == ["chat.pyz"]
    proc, port = _start([sys.executable, "-I", "-S", "chat.pyz", "--port", "0", "--host", "127.0.0.1"], empty)
    try:
        with WsClient(port) as alice, WsClient(port) as bob:
            assert alice.status == bob.status == 101
            alice.send("hello from alice")
            assert bob.recv_message() == "hello from alice"
            bob.send(b"\x00binary\xff")
            assert alice.recv_message() == b"\x00binary\xff"
            # The page is a module of the package: it comes out of the archive, not the disk.
            status, headers, body = http_exchange(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                        b"Connection: close\r\n\r\n")
            assert status == 200 and headers["content-type"].startswith("text/html")
            assert b"new WebSocket(" in body
            proc.send_signal(signal.SIGTERM)
            assert alice.expect_close().code == 1001
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
        proc.stderr.close()
    assert os.listdir(str(empty)) == ["chat.pyz"], "running the bundle wrote files beside it"


def test_examples_chat_finds_the_package_from_a_checkout_even_isolated(tmp_path):
    # python3 -I -S leaves the script's folder, PYTHONPATH and site-packages off sys.path.
    result = subprocess.run([sys.executable, "-I", "-S", CHAT, "--help"], cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30,
                            env=_env_without_python_path())
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout


def test_bundle_holds_the_app_and_the_package_only(chat_pyz):
    with zipfile.ZipFile(str(chat_pyz)) as archive:
        names = archive.namelist()
    assert "__main__.py" in names and "chat.py" in names
    assert "ratchet_sel/__init__.py" in names and "ratchet_sel/websocket/rfc6455.py" in names
    assert "ratchet_sel/py.typed" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith(("tests/", "scripts/"))]
    assert not [n for n in names if not (n.startswith("ratchet_sel/") or n in ("__main__.py", "chat.py"))]


def test_bundle_is_executable_with_the_default_shebang(chat_pyz):
    with open(str(chat_pyz), "rb") as stream:
        assert stream.readline() == b"#!/usr/bin/env python3\n"
    mode = os.stat(str(chat_pyz)).st_mode
    assert mode & stat.S_IXUSR
    if shutil.which("python3") is None:
        pytest.skip("no python3 on PATH for the shebang to find")
    result = subprocess.run([str(chat_pyz), "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, timeout=30, env=_env_without_python_path())
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout and "--host" in result.stdout


def test_python_option_sets_the_shebang_and_compress_deflates(tmp_path):
    plain = tmp_path / "plain.pyz"
    packed = tmp_path / "packed.pyz"
    assert _bundle_cli(CHAT, "-o", str(plain), "--python", "/opt/python3.12/bin/python3").returncode == 0
    result = _bundle_cli(CHAT, "-o", str(packed), "--compress", "--python", sys.executable)
    assert result.returncode == 0, result.stderr
    with open(str(plain), "rb") as stream:
        assert stream.readline() == b"#!/opt/python3.12/bin/python3\n"
    with open(str(packed), "rb") as stream:
        assert stream.readline() == ("#!%s\n" % sys.executable).encode()
    with zipfile.ZipFile(str(plain)) as archive:
        assert {info.compress_type for info in archive.infolist() if not info.is_dir()} == {zipfile.ZIP_STORED}
    with zipfile.ZipFile(str(packed)) as archive:
        assert {info.compress_type for info in archive.infolist() if not info.is_dir()} == {zipfile.ZIP_DEFLATED}
    assert os.path.getsize(str(packed)) < os.path.getsize(str(plain))
    # The compressed archive runs through its own shebang, isolated.
    run = subprocess.run([str(packed), "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=30, env=_env_without_python_path())
    assert run.returncode == 0, run.stderr


def test_empty_python_option_writes_no_shebang(tmp_path):
    target = tmp_path / "noshebang.pyz"
    assert _bundle_cli(CHAT, "-o", str(target), "--python", "").returncode == 0
    with open(str(target), "rb") as stream:
        assert stream.read(2) == b"PK"


READER_APP = '''\
"""Reads one file shipped with the code and one file that belongs to the deployment."""
import os
import sys

from ratchet_sel.ops.bundle import deployment_dir, read_beside

print("shipped:", read_beside(__file__, "greeting.txt").decode().strip())
print("nested:", read_beside(__file__, "templates/page.html").decode().strip())
with open(os.path.join(deployment_dir(__file__), "local.ini")) as conf:
    print("local:", conf.read().strip())
print("file:", __file__)
print("name:", __name__)
sys.exit(0)
'''


def _make_reader_app(folder):
    folder.mkdir()
    (folder / "reader.py").write_text(READER_APP)
    (folder / "greeting.txt").write_text("hello from inside\n")
    (folder / "templates").mkdir()
    (folder / "templates" / "page.html").write_text("<p>page</p>\n")
    (folder / "local.ini").write_text("source-side\n")
    return folder


def test_an_app_reads_files_beside_itself_from_a_folder_and_from_the_bundle(tmp_path):
    source = _make_reader_app(tmp_path / "src")
    env = dict(_env_without_python_path(), PYTHONPATH=ROOT)
    from_folder = subprocess.run([sys.executable, str(source / "reader.py")], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, timeout=30, env=env)
    assert from_folder.returncode == 0, from_folder.stderr
    assert "shipped: hello from inside" in from_folder.stdout
    assert "nested: <p>page</p>" in from_folder.stdout
    assert "local: source-side" in from_folder.stdout

    result = _bundle_cli(str(source / "reader.py"), "-o", str(tmp_path / "reader.pyz"),
                         "--include", str(source / "greeting.txt"), "--include", str(source / "templates"))
    assert result.returncode == 0, result.stderr
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    shutil.copy2(str(tmp_path / "reader.pyz"), str(deploy / "reader.pyz"))
    (deploy / "local.ini").write_text("deployment-side\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bundled = subprocess.run([sys.executable, "-I", "-S", str(deploy / "reader.pyz")], cwd=str(elsewhere),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30,
                             env=_env_without_python_path())
    assert bundled.returncode == 0, bundled.stderr
    assert "shipped: hello from inside" in bundled.stdout
    assert "nested: <p>page</p>" in bundled.stdout
    assert "local: deployment-side" in bundled.stdout
    # What the docs say __file__ is inside a zipapp: a path through the archive.
    assert "file: %s" % os.path.join(str(deploy / "reader.pyz"), "reader.py") in bundled.stdout
    assert "name: __main__" in bundled.stdout


def test_read_beside_names_the_missing_member(tmp_path):
    source = _make_reader_app(tmp_path / "src")
    target = build_bundle(str(source / "reader.py"), str(tmp_path / "r.pyz"))
    inside = os.path.join(target, "reader.py")
    assert archive_of(inside) == target
    assert deployment_dir(inside) == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="greeting.txt.*--include"):
        read_beside(inside, "greeting.txt")
    # From the folder the same call reads the disk.
    assert read_beside(str(source / "reader.py"), "greeting.txt") == b"hello from inside\n"
    assert archive_of(str(source / "reader.py")) is None
    assert deployment_dir(str(source / "reader.py")) == str(source)


def test_without_output_the_bundle_goes_to_the_current_folder_not_beside_the_source(tmp_path):
    source, work = tmp_path / "src", tmp_path / "work"
    source.mkdir()
    work.mkdir()
    shutil.copy2(CHAT, str(source / "chat.py"))
    result = _bundle_cli(str(source / "chat.py"), cwd=str(work))
    assert result.returncode == 0, result.stderr
    assert os.listdir(str(work)) == ["chat.pyz"] and os.listdir(str(source)) == ["chat.py"]
    assert "wrote chat.pyz" in result.stderr


def test_compiled_extension_files_are_never_packed(chat_pyz, tmp_path):
    with zipfile.ZipFile(str(chat_pyz)) as archive:
        assert not [n for n in archive.namelist() if n.endswith((".so", ".pyd", ".dylib"))]
    extra = tmp_path / "helpers"
    extra.mkdir()
    for name in ("fast.cpython-311-x86_64-linux-gnu.so", "fast.cp311-win_amd64.pyd", "fast.dylib", "slow.py"):
        (extra / name).write_bytes(b"\x7fELF" if not name.endswith(".py") else b"X = 1\n")
    app = tmp_path / "app.py"
    app.write_text("print('hi')\n")
    target = build_bundle(str(app), str(tmp_path / "app.pyz"), include=[str(extra)])
    with zipfile.ZipFile(target) as archive:
        helpers = sorted(n for n in archive.namelist() if n.startswith("helpers/") and n != "helpers/")
    assert helpers == ["helpers/slow.py"]


def test_bad_inputs_get_clear_errors(tmp_path):
    with pytest.raises(BundleError, match="no such application"):
        build_bundle(str(tmp_path / "missing.py"))
    bad = tmp_path / "my-app.py"
    bad.write_text("print('hi')\n")
    with pytest.raises(BundleError, match="identifier"):
        build_bundle(str(bad))
    good = tmp_path / "good.py"
    good.write_text("print('hi')\n")
    with pytest.raises(BundleError, match="already has 'good.py'"):
        build_bundle(str(good), str(tmp_path / "g.pyz"), include=[str(good)])
    with pytest.raises(BundleError, match="no such file or folder"):
        build_bundle(str(good), str(tmp_path / "g.pyz"), include=[str(tmp_path / "nothing")])
    with pytest.raises(BundleError, match="is a folder"):
        build_bundle(str(good), str(tmp_path))
    result = _bundle_cli(str(bad))
    assert result.returncode == 1 and "identifier" in result.stderr


def test_without_an_app_the_bundle_is_the_command_line(tmp_path):
    result = _bundle_cli("-o", str(tmp_path / "ratchet_sel.pyz"), "--compress")
    assert result.returncode == 0, result.stderr
    proc, port = _start([sys.executable, "-I", "-S", "ratchet_sel.pyz", "echo", "--port", "0", "--host",
                         "127.0.0.1"], tmp_path)
    try:
        with WsClient(port) as client:
            client.send("echo me")
            assert client.recv_message() == "echo me"
            proc.send_signal(signal.SIGTERM)
            assert client.expect_close().code == 1001
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
        proc.stderr.close()
    # The same file vendors the library: on sys.path, zipimport loads the package from it.
    vendored = subprocess.run([sys.executable, "-I", "-S", "-c",
                               "import sys; sys.path.insert(0, 'ratchet_sel.pyz'); import ratchet_sel; "
                               "from ratchet_sel.demo import CHAT_PAGE; print(ratchet_sel.__file__, len(CHAT_PAGE) > 0)"],
                              cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30,
                              env=_env_without_python_path())
    assert vendored.returncode == 0, vendored.stderr
    assert vendored.stdout.split() == [os.path.join("ratchet_sel.pyz", "ratchet_sel", "__init__.py"), "True"]
    # A bundle cannot copy the package out of itself: it says so instead of writing a broken archive.
    (tmp_path / "app.py").write_text("print('hi')\n")
    nested = subprocess.run([sys.executable, "-I", "-S", "ratchet_sel.pyz", "bundle", "app.py"], cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30,
                            env=_env_without_python_path())
    assert nested.returncode == 1 and "running from an archive" in nested.stderr
    assert not (tmp_path / "app.pyz").exists()


def test_default_output_is_next_to_the_app(tmp_path):
    app = tmp_path / "hello.py"
    app.write_text(textwrap.dedent("""\
        import ratchet_sel
        print("hello", ratchet_sel.__version__)
        """))
    result = _bundle_cli(str(app), cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    target = tmp_path / "hello.pyz"
    run = subprocess.run([sys.executable, "-I", "-S", str(target)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=30, env=_env_without_python_path())
    assert run.returncode == 0 and run.stdout.startswith("hello "), run.stderr
