"""The package layout: old import paths keep working, and the top level stays small."""

import importlib
import os
import subprocess
import sys

import pytest

import ratchet_sel
from ratchet_sel._moved import MOVED

PACKAGE = os.path.dirname(os.path.abspath(ratchet_sel.__file__))


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_an_old_module_path_imports_the_moved_module(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)
    # The module keeps its own name and spec: relative imports inside it still resolve.
    assert importlib.import_module(old).__spec__.name == new


def test_old_paths_work_in_a_fresh_interpreter_before_anything_else():
    code = ("from ratchet_sel.loop import Loop\n"
            "from ratchet_sel.server import IoServer, Connection, bind_listener\n"
            "from ratchet_sel.metrics import MetricsEndpoint\n"
            "import ratchet_sel.stats, ratchet_sel.io.loop\n"
            "assert Loop is ratchet_sel.io.loop.Loop\n"
            "assert IoServer is ratchet_sel.IoServer and Connection is ratchet_sel.Connection\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(PACKAGE))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_the_old_server_module_names_come_from_the_io_package():
    from ratchet_sel import server
    from ratchet_sel.io import listener, stream
    assert server.IoServer is listener.IoServer
    assert server.TlsConnection is stream.TlsConnection
    assert server.DEFAULT_MAX_CONNECTIONS == listener.DEFAULT_MAX_CONNECTIONS
    with pytest.raises(AttributeError):
        server.NoSuchName  # noqa: B018


def test_the_top_level_holds_few_modules():
    modules = sorted(name for name in os.listdir(PACKAGE)
                     if name.endswith(".py") and name not in ("__init__.py", "__main__.py"))
    assert len(modules) <= 6, modules
