#!/usr/bin/env python3
"""Autobahn|Testsuite in client mode: wstest 0.8.2 ``-m fuzzingserver`` tests ratchet_sel's client.

The script
  1. writes a fuzzingserver spec (the selected cases) into OUTDIR and starts
     ``wstest -m fuzzingserver`` on a free 127.0.0.1 port, waiting until it accepts;
  2. drives the testee, like Autobahn's own client examples: asks
     ``/getCaseCount``, then for every case connects to
     ``/runCase?case=N&agent=ratchet_sel`` with ``ratchet_sel.client.connect`` and
     echoes every message back until the server closes, then ``/updateReports``;
  3. stops wstest and summarizes OUTDIR/index.json (counts per ``behavior`` and
     ``behaviorClose``, and every case that is not OK).

Exit status: 0 when every selected case ran and none is FAILED or UNIMPLEMENTED;
1 otherwise; 2 for a missing wstest.  Standard library plus this checkout.
"""

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import autobahn as server_mode  # noqa: E402  (the server-mode runner's report helpers)
from ratchet_sel.client import ConnectionClosed, HandshakeError, connect  # noqa: E402

DEFAULT_CASES = "1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.*,13.*"
DEFAULT_OUTDIR = server_mode.BASE_DIR / "reports-client"
AGENT = "ratchet_sel"


def log(msg):
    print("autobahn-client: %s" % msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port, proc, timeout):
    """Poll until wstest accepts TCP connections (bounded); False if it died or took too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


# wstest's fuzzing server listens on every interface, and its web UI on 8080: run
# it through the same private python2.7 with the listener bound to loopback and
# the web UI off.
_LOOPBACK_WSTEST = (
    "import sys; del sys.path[0]; "
    "from autobahntestsuite import fuzzing; "
    "listen = fuzzing.listenWS; "
    "fuzzing.listenWS = lambda factory, context=None: listen(factory, context, 50, '127.0.0.1'); "
    "from autobahntestsuite.wstest import run; sys.argv[0] = 'wstest'; run()")


def fuzzingserver_command(wstest, spec_path):
    """The wstest fuzzing server command, listening on 127.0.0.1 only."""
    py2 = Path(wstest).parent / "py2"
    if not py2.exists():
        raise SystemExit("autobahn-client: %s not found (made by scripts/setup_autobahn.sh)" % py2)
    return [str(py2), "-W", "ignore", "-c", _LOOPBACK_WSTEST, "-m", "fuzzingserver", "-s", str(spec_path),
            "--webport", "0"]


def run_case(base, number, case_timeout):
    """Echo everything the fuzzing server sends in case ``number``; returns a short outcome string."""
    url = "%s/runCase?case=%d&agent=%s" % (base, number, AGENT)
    deadline = time.monotonic() + case_timeout
    try:
        with connect(url, timeout=30, max_message_size=64 * 1024 * 1024) as conn:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    conn.close()
                    return "timed out"
                message = conn.recv(timeout=left)
                conn.send(message)
    except ConnectionClosed as exc:
        return "closed %d %s" % (exc.code, exc.reason)
    except HandshakeError as exc:
        return "handshake failed: %s" % exc
    except TimeoutError:
        return "timed out"
    except OSError as exc:
        return "error: %s" % exc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=DEFAULT_CASES, help="comma-separated case globs (default: %(default)s)")
    parser.add_argument("--exclude", default="", help="comma-separated case globs to skip")
    parser.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR, help="reports (default: %(default)s)")
    parser.add_argument("--wstest", type=Path, default=server_mode.DEFAULT_PREFIX / "wstest")
    parser.add_argument("--case-timeout", type=float, default=120.0, metavar="SEC",
                        help="seconds one case may take (default: %(default)s)")
    parser.add_argument("--json", dest="json_out", type=Path, help="write the summary to this JSON file")
    args = parser.parse_args(argv)

    if not server_mode.check_wstest(args.wstest):
        log("wstest is missing: run scripts/setup_autobahn.sh (or scripts/autobahn.py --setup)")
        return 2
    outdir = args.outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    server_mode.clear_old_reports(outdir)
    port = free_port()
    spec = {"url": "ws://127.0.0.1:%d" % port, "outdir": str(outdir),
            "cases": [c.strip() for c in args.cases.split(",") if c.strip()],
            "exclude-cases": [c.strip() for c in args.exclude.split(",") if c.strip()],
            "exclude-agent-cases": {}}
    spec_path = outdir / "fuzzingserver.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    wstest_log = open(outdir / "wstest.log", "wb")
    proc = subprocess.Popen(fuzzingserver_command(args.wstest, spec_path), cwd=str(outdir),
                            stdin=subprocess.DEVNULL, stdout=wstest_log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    started = time.monotonic()
    outcomes = {}
    try:
        if not wait_listening(port, proc, 60):
            log("wstest did not start listening on port %d; see %s" % (port, outdir / "wstest.log"))
            return 1
        base = "ws://127.0.0.1:%d" % port
        with connect(base + "/getCaseCount", timeout=30) as conn:
            count = int(conn.recv(timeout=30))
        log("%d cases selected (%s)" % (count, args.cases))
        for number in range(1, count + 1):
            outcomes[number] = run_case(base, number, args.case_timeout)
            if number % 50 == 0 or number == count:
                log("%d/%d cases run (%.0f s)" % (number, count, time.monotonic() - started))
        with connect(base + "/updateReports?agent=%s" % AGENT, timeout=120) as conn:
            try:
                conn.recv(timeout=120)
            except ConnectionClosed:
                pass
    finally:
        server_mode.kill_group(proc, term_timeout=3.0)
        wstest_log.close()
    elapsed = time.monotonic() - started
    result = server_mode.summarize(outdir, "client")
    if result is None:
        return 1
    result.update(version=18, outdir=str(outdir), seconds=round(elapsed, 1))
    server_mode.print_details("client mode", result)
    print(server_mode.summary_line("client mode", result) + " (%.0f s)" % elapsed)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))
    failing = sum(result["behavior"].get(k, 0) for k in server_mode.FAILING)
    if result["cases"] != count:
        log("only %d of %d cases have results" % (result["cases"], count))
        return 1
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
