"""Small seeded runs of scripts/fuzz_frames.py and scripts/fuzz_handshake.py (a few seconds each).

Each run fuzzes the codecs, then a live echo server in a subprocess on
127.0.0.1 (port 0), and fails on any finding: an exception other than the
documented ones, a connection that does not end with a valid close code or an
HTTP 4xx/5xx, a message lost or changed, an ERROR in the server's log, a
connection or object left behind, unbounded memory, a non-zero exit on
SIGTERM.  The seeds are fixed, so a failure here is reproducible with the
command line printed in the assertion message.
"""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)

import fuzz_frames  # noqa: E402
import fuzz_handshake  # noqa: E402

pytestmark = pytest.mark.timeout(120)

SUMMARY = re.compile(r"^(fuzz_\w+): seed=(\d+) codec_cases=(\d+) live_cases=(\d+) .*findings=(\d+)", re.M)


def run(module, capsys, *args):
    code = module.main(list(args))
    out, err = capsys.readouterr()
    match = SUMMARY.search(out)
    assert match, out
    return code, match, out, err


def test_fuzz_frames_small_seeded_run(capsys):
    args = ["--seed", "20241125", "--count", "1500", "--live-count", "150", "--seconds", "30"]
    code, match, out, err = run(fuzz_frames, capsys, *args)
    assert int(match.group(3)) >= 300 and int(match.group(4)) >= 50, out     # it really ran
    assert code == 0 and match.group(5) == "0", (
        "python scripts/fuzz_frames.py %s\n%s\n%s" % (" ".join(args), out, err[-4000:]))


def test_fuzz_handshake_small_seeded_run(capsys):
    args = ["--seed", "1", "--count", "1500", "--live-count", "150", "--seconds", "30"]
    code, match, out, err = run(fuzz_handshake, capsys, *args)
    assert int(match.group(3)) >= 300 and int(match.group(4)) >= 50, out
    assert code == 0 and match.group(5) == "0", (
        "python scripts/fuzz_handshake.py %s\n%s\n%s" % (" ".join(args), out, err[-4000:]))


def test_fuzzers_notice_an_injected_codec_bug(capsys, monkeypatch):
    """The oracles work: a parser that forgets to rotate the mask between pieces is caught."""
    from ratchet_sel.websocket import rfc6455

    original = rfc6455.FrameParser._consume_partial

    def forgetful(self, chunk):
        mask = self._frame_mask
        original(self, chunk)
        self._frame_mask = mask

    monkeypatch.setattr(rfc6455.FrameParser, "_consume_partial", forgetful)
    code, match, out, err = run(fuzz_frames, capsys, "--seed", "3", "--count", "300", "--no-live")
    assert code == 1 and int(match.group(5)) > 0, out
    assert "chunking" in out


def test_fuzzers_notice_a_server_that_hangs_up_without_an_answer(capsys, monkeypatch):
    """The live oracle works: a server that drops a bad request without a status is caught."""
    import _fuzz_common

    request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"

    class Silent(_fuzz_common.LiveCase):
        def _received(self, data):        # pretend the server said nothing at all
            pass

    def cases(seed, count, deadline):
        import random
        yield Silent("silent", [request], random.Random(0))

    monkeypatch.setattr(fuzz_handshake, "live_cases", cases)
    code, match, out, err = run(fuzz_handshake, capsys, "--seed", "1", "--count", "1", "--seconds", "20")
    assert code == 1 and "no-answer" in out + err, out + err


@pytest.mark.parametrize("script", ["fuzz_frames.py", "fuzz_handshake.py"])
def test_command_line(script):
    proc = subprocess.run([sys.executable, os.path.join(SCRIPTS, script), "--seed", "5", "--count", "40",
                           "--no-live", "--seconds", "20"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    match = SUMMARY.search(proc.stdout)
    assert match and match.group(2) == "5", proc.stdout + proc.stderr
    assert proc.returncode == (0 if match.group(5) == "0" else 1)
    help_text = subprocess.run([sys.executable, os.path.join(SCRIPTS, script), "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60).stdout
    for option in ("--seed", "--count", "--seconds", "--live", "--no-live"):
        assert option in help_text
