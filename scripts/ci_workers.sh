#!/usr/bin/env bash
# CI step: prefork workers (tests/test_workers.py: real master and worker processes,
# with the master's hub and with a real redis-server) must all RUN, then a smoke
# run of scripts/bench_workers.py (tiny counts, no speed assertion).
#
#   bash scripts/ci_workers.sh
#
# Installs Debian's redis-server and gcc when missing (the tests start their own
# redis-server on a free loopback port and stop it by PID), makes a venv with
# pytest under /tmp, and fails if any worker test was skipped or none ran.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

WORK=/tmp/ratchet_sel-workers
mkdir -p "$WORK"

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "installing ${missing[*]} (apt-get)"
    if ! { timeout 300 apt-get update && timeout 600 apt-get install -y --no-install-recommends "${missing[@]}"; } \
            </dev/null >"$WORK/install.log" 2>&1; then
        echo "FAIL: could not install ${missing[*]}"; tail -n 30 "$WORK/install.log"; exit 1
    fi
fi
redis-server --version

if [[ ! -x "$WORK/venv/bin/python" ]]; then
    python3 -m venv "$WORK/venv"
fi
"$WORK/venv/bin/python" -m pip install -q pytest pytest-timeout </dev/null

REPORT="$WORK/junit.xml"
rm -f "$REPORT"
status=0
"$WORK/venv/bin/python" -m pytest -q -rs -p no:cacheprovider --junitxml="$REPORT" tests/test_workers.py || status=$?

"$WORK/venv/bin/python" - "$REPORT" <<'PY' || status=1
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
tests = sum(int(s.get("tests", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print("worker tests: %d run, %d skipped" % (tests - skipped, skipped))
if skipped or tests == 0:
    print("FAIL: the worker tests (with Redis too) must run in CI, none may be skipped")
    sys.exit(1)
PY

python3 scripts/bench_workers.py --quick --workdir "$WORK/bench" || status=1
exit "$status"
