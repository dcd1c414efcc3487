#!/usr/bin/env bash
# CI step: port 80 without staying root, and blocking work off the loop -- every test must RUN:
#   tests/test_privileges.py        --user/--group as root (checked in /proc/<pid>/status), workers,
#                                   run_workers, a bundled .pyz, and the refusals;
#   tests/test_socket_activation.py LISTEN_FDS/LISTEN_PID: plain, TLS, workers, refusals;
#   tests/test_deploy_units.py      deploy/*.socket and *.service through systemd-analyze verify;
#   tests/test_loop_threads.py and tests/test_slow_query_example.py  Loop.run_in_thread.
#
#   bash scripts/ci_privileges.sh
#
# Needs root (the --user tests switch users; CI runs as root) and installs Debian's systemd
# (for systemd-analyze) when it is missing.  Makes a venv with pytest under /tmp and fails if any
# test was skipped or none ran.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

WORK=/tmp/ratchet_sel-privileges
mkdir -p "$WORK"

if [[ "$(id -u)" != 0 ]]; then
    echo "FAIL: this step switches users (--user): run it as root"; exit 1
fi
getent passwd nobody >/dev/null || { echo "FAIL: the tests need the user nobody"; exit 1; }

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "installing systemd (apt-get) for systemd-analyze"
    if ! { timeout 300 apt-get update && timeout 600 apt-get install -y --no-install-recommends systemd; } \
            </dev/null >"$WORK/install.log" 2>&1; then
        echo "FAIL: could not install systemd"; tail -n 30 "$WORK/install.log"; exit 1
    fi
fi
systemd-analyze --version | head -n 1

if [[ ! -x "$WORK/venv/bin/python" ]]; then
    python3 -m venv "$WORK/venv"
fi
"$WORK/venv/bin/python" -m pip install -q pytest pytest-timeout </dev/null

REPORT="$WORK/junit.xml"
rm -f "$REPORT"
status=0
PYTHONPATH="$PWD" "$WORK/venv/bin/python" -m pytest -q -rs -p no:cacheprovider --junitxml="$REPORT" \
    tests/test_privileges.py tests/test_socket_activation.py tests/test_deploy_units.py \
    tests/test_loop_threads.py tests/test_slow_query_example.py </dev/null || status=$?

"$WORK/venv/bin/python" - "$REPORT" <<'PY' || status=1
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
tests = sum(int(s.get("tests", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print("privilege, socket activation, unit file and thread pool tests: %d run, %d skipped" % (tests - skipped, skipped))
if skipped or tests == 0:
    print("FAIL: these tests must run in CI, none may be skipped")
    sys.exit(1)
PY
exit "$status"
