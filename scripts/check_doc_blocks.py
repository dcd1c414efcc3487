#!/usr/bin/env python3
"""Run every Python code block of README.md and docs/**/*.md, each in its own process.

    python3 scripts/check_doc_blocks.py                 # all files
    python3 scripts/check_doc_blocks.py docs/tutorial   # some files or folders
    python3 scripts/check_doc_blocks.py --list          # show the blocks and their modes, run nothing

How a block is fenced decides how it is checked (the first word may also be
``py``; anything else after it is an error, so a typo cannot hide a block):

```python``
    Runs to completion: exit status 0 within ``--timeout`` seconds (30).  Use it
    for code that does its work and returns, including a server started on
    port 0 in a thread and talked to with a client in the same block.

```python serve``
    A server that runs until it is told to stop, written as a user would write it
    (``server.run()`` at the end).  It passes when, within the timeout, it is
    listening, accepts a TCP connection (an HTTP request is sent and the first
    line of any answer is shown), and then, on SIGTERM, stops with exit status
    0: the graceful shutdown every ratchet_sel server does.

```python no-run``
    Not run, on purpose: a fragment, a sketch of another program's code, or code
    for a machine that is not this one.  Counted and listed in the summary, so
    that nobody mistakes it for checked code.

``requires=NAME[,NAME]`` may follow ``python`` or ``python serve``: the block
needs these importable modules (``flask``, ``django``); without them it is
skipped and listed, or, with ``--require-all`` (what CI uses), it fails.

Every block runs with the current interpreter, in a new empty folder, with the
checkout first on ``PYTHONPATH`` (no install needed).  **Ports**: a small
bootstrap, run before the block, makes every TCP ``bind()`` use 127.0.0.1 (or
::1) and port 0, and tells the checker (over a pipe) the address it got as soon
as ``listen()`` returns.  So a
block may say ``8080`` as a user would, blocks never collide with each other or
with anything else on the machine, and nothing listens beyond loopback; a block
that is its own client must connect to the port the server reports
(``server.port``), never to the number written in the block.

Exit status: 0 when every block passed (skipped ones are listed), 1 when one
failed (its output is shown), 2 for a file that cannot be read or a fence this
script does not understand.
"""

import argparse
import importlib.util
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODES = ("run", "serve", "no-run")

# Runs before every block: every TCP bind goes to loopback port 0, and each listening address reaches the
# checker once listen() has returned, so that a connection to it cannot be refused.
BOOTSTRAP = r'''
import os, runpy, socket, sys
_report = int(os.environ.pop("DOC_BLOCK_REPORT_FD"))
_bind, _listen = socket.socket.bind, socket.socket.listen
def _tcp(sock):
    return sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
def bind(self, address):
    if _tcp(self):
        address = ("::1" if self.family == socket.AF_INET6 else "127.0.0.1", 0) + tuple(address[2:])
    _bind(self, address)
def listen(self, *backlog):
    _listen(self, *backlog)
    if _tcp(self):
        try:
            os.write(_report, ("%s %d\n" % self.getsockname()[:2]).encode())
        except OSError:
            pass
socket.socket.bind, socket.socket.listen = bind, listen
path = sys.argv[1]
sys.argv = [path]
runpy.run_path(path, run_name="__main__")
'''


class FenceError(Exception):
    """A fence that cannot be understood."""


class Block:
    """One fenced Python block."""

    def __init__(self, path: str, line: int, mode: str, requires: List[str], code: str) -> None:
        self.path = path
        self.line = line
        self.mode = mode
        self.requires = requires
        self.code = code

    @property
    def where(self) -> str:
        return "%s:%d" % (os.path.relpath(self.path, ROOT), self.line)


_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>.*)$")


def _parse_info(info: str, where: str) -> Optional[Tuple[str, List[str]]]:
    """(mode, requires) for a Python fence, None for any other language."""
    words = info.split()
    if not words or words[0].lower() not in ("python", "py", "python3"):
        return None
    mode = "run"
    requires: List[str] = []
    for word in words[1:]:
        if word in ("serve", "no-run"):
            mode = word
        elif word.startswith("requires="):
            requires = [name for name in word[len("requires="):].split(",") if name]
        else:
            raise FenceError("%s: unknown word %r after ```python (known: serve, no-run, requires=NAME)"
                             % (where, word))
    if mode == "no-run" and requires:
        raise FenceError("%s: requires= means nothing on a no-run block" % where)
    return mode, requires


def extract(path: str) -> List[Block]:
    """The Python blocks of one Markdown file."""
    with open(path, encoding="utf-8") as stream:
        lines = stream.read().splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        fence, indent = match.group("fence"), len(match.group("indent"))
        start = index + 1
        where = "%s:%d" % (os.path.relpath(path, ROOT), start)
        parsed = _parse_info(match.group("info"), where)
        body = []
        index += 1
        while index < len(lines):
            closing = _FENCE.match(lines[index])
            if closing and closing.group("fence")[0] == fence[0] and len(closing.group("fence")) >= len(fence) \
                    and not closing.group("info").strip():
                break
            body.append(lines[index][indent:] if lines[index][:indent].strip() == "" else lines[index])
            index += 1
        else:
            raise FenceError("%s: the code block opened here is never closed" % where)
        index += 1
        if parsed is not None:
            blocks.append(Block(path, start, parsed[0], parsed[1], "\n".join(body) + "\n"))
    return blocks


def markdown_files(targets: Sequence[str]) -> List[str]:
    """README.md and docs/**/*.md, or the files under the given targets."""
    targets = list(targets) or [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "docs")]
    found = []
    for target in targets:
        if os.path.isdir(target):
            for folder, dirs, files in os.walk(target):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "node_modules")
                found.extend(os.path.join(folder, name) for name in sorted(files) if name.endswith(".md"))
        elif os.path.isfile(target):
            found.append(target)
        else:
            raise FenceError("no such file or folder: %s" % target)
    return [os.path.abspath(path) for path in found]


def _environment() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSTARTUP", "PYTHONINSPECT")}
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _start(block: Block, folder: str) -> Tuple["subprocess.Popen[bytes]", int]:
    script = os.path.join(folder, "block.py")
    with open(script, "w", encoding="utf-8") as stream:
        stream.write(block.code)
    boot = os.path.join(folder, "_doc_block_bootstrap.py")
    with open(boot, "w", encoding="utf-8") as stream:
        stream.write(BOOTSTRAP)
    read_end, write_end = os.pipe()
    env = _environment()
    env["DOC_BLOCK_REPORT_FD"] = str(write_end)
    proc = subprocess.Popen([sys.executable, boot, script], cwd=folder, env=env, pass_fds=(write_end,),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    os.close(write_end)
    return proc, read_end


def _output(proc: "subprocess.Popen[bytes]", timeout: float = 10.0) -> str:
    try:
        data, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        data, _ = proc.communicate()
    return (data or b"").decode("utf-8", "replace")


def run_block(block: Block, timeout: float) -> Tuple[bool, str]:
    """Run one block; (passed, what to show)."""
    with tempfile.TemporaryDirectory(prefix="doc-block-") as folder:
        proc, report = _start(block, folder)
        try:
            if block.mode == "run":
                try:
                    data, _ = proc.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    data, _ = proc.communicate()
                    return False, ("still running after %.0f s (a block that serves until stopped is fenced "
                                   "```python serve)\n%s" % (timeout, data.decode("utf-8", "replace")))
                text = data.decode("utf-8", "replace")
                if proc.returncode != 0:
                    return False, "exit status %s\n%s" % (proc.returncode, text)
                return True, text
            return _check_server(proc, report, timeout)
        finally:
            os.close(report)
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _check_server(proc: "subprocess.Popen[bytes]", report: int, timeout: float) -> Tuple[bool, str]:
    deadline = time.monotonic() + timeout
    address = b""
    while not address.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([report], [], [], max(left, 0))
        if not ready:
            proc.kill()
            return False, "did not listen within %.0f s\n%s" % (timeout, _output(proc))
        chunk = os.read(report, 256)
        if not chunk:  # the process ended (or closed the pipe) before binding
            return False, "ended before it listened (exit status %s)\n%s" % (proc.wait(), _output(proc))
        address += chunk
    host, port = address.decode().split("\n")[0].rsplit(" ", 1)
    notes = ["listening on %s port %s" % (host, port)]
    try:
        with socket.create_connection((host, int(port)), timeout=max(deadline - time.monotonic(), 1.0)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            sock.settimeout(3.0)
            try:
                first = sock.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                notes.append("answered: %s" % (first or "(closed without an answer)"))
            except socket.timeout:
                notes.append("accepted; no answer to an HTTP request within 3 s")
    except OSError as exc:
        proc.kill()
        return False, "reported %s port %s but a connection failed: %s\n%s" % (host, port, exc, _output(proc))
    if proc.poll() is not None:
        return False, "stopped by itself (exit status %s) instead of serving\n%s" % (proc.returncode, _output(proc))
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 10.0))
    except subprocess.TimeoutExpired:
        proc.kill()
        return False, "did not stop within 10 s of SIGTERM\n%s" % _output(proc)
    text = _output(proc)
    if proc.returncode != 0:
        return False, "exit status %s after SIGTERM (expected 0: a graceful stop)\n%s" % (proc.returncode, text)
    return True, "; ".join(notes) + "\n" + text


def _missing(requires: List[str]) -> List[str]:
    return [name for name in requires if importlib.util.find_spec(name) is None]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Check the blocks; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="Markdown files or folders (default: README.md and docs/)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per block (default: %(default)s)")
    parser.add_argument("--require-all", action="store_true",
                        help="fail a block whose requires= modules are missing, instead of skipping it")
    parser.add_argument("--list", action="store_true", help="list the blocks and their modes; run nothing")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the output of passing blocks too")
    args = parser.parse_args(argv)
    try:
        blocks = [block for path in markdown_files(args.targets) for block in extract(path)]
    except (FenceError, OSError, UnicodeDecodeError) as exc:
        print("check_doc_blocks: %s" % exc, file=sys.stderr)
        return 2
    if args.list:
        for block in blocks:
            print("%-8s %s%s" % (block.mode, block.where,
                                 "  requires=" + ",".join(block.requires) if block.requires else ""))
        return 0
    passed, failed, not_run, skipped = [], [], [], []
    for block in blocks:
        if block.mode == "no-run":
            not_run.append(block)
            continue
        missing = _missing(block.requires)
        if missing and not args.require_all:
            skipped.append((block, missing))
            print("SKIP %s (%s): %s not installed" % (block.where, block.mode, ", ".join(missing)), flush=True)
            continue
        started = time.monotonic()
        ok, text = run_block(block, args.timeout)
        elapsed = time.monotonic() - started
        if ok:
            passed.append(block)
            print("ok   %s (%s, %.1f s)" % (block.where, block.mode, elapsed), flush=True)
            if args.verbose and text.strip():
                print("     | " + "\n     | ".join(text.strip().splitlines()[-20:]))
        else:
            failed.append(block)
            print("FAIL %s (%s, %.1f s): %s" % (block.where, block.mode, elapsed, text.splitlines()[0] if text else ""),
                  flush=True)
            for line in text.splitlines()[1:][-40:]:
                print("     | " + line)
    print("\n%d block(s): %d passed, %d failed, %d skipped for a missing module, %d not run on purpose (no-run)"
          % (len(blocks), len(passed), len(failed), len(skipped), len(not_run)))
    for block in not_run:
        print("  no-run  %s" % block.where)
    for block, missing in skipped:
        print("  skipped %s (needs %s)" % (block.where, ", ".join(missing)))
    for block in failed:
        print("  FAILED  %s" % block.where)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
