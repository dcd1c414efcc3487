"""scripts/count_private_access.py: which reads and writes of private attributes count, and where."""

import importlib.util
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "count_private_access.py")

_spec = importlib.util.spec_from_file_location("count_private_access", SCRIPT)
assert _spec is not None and _spec.loader is not None
counter = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(counter)  # type: ignore[union-attr]


def accesses(**files):
    """Run the counter over small modules: keyword ``pkg__mod`` is ratchet_sel/pkg/mod.py."""
    sources = {}
    for name, text in files.items():
        path = "ratchet_sel/" + name.replace("__", "/") + ".py"
        sources[path] = textwrap.dedent(text)
    return [(a.path, a.line, a.expr, a.scope) for a in counter.find_accesses(sources)]


OWNER = """
    class Owner:
        def __init__(self):
            self._state = 0

        def _helper(self):
            return self._state
"""


def test_own_attributes_through_self_cls_and_super_do_not_count():
    found = accesses(a=OWNER + """
    class Child(Owner):
        def run(self):
            self._state = 1
            return super()._helper()

        @classmethod
        def make(cls):
            return cls._helper
    """)
    assert found == []


def test_within_a_module_another_class_reaching_in():
    found = accesses(a=OWNER + """
    def peek(owner):
        return owner._state
    """)
    assert found == [("ratchet_sel/a.py", 10, "owner._state", "within a module")]


def test_across_modules_of_one_package_and_writes_count_too():
    found = accesses(pkg__owner=OWNER, pkg__user="""
    def poke(owner, server):
        owner._state = 2
        server.link._helper()
    """)
    assert found == [
        ("ratchet_sel/pkg/user.py", 3, "owner._state", "across modules"),
        ("ratchet_sel/pkg/user.py", 4, "server.link._helper", "across modules"),
    ]


def test_across_packages_and_names_defined_nowhere():
    found = accesses(io__owner=OWNER, wamp__user="""
    def poke(conn, sock):
        return conn._state, sock._sslobj
    """)
    assert [access[3] for access in found] == ["across packages", "across packages"]


def test_top_level_modules_form_one_package():
    found = accesses(app=OWNER, demo="""
    def peek(owner):
        return owner._state
    """)
    assert found == [("ratchet_sel/demo.py", 3, "owner._state", "across modules")]


def test_an_imported_module_is_the_owner_of_its_private_names():
    # _state is also defined in user.py; the import, not the name, decides.
    found = accesses(pkg__helpers="_TABLE = {}\n", other__helpers2="_X = 1\n", pkg__user="""
    from . import helpers
    from ..other import helpers2 as h2
    _TABLE = None

    def look():
        return helpers._TABLE, h2._X
    """)
    assert [access[2:] for access in found] == [
        ("helpers._TABLE", "across modules"),
        ("h2._X", "across packages"),
    ]


def test_getattr_setattr_hasattr_with_a_private_name():
    found = accesses(a=OWNER + """
    def poke(owner):
        setattr(owner, "_state", getattr(owner, "_state") + 1)
        return hasattr(owner, "_helper"), getattr(owner, "__dict__"), getattr(owner, "public")
    """)
    assert [access[2] for access in found] == [
        'setattr(owner, "_state", getattr(owner, "_state") + 1)',
        'getattr(owner, "_state")',
        'hasattr(owner, "_helper")',
    ]
    assert {access[3] for access in found} == {"within a module"}


def test_dunders_and_mangled_names_are_not_private_attributes():
    assert accesses(a="""
    def f(obj):
        return obj.__class__, obj.__private, obj._
    """) == []


def test_same_class_on_another_instance_is_listed_but_not_counted():
    found = accesses(a="""
    class Entry:
        __slots__ = ("_when", "name")

        def __init__(self):
            self._seq = 0
            self._when = 0.0

        def __lt__(self, other):
            return (self._when, self._seq) < (other._when, other._seq)

        def _key(self):
            return self._seq

        def same(self, other):
            return other._key() == self._key()

    def outside(entry):
        return entry._seq
    """)
    assert [(access[2], access[3]) for access in found] == [
        ("other._when", "same class"),
        ("other._seq", "same class"),
        ("other._key", "same class"),
        ("entry._seq", "within a module"),
    ]
    total, line = counter.summary(counter.find_accesses({"ratchet_sel/a.py": textwrap.dedent("""
    class Entry:
        def __init__(self):
            self._seq = 0

        def __lt__(self, other):
            return self._seq < other._seq
    """)}))
    assert total == 0
    assert line == ("private accesses: 0 (within a module 0, across modules 0, across packages 0); "
                    "not counted: same class 1, documented stdlib name 0")


def test_a_parameter_annotated_with_another_class_reaches_that_class():
    # Connection copies the server's _read_view into its own: the read is the server's.
    found = accesses(io__listener="""
    class IoServer:
        def __init__(self):
            self._read_view = None
    """, io__stream="""
    from typing import Any

    class Connection:
        def __init__(self, server: "IoServer", twin: "Connection", unknown: Any):
            self._read_view = server._read_view
            self._shared = twin._read_view
            self._guess = unknown._read_view
    """)
    assert [(access[2], access[3]) for access in found] == [
        ("server._read_view", "across modules"),
        ("twin._read_view", "same class"),
        ("unknown._read_view", "same class"),
    ]


def test_a_method_of_another_class_reaching_in_is_not_same_class():
    found = accesses(a=OWNER + """
    class Reader:
        def __init__(self):
            self._cache = None

        def read(self, owner):
            return owner._state
    """)
    assert [access[3] for access in found] == ["within a module"]


def test_os_exit_is_a_documented_name_not_a_private_one():
    found = accesses(a="""
    import os

    def child():
        os._exit(0)
    """)
    assert [access[2:] for access in found] == [("os._exit", "documented stdlib name")]
    assert counter.summary(counter.find_accesses({"ratchet_sel/a.py": "import os\nos._exit(0)\n"}))[0] == 0


def write_package(tmp_path, files):
    for path, text in files.items():
        full = tmp_path / "ratchet_sel" / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(textwrap.dedent(text))
    return str(tmp_path / "ratchet_sel")


def run(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args), capture_output=True, text=True)


def test_command_line_list_summary_and_limits(tmp_path):
    root = write_package(tmp_path, {
        "__init__.py": "",
        "io/__init__.py": "",
        "io/owner.py": OWNER,
        "wamp/__init__.py": "",
        "wamp/user.py": "def peek(conn):\n    return conn._state\n",
    })
    listed = run("--list", root)
    assert listed.returncode == 0
    assert listed.stdout.splitlines() == [
        "ratchet_sel/wamp/user.py:2  conn._state  [across packages]",
        "private accesses: 1 (within a module 0, across modules 0, across packages 1); "
        "not counted: same class 0, documented stdlib name 0",
    ]
    assert run("--max", "1", root).returncode == 0
    over = run("--max", "0", root)
    assert over.returncode == 1 and "more than 0" in over.stderr
    crossing = run("--no-cross-package", root)
    assert crossing.returncode == 1 and "cross a package" in crossing.stderr


def test_the_project_itself_has_no_private_access_across_packages():
    # Guards the layout rule of docs/design.md: packages meet through public names.
    found = counter.find_accesses(counter.read_sources(os.path.join(ROOT, "ratchet_sel")))
    assert [a for a in found if a.scope == "across packages"] == []
