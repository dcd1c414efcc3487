#!/usr/bin/env python3
"""Run the Autobahn|Testsuite fuzzing client (wstest 0.8.2) against ratchet_sel's echo server.

For each chosen protocol mode this script
  1. starts the echo server from this checkout (``python -m ratchet_sel echo --host
     127.0.0.1 --port 0``, cwd = repository root) and reads the port it reports on its
     stderr (the first ``ws://127.0.0.1:PORT`` it prints), unless ``--url`` names a server
     that is already running;
  2. writes a fuzzingclient spec into OUTDIR/<mode>/ and runs ``wstest -m fuzzingclient``
     there, bounded by ``--timeout``;
  3. stops the server (SIGTERM, then SIGKILL) and summarizes OUTDIR/<mode>/index.json:
     counts of ``behavior`` and ``behaviorClose``, and every case that is not OK with
     the ``result``/``resultClose`` text of its report.

Modes are wstest's ``version`` option: 18 = RFC 6455 (``Sec-WebSocket-Version: 13``),
10 = HyBi-10 (``Sec-WebSocket-Version: 8``).

Exit status: 0 if every mode ran all its selected cases and none is FAILED or
UNIMPLEMENTED (NON-STRICT and INFORMATIONAL are listed but pass); 1 if some case is
FAILED/UNIMPLEMENTED, no case (or not every selected case) ran, a connection failed,
wstest timed out, or the server did not start or died; 2 for usage errors or a
missing/broken wstest install (or a failed --setup); 130 if interrupted.

wstest itself is installed by scripts/setup_autobahn.sh (or pass ``--setup``).
Standard library only; Python >= 3.8.
"""

import argparse
import collections
import ipaddress
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup_autobahn.sh"
BASE_DIR = Path("/tmp/ratchet_sel-conformance")
DEFAULT_PREFIX = BASE_DIR / "py27"
DEFAULT_OUTDIR = BASE_DIR / "reports"
DEFAULT_CASES = "1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*"   # there is no section 8
MODE_NAMES = {18: "rfc6455", 10: "hybi10"}
BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED")
FAILING = ("FAILED", "UNIMPLEMENTED")
PORT_RE = re.compile(r"wss?://127\.0\.0\.1:(\d+)")
CERTS = REPO_ROOT / "tests" / "certs"
AGENT = "ratchet_sel"


def log(msg):
    print(f"autobahn: {msg}", file=sys.stderr, flush=True)


class Terminated(Exception):
    """Raised from the SIGTERM handler so that `finally` blocks stop the children."""


# ---------------------------------------------------------------------------
# options


def parse_modes(text):
    modes = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        by_name = {name: ver for ver, name in MODE_NAMES.items()}
        if item in by_name:
            modes.append(by_name[item])
        elif item.isdigit():
            modes.append(int(item))
        else:
            raise argparse.ArgumentTypeError(f"unknown mode {item!r} (use 18, 10, rfc6455, hybi10)")
    if not modes:
        raise argparse.ArgumentTypeError("no mode given")
    return list(dict.fromkeys(modes))


def parse_globs(text):
    return [g.strip() for g in text.split(",") if g.strip()]


def mode_name(version):
    return MODE_NAMES.get(version, f"version{version}")


def is_loopback_url(url):
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_parser():
    p = argparse.ArgumentParser(
        description="Run Autobahn|Testsuite (wstest fuzzingclient) against the ratchet_sel echo server.")
    p.add_argument("--modes", type=parse_modes, default="18,10",
                   help="comma-separated wstest versions: 18 (RFC 6455) and/or 10 (HyBi-10); "
                        "names rfc6455/hybi10 also accepted (default: %(default)s)")
    p.add_argument("--cases", type=parse_globs, default=DEFAULT_CASES,
                   help="comma-separated case globs; 12.*/13.* are permessage-deflate "
                        "(default: %(default)s)")
    p.add_argument("--exclude", type=parse_globs, default="",
                   help="comma-separated case globs to skip (default: none)")
    p.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR,
                   help="reports go to OUTDIR/rfc6455 and OUTDIR/hybi10 (default: %(default)s)")
    p.add_argument("--prefix", type=Path, default=DEFAULT_PREFIX,
                   help="where setup_autobahn.sh installs python2.7 + wstest (default: %(default)s)")
    p.add_argument("--wstest", type=Path, default=None,
                   help="wstest executable (default: PREFIX/wstest)")
    p.add_argument("--setup", action="store_true",
                   help="run scripts/setup_autobahn.sh --prefix PREFIX first (a no-op when installed)")
    p.add_argument("--debs", type=Path, default=None,
                   help="with --setup: cache dir of the Debian 11 python2.7 .deb files")
    p.add_argument("--server-cmd", default=None,
                   help="command starting the server to test (shell-quoted string, run with cwd = "
                        "repo root; must log ws://127.0.0.1:PORT on stderr or stdout; default: "
                        "'<this python> -m ratchet_sel echo --host 127.0.0.1 --port 0')")
    p.add_argument("--url", default=None,
                   help="test an already running server at this ws:// URL instead of starting one")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --url whose host is not a loopback address")
    p.add_argument("--startup-timeout", type=float, default=15.0, metavar="SEC",
                   help="seconds to wait for the server to log its port (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=900.0, metavar="SEC",
                   help="seconds allowed for one wstest run, i.e. one mode (default: %(default)s)")
    p.add_argument("--json", dest="json_out", type=Path, default=None, metavar="OUT",
                   help="write the counts and non-OK cases of every mode to this JSON file")
    p.add_argument("--tls", action="store_true",
                   help="serve the echo server over TLS (tests/certs) and test wss:// "
                        "(wstest does not verify the self-signed certificate)")
    p.add_argument("--agent", default=AGENT, help="agent name in the wstest reports (default: %(default)s)")
    return p


# ---------------------------------------------------------------------------
# processes


def kill_group(proc, term_timeout=5.0):
    """Stop `proc` and its process group (it was started with its own session):
    SIGTERM, wait up to term_timeout s, then SIGKILL. Returns the exit status."""
    if proc.poll() is not None:
        return proc.returncode
    for sig, wait in ((signal.SIGTERM, term_timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


class Server:
    """The server under test as a child process; its output goes to a log file."""

    def __init__(self, cmd, log_path, startup_timeout):
        self.cmd = cmd
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.proc = None
        self.port = None
        self._port_found = threading.Event()
        self._reader = None

    def start(self):
        """Start the server; return its port, or None if it did not report one in time."""
        log(f"starting server: {shlex.join(self.cmd)}  (log: {self.log_path})")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            self.cmd, cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._read_output, name="server-output", daemon=True)
        self._reader.start()
        # The reader sets the event on the first ws://127.0.0.1:PORT, or at EOF (exit).
        self._port_found.wait(self.startup_timeout)
        return self.port

    def _read_output(self):
        with open(self.log_path, "wb") as out:
            for line in iter(self.proc.stdout.readline, b""):
                out.write(line)
                out.flush()
                if self.port is None:
                    m = PORT_RE.search(line.decode("utf-8", "replace"))
                    if m:
                        self.port = int(m.group(1))
                        self._port_found.set()
        self._port_found.set()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return None
        rc = kill_group(self.proc)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.proc.stdout.close()
        return rc

    def tail(self, lines=20):
        try:
            text = Path(self.log_path).read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def run_setup(args):
    cmd = ["bash", str(SETUP_SCRIPT), "--prefix", str(args.prefix)]
    if args.debs is not None:
        cmd += ["--debs", str(args.debs)]
    log(f"running {shlex.join(cmd)}")
    try:
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, timeout=3600).returncode
    except subprocess.TimeoutExpired:
        log("setup_autobahn.sh timed out")
        return False
    if rc != 0:
        log(f"setup_autobahn.sh failed (exit {rc})")
    return rc == 0


def check_wstest(wstest):
    try:
        r = subprocess.run([str(wstest), "--autobahnversion"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        log(f"cannot run {wstest}: {e}")
        return False
    out = r.stdout.decode("utf-8", "replace").strip()
    if r.returncode != 0:
        log(f"{wstest} --autobahnversion failed (exit {r.returncode}): {out[-500:]}")
        return False
    log(f"{wstest}: {' / '.join(out.splitlines())}")
    return True


WILL_RUN_RE = re.compile(r"will run (\d+) test cases")
RUNNING_RE = re.compile(r"Running test case ID (\S+)")
CONN_FAILED_RE = re.compile(r"^Connection to \S+ failed")


def run_wstest(wstest, spec_path, outdir, timeout, name):
    """Run the fuzzing client; return (exit status or None on timeout, seconds taken,
    number of cases wstest announced or None, list of connection errors it logged).

    Its output goes to outdir/wstest.log through a reader thread, which also shows
    progress (one line per case section) and stops wstest at once when it announces
    0 test cases: wstest 0.8.2 then never exits by itself."""
    t0 = time.monotonic()
    proc = subprocess.Popen([str(wstest), "-m", "fuzzingclient", "-s", str(spec_path)],
                            cwd=str(outdir), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)

    announced, conn_errors = [], []

    def read_output():
        total, done, section = None, 0, None
        with open(outdir / "wstest.log", "wb") as out:
            for raw in iter(proc.stdout.readline, b""):
                out.write(raw)
                out.flush()
                line = raw.decode("utf-8", "replace")
                m = RUNNING_RE.search(line)
                if m:
                    done += 1
                    if m.group(1).split(".")[0] != section:
                        section = m.group(1).split(".")[0]
                        log(f"{name}: case {m.group(1)} ({done}/{total})")
                    continue
                if CONN_FAILED_RE.search(line):
                    conn_errors.append(line.strip())
                m = WILL_RUN_RE.search(line)
                if m:
                    total = int(m.group(1))
                    announced.append(total)
                    if total == 0:
                        log(f"{name}: wstest found no case matching the --cases/--exclude globs")
                        kill_group(proc, term_timeout=3.0)

    reader = threading.Thread(target=read_output, name="wstest-output", daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        rc = None
        log(f"{name}: wstest timed out after {timeout:g} s")
    finally:
        kill_group(proc, term_timeout=3.0)
        reader.join(timeout=10)
        proc.stdout.close()
    return rc, time.monotonic() - t0, (announced[0] if announced else None), conn_errors


# ---------------------------------------------------------------------------
# reports


def case_key(case_id):
    return [int(p) if p.isdigit() else p for p in case_id.split(".")]


def clear_old_reports(outdir):
    """Remove the results of an earlier run in outdir, so a run that writes nothing
    cannot be summarized from stale files. Only wstest's own file names are touched."""
    for pattern in ("index.json", "index.html", "*_case_*.json", "*_case_*.html", "wstest.log",
                    "server.log"):
        for f in outdir.glob(pattern):
            f.unlink()


def one_line(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def summarize(outdir, name):
    """Read outdir/index.json; return a dict of counts and non-OK cases (None if absent)."""
    try:
        with open(outdir / "index.json") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        log(f"{name}: no usable index.json in {outdir}: {e}")
        return None
    cases = {}
    for agent_cases in index.values():
        cases.update(agent_cases)
    behavior = collections.Counter(c.get("behavior", "?") for c in cases.values())
    close = collections.Counter(c.get("behaviorClose", "?") for c in cases.values())
    non_ok = []
    for pos, cid in enumerate(sorted(cases, key=case_key)):
        c = cases[cid]
        if c.get("behavior") == "OK" and c.get("behaviorClose") in ("OK", "INFORMATIONAL"):
            continue
        entry = {"case": cid, "behavior": c.get("behavior"), "behaviorClose": c.get("behaviorClose"),
                 "duration_ms": c.get("duration"), "remoteCloseCode": c.get("remoteCloseCode"),
                 "result": None, "resultClose": None, "description": None, "expectation": None,
                 "position": pos}
        report = c.get("reportfile")
        if report:
            try:
                with open(outdir / report) as f:
                    detail = json.load(f)
                entry["result"] = detail.get("result")
                entry["resultClose"] = detail.get("resultClose")
                entry["description"] = detail.get("description")
                entry["expectation"] = detail.get("expectation")
                entry["remoteCloseReason"] = detail.get("remoteCloseReason")
            except (OSError, ValueError):
                pass
        non_ok.append(entry)
    counts = {k: behavior.get(k, 0) for k in BEHAVIORS}     # the five, always, in order
    counts.update((k, v) for k, v in sorted(behavior.items()) if k not in BEHAVIORS)
    return {"cases": len(cases),
            "behavior": counts,
            "behaviorClose": dict(sorted(close.items())),
            "non_ok": non_ok}


def summary_line(name, res):
    counts = ", ".join(f"{k}={v}" for k, v in res["behavior"].items()) or "no results"
    return f"autobahn {name}: {res['cases']} cases, {counts}"


def print_details(name, res):
    print(f"== {name} (wstest version {res['version']}), reports in {res['outdir']}")
    if res["cases"]:
        print("  behavior:      " + ", ".join(f"{k}={v}" for k, v in res["behavior"].items()))
        print("  behaviorClose: " + ", ".join(f"{k}={v}" for k, v in res["behaviorClose"].items()))
        print(f"  non-OK cases: {len(res['non_ok'])}")
    # One line per non-OK case; a run of 3 or more adjacent cases (in case order)
    # with the same outcome is shown as one line "FIRST..LAST (N cases)".
    groups = []
    for e in res["non_ok"]:
        detail = one_line(e["result"] or "")
        if e["resultClose"] and e["behaviorClose"] not in ("OK", "INFORMATIONAL"):
            detail += " | close: " + one_line(e["resultClose"], 200)
        code = f"code={e['remoteCloseCode']}"
        if e.get("remoteCloseReason"):
            code += f" ({one_line(e['remoteCloseReason'], 60)})"
        text = f"{e['behavior']:13s} close={e['behaviorClose']:13s} {code}  {detail}"
        last = groups[-1] if groups else None
        if last and last["text"] == text and last["end"] + 1 == e["position"]:
            last["end"] = e["position"]
            last["cases"].append(e["case"])
        else:
            groups.append({"text": text, "end": e["position"], "cases": [e["case"]]})
    for g in groups:
        ids = g["cases"]
        if len(ids) >= 3:
            print(f"  {ids[0]}..{ids[-1]} ({len(ids)} cases)")
            print(f"  {'':9s} {g['text']}")
        else:
            for cid in ids:
                print(f"  {cid:9s} {g['text']}")


# ---------------------------------------------------------------------------
# main


def run_mode(args, wstest, version, server_cmd):
    """Run one mode; return (result dict, ok flag)."""
    name = mode_name(version)
    outdir = (args.outdir / name).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    clear_old_reports(outdir)
    result = {"mode": name, "version": version, "outdir": str(outdir), "cases": 0,
              "behavior": {}, "behaviorClose": {}, "non_ok": [], "problems": []}

    server = None
    announced = None
    try:
        if args.url:
            url = args.url
        else:
            server = Server(server_cmd, outdir / "server.log", args.startup_timeout)
            port = server.start()
            if port is None:
                why = ("exited with status %s" % server.proc.poll()) if not server.alive() else \
                    f"reported no ws://127.0.0.1:PORT within {args.startup_timeout:g} s"
                result["problems"].append(f"server did not start: {why}")
                log(f"{name}: server did not start: {why}\n{server.tail()}")
                return result, False
            url = f"{'wss' if args.tls else 'ws'}://127.0.0.1:{port}/"
        spec = {
            "outdir": str(outdir),
            "servers": [{"agent": args.agent, "url": url, "options": {"version": version}}],
            "cases": args.cases,
            "exclude-cases": args.exclude,
            "exclude-agent-cases": {},
        }
        spec_path = outdir / "fuzzingclient.json"
        spec_path.write_text(json.dumps(spec, indent=2) + "\n")
        log(f"{name}: wstest fuzzingclient (version {version}) -> {url}, cases {','.join(args.cases)}"
            + (f", excluding {','.join(args.exclude)}" if args.exclude else ""))
        rc, secs, announced, conn_errors = run_wstest(wstest, spec_path, outdir, args.timeout, name)
        result["wstest_exit"] = rc
        result["seconds"] = round(secs, 1)
        if conn_errors:
            result["problems"].append(f"{len(conn_errors)} connection(s) failed, first: {conn_errors[0]}")
        if announced == 0:
            result["problems"].append("no case matches the --cases/--exclude globs")
        elif rc is None:
            result["problems"].append(f"wstest timed out after {args.timeout:g} s")
        elif rc != 0:
            result["problems"].append(f"wstest exited with status {rc} (see {outdir / 'wstest.log'})")
        if server is not None and not server.alive():
            result["problems"].append(f"server died during the run (exit status {server.proc.poll()})")
            log(f"{name}: server died; last lines of {server.log_path}:\n{server.tail()}")
    finally:
        if server is not None:
            server.stop()

    summary = summarize(outdir, name)
    if summary is not None:
        result.update(summary)
    if announced and 0 < result["cases"] < announced:
        result["problems"].append(f"only {result['cases']} of the {announced} selected cases ran")
    if result["cases"] == 0 and announced != 0 and result.get("wstest_exit", 0) is not None:
        result["problems"].append(f"no case ran (see {outdir / 'wstest.log'})")
    failing = sum(result["behavior"].get(k, 0) for k in FAILING)
    ok = failing == 0 and not result["problems"]
    result["ok"] = ok
    log(f"{name}: {result['cases']} cases in {result.get('seconds', 0)} s; reports in {outdir}")
    return result, ok


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.url is not None:
        if not args.url.startswith(("ws://", "wss://")):
            build_parser().error("--url must be a ws:// URL")
        if not args.allow_remote and not is_loopback_url(args.url):
            build_parser().error("--url host is not a loopback address (use --allow-remote to insist)")
        if args.server_cmd:
            build_parser().error("--url and --server-cmd exclude each other")
    server_cmd = (shlex.split(args.server_cmd) if args.server_cmd else
                  [sys.executable, "-m", "ratchet_sel", "echo", "--host", "127.0.0.1", "--port", "0"])
    if args.tls and not args.server_cmd:
        server_cmd += ["--certfile", str(CERTS / "localhost.pem"), "--keyfile", str(CERTS / "localhost.key")]
    args.prefix = args.prefix.resolve()
    wstest = args.wstest or (args.prefix / "wstest")

    def on_sigterm(signum, frame):
        # Once only: a second SIGTERM must not cut short the cleanup in `finally` blocks.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()
    signal.signal(signal.SIGTERM, on_sigterm)

    if args.setup and not run_setup(args):
        return 2
    if not check_wstest(wstest):
        log("install it with scripts/setup_autobahn.sh (or pass --setup)")
        return 2

    results = {}
    all_ok = True
    try:
        for version in args.modes:
            res, ok = run_mode(args, wstest, version, server_cmd)
            results[res["mode"]] = res
            all_ok = all_ok and ok
    except (KeyboardInterrupt, Terminated):
        log("interrupted")
        return 130

    for name, res in results.items():
        print_details(name, res)
        for problem in res["problems"]:
            print(f"  problem: {problem}")
    for name, res in results.items():
        print(summary_line(name, res))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"ok": all_ok, "modes": results}, indent=2) + "\n")
    print("autobahn: " + ("PASS" if all_ok else "FAIL"))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
