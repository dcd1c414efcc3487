"""scripts/check_unit_sizes.py: functions and classes over their length limit, and the allowlist."""

import importlib.util
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "check_unit_sizes.py")

_spec = importlib.util.spec_from_file_location("check_unit_sizes", SCRIPT)
assert _spec is not None and _spec.loader is not None
sizes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sizes)  # type: ignore[union-attr]


def body(lines):
    return "".join("    x%d = %d\n" % (i, i) for i in range(lines))


def test_units_are_named_by_their_place_and_measured_from_def_to_last_line():
    source = textwrap.dedent('''\
        def top():
            def inner():
                return 1
            return inner

        class Box:
            def method(self):
                pass
        ''')
    found = [(u.name, u.kind, u.line, u.length) for u in sizes.units("ratchet_sel/a.py", source)]
    assert found == [
        ("top", "function", 1, 4),
        ("top.inner", "function", 2, 2),
        ("Box", "class", 6, 3),
        ("Box.method", "function", 7, 2),
    ]


def test_command_line_reports_long_units_and_honours_the_allowlist(tmp_path):
    package = tmp_path / "ratchet_sel"
    (package / "websocket").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "websocket" / "rfc6455.py").write_text(
        "class FrameParser:\n    def feed(self):\n" + textwrap.indent(body(10), "    "))
    (package / "app.py").write_text("def fine():\n" + body(3) + "def long():\n" + body(10))

    result = subprocess.run([sys.executable, SCRIPT, "--max-function", "8", "--max-class", "8", str(package)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "ratchet_sel/app.py:5  long  11 lines",
        "ratchet_sel/websocket/rfc6455.py:1  FrameParser  12 lines  (allowed)",
        "ratchet_sel/websocket/rfc6455.py:2  FrameParser.feed  11 lines  (allowed)",
        "long units: 1 over the limits, 2 allowed",
    ]
    (package / "app.py").write_text("def fine():\n" + body(3))
    result = subprocess.run([sys.executable, SCRIPT, "--max-function", "8", "--max-class", "8", str(package)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.splitlines()[-1] == "long units: 0 over the limits, 2 allowed"
