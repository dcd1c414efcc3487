"""The optional C accelerator: same bytes as the pure-Python reference, and never required.

The comparisons run whenever the accelerator is built (CI builds it and runs
the whole suite once with it and once with RATCHET_SEL_NO_SPEEDUPS=1); the
fallback tests run everywhere.
"""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

import ratchet_sel
from ratchet_sel import accelerator
from ratchet_sel.websocket import rfc6455

pytestmark = pytest.mark.timeout(60)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 125, 126, 4095, 16384, 16385, 65536, 70001, 1 << 20]
needs_c = pytest.mark.skipif(not accelerator.enabled, reason="C accelerator not built (%s)" % accelerator.status)


def definition(data: bytes, mask: bytes) -> bytes:
    return bytes(b ^ mask[i & 3] for i, b in enumerate(data))


def test_enabled_flag_matches_the_implementation_in_use():
    assert ratchet_sel.speedups_enabled is accelerator.enabled
    if accelerator.enabled:
        assert rfc6455.apply_mask is accelerator.speedups.apply_mask
        assert accelerator.status.startswith("C accelerator")
    else:
        assert rfc6455.apply_mask is rfc6455.apply_mask_python
        assert accelerator.status.startswith("pure Python")


@pytest.mark.parametrize("size", SIZES)
def test_pure_reference_matches_the_definition(size):
    data, mask = os.urandom(size), os.urandom(4)
    expected = definition(data, mask) if size <= 70001 else None
    got = rfc6455.apply_mask_python(data, mask)
    if expected is not None:
        assert got == expected
    buffer = bytearray(data)
    rfc6455.apply_mask_inplace_python(buffer, mask)
    assert bytes(buffer) == got


@needs_c
@pytest.mark.parametrize("size", SIZES)
def test_c_matches_the_pure_reference(size):
    data, mask = os.urandom(size), os.urandom(4)
    expected = rfc6455.apply_mask_python(data, mask)
    c = accelerator.speedups
    for source in (data, bytearray(data), memoryview(data)):
        result = c.apply_mask(source, mask)
        assert type(result) is bytes and result == expected
    buffer = bytearray(data)
    c.apply_mask_inplace(buffer, mask)
    assert buffer == expected


@needs_c
def test_c_on_unaligned_slices_and_in_place_views():
    data, mask = os.urandom(1000), os.urandom(4)
    view = memoryview(data)[3:998]  # starts off any word boundary
    assert accelerator.speedups.apply_mask(view, mask) == rfc6455.apply_mask_python(bytes(view), mask)
    buffer = bytearray(data)
    accelerator.speedups.apply_mask_inplace(memoryview(buffer)[5:901], mask)
    assert buffer[:5] == data[:5] and buffer[901:] == data[901:]
    assert bytes(buffer[5:901]) == rfc6455.apply_mask_python(data[5:901], mask)


@needs_c
def test_c_refuses_bad_arguments_clearly():
    c = accelerator.speedups
    with pytest.raises(ValueError, match="4 bytes"):
        c.apply_mask(b"abc", b"12345")
    with pytest.raises(ValueError, match="4 bytes"):
        c.apply_mask_inplace(bytearray(3), b"12")
    with pytest.raises(TypeError):
        c.apply_mask_inplace(b"read-only", b"1234")
    with pytest.raises(TypeError):
        c.apply_mask("text", b"1234")


def run_python(code: str, env_extra: dict = None, cwd: str = ROOT, path: str = ROOT,
               no_site: bool = False) -> str:
    env = dict(os.environ, PYTHONPATH=path)
    env.pop(accelerator.DISABLE_VARIABLE, None)
    env.update(env_extra or {})
    # -S: no site-packages, so that an editable install's import hook cannot
    # lend the copy the checkout's built extension.
    out = subprocess.run([sys.executable] + (["-S"] if no_site else []) + ["-c", code], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


ROUND_TRIP = ("import ratchet_sel\n"
              "from ratchet_sel.websocket.rfc6455 import FrameParser, Message, encode_frame\n"
              "frame = encode_frame(2, bytes(range(256)) * 300, mask=b'\\x01\\x02\\x03\\x04')\n"
              "assert FrameParser().feed(frame) == [Message(bytes(range(256)) * 300)]\n"
              "print(ratchet_sel.speedups_enabled)\n")


def test_environment_variable_forces_the_pure_path():
    assert run_python(ROUND_TRIP, {accelerator.DISABLE_VARIABLE: "1"}) == "False"
    # "0" and "" mean "not set": the same as without the variable (True where it is built)
    unset = run_python(ROUND_TRIP)
    assert run_python(ROUND_TRIP, {accelerator.DISABLE_VARIABLE: "0"}) == unset
    assert run_python(ROUND_TRIP, {accelerator.DISABLE_VARIABLE: ""}) == unset


def copy_without_extension(dest: str) -> str:
    target = os.path.join(dest, "ratchet_sel")
    shutil.copytree(os.path.join(ROOT, "ratchet_sel"), target,
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    return dest


def test_runs_from_a_copied_folder_with_nothing_built(tmp_path):
    folder = copy_without_extension(str(tmp_path / "copy"))
    assert run_python(ROUND_TRIP, cwd=folder, path=folder, no_site=True) == "False"


def test_runs_from_a_zipapp(tmp_path):
    folder = copy_without_extension(str(tmp_path / "src"))
    archive = str(tmp_path / "app.pyz")
    with zipfile.ZipFile(archive, "w") as zf:
        for base, _, files in os.walk(folder):
            for name in files:
                full = os.path.join(base, name)
                zf.write(full, os.path.relpath(full, folder))
        zf.writestr("__main__.py", ROUND_TRIP)
    out = subprocess.run([sys.executable, "-S", archive], cwd=str(tmp_path), capture_output=True, text=True, timeout=30,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_echo_command_logs_the_masking_path_once_at_startup():
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "ratchet_sel", "echo", "--host", "127.0.0.1", "--port", "0"],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if "listening on" in line:
                break
    finally:
        proc.terminate()
        proc.wait(10)
    masking = [line for line in lines if "masking:" in line]
    assert len(masking) == 1, lines
    assert accelerator.status in masking[0]
