"""Python side of scripts/scale/wscrowd.c: build it, start crowds of connections, send them commands.

Used by scripts/scale.py and scripts/broadcast_floor.py (and free for
scripts/soak.py).  One :class:`Crowd` is one wscrowd process holding up to
about 19,900 connections (its own RLIMIT_NOFILE); run several for more.

    exe = build_wscrowd("/tmp/ratchet_sel-scale")
    crowd = Crowd(exe, port, 5000, sources=["127.0.0.2"], ports="10000-65000")
    crowd.wait_open()                # (open, failed, seconds, first error)
    crowd.arm("msg-1"); crowd.send(0, "msg-1 hello"); crowd.wait(4999, 10, "/tmp/rx")
"""

import base64
import hashlib
import os
import shutil
import subprocess
from typing import List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
WSCROWD_SRC = os.path.join(HERE, "scale", "wscrowd.c")
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def build_wscrowd(workdir: str) -> str:
    """Compile wscrowd.c with gcc into ``workdir`` (again only when the source changed); returns its path."""
    os.makedirs(workdir, exist_ok=True)
    exe = os.path.join(workdir, "wscrowd")
    stamp = exe + ".src"
    with open(WSCROWD_SRC, "rb") as f:
        source = f.read()
    if os.path.exists(exe) and os.path.exists(stamp):
        with open(stamp, "rb") as f:
            if f.read() == source:
                return exe
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise SystemExit("the load client needs gcc to build scripts/scale/wscrowd.c (apt-get install gcc)")
    out = subprocess.run([cc, "-O2", "-Wall", "-o", exe, WSCROWD_SRC], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("building wscrowd failed:\n" + out.stderr)
    with open(stamp, "wb") as f:
        f.write(source)
    return exe


def handshake_pair() -> Tuple[str, str]:
    """A fresh Sec-WebSocket-Key and the Sec-WebSocket-Accept it calls for (RFC 6455 4.2.2)."""
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest()).decode("ascii")
    return key, accept


class Crowd:
    """One wscrowd process: ``conns`` connections to ``host:port``, driven by line commands."""

    def __init__(self, exe: str, port: int, conns: int, *, host: str = "127.0.0.1", path: str = "/",
                 sources: Sequence[str] = (), ports: Optional[str] = None, pending: int = 512,
                 timeout: float = 120.0, seed: Optional[int] = None) -> None:
        key, accept = handshake_pair()
        argv = [exe, "--port", str(port), "--host", host, "--path", path, "--conns", str(conns),
                "--pending", str(pending), "--timeout", str(timeout), "--key", key, "--accept", accept]
        if sources:
            argv += ["--sources", ",".join(sources)]
        if ports:
            argv += ["--ports", ports]
        if seed is not None:
            argv += ["--seed", str(seed)]
        self.conns = conns
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.opened: Optional[Tuple[int, int, float, str]] = None

    def wait_open(self) -> Tuple[int, int, float, str]:
        """Blocks until the crowd has tried every connection: (open, failed, seconds, first error)."""
        if self.opened is None:
            line = self.proc.stdout.readline().split()
            if not line or line[0] != "OPEN":
                raise RuntimeError("wscrowd ended before opening its connections (exit %s)" % self.proc.poll())
            self.opened = (int(line[1]), int(line[2]), float(line[3]), line[4])
        return self.opened

    def command(self, line: str) -> List[str]:
        """Sends one command; returns the words of its answer line."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().split()
        if not answer:
            raise RuntimeError("wscrowd ended (exit %s) at %r" % (self.proc.poll(), line))
        return answer

    def start(self, line: str) -> None:
        """Sends one command without reading its answer (several crowds at once); see :meth:`answer`."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def answer(self) -> List[str]:
        """The answer of the command given to :meth:`start`."""
        answer = self.proc.stdout.readline().split()
        if not answer:
            raise RuntimeError("wscrowd ended (exit %s)" % self.proc.poll())
        return answer

    def arm(self, tag: str) -> None:
        """From now on time-stamp the first text message starting with ``tag`` on each connection."""
        self.command("ARM " + tag)

    def send(self, index: int, text: str) -> float:
        """Send ``text`` on connection ``index``; returns the monotonic time just before the write."""
        return float(self.command("SEND %d %s" % (index, text))[1])

    def stats(self) -> dict:
        """open, failed, closed_by_server, received, pings_answered, cpu_s."""
        words = self.command("STATS")[1:]
        return {k: float(v) if "." in v else int(v) for k, v in (w.split("=") for w in words)}

    def close(self) -> None:
        """QUIT: every connection reset, the process waited for."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("QUIT\n")
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
