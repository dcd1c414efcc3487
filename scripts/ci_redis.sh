#!/usr/bin/env bash
# CI step: the Redis backplane tests against a real redis-server, the blocking
# publisher, the health URL, the deployment guide's nginx configuration (a real
# nginx) and systemd unit (systemd-analyze verify) -- they must all RUN -- then the
# push example in headless Chromium (scripts/browser_push_test.sh).
#
#   bash scripts/ci_redis.sh
#
# Installs Debian's redis-server when it is missing (the tests start their own
# instances on free loopback ports with --save '' --appendonly no and stop them
# by PID; the system service is never used), makes a venv with pytest under
# /tmp, runs every test that needs Redis, and fails if any of them was skipped
# or if none ran.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

WORK=/tmp/ratchet_sel-redis
mkdir -p "$WORK"

if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server (apt-get)"
    if ! { timeout 300 apt-get update && timeout 600 apt-get install -y --no-install-recommends redis-server; } \
            </dev/null >"$WORK/install.log" 2>&1; then
        echo "FAIL: could not install redis-server"; tail -n 30 "$WORK/install.log"; exit 1
    fi
fi
redis-server --version

# nginx and systemd-analyze for tests/test_nginx.py (the guide's configurations, run for real)
missing=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "installing ${missing[*]} (apt-get)"
    if ! { timeout 300 apt-get update && timeout 600 apt-get install -y --no-install-recommends "${missing[@]}"; } \
            </dev/null >"$WORK/install-nginx.log" 2>&1; then
        echo "FAIL: could not install ${missing[*]}"; tail -n 30 "$WORK/install-nginx.log"; exit 1
    fi
fi

if [[ ! -x "$WORK/venv/bin/python" ]]; then
    python3 -m venv "$WORK/venv"
fi
"$WORK/venv/bin/python" -m pip install -q pytest pytest-timeout </dev/null

REPORT="$WORK/junit.xml"
rm -f "$REPORT"
status=0
"$WORK/venv/bin/python" -m pytest -q -rs -p no:cacheprovider --junitxml="$REPORT" \
    tests/test_redis.py tests/test_push_example.py tests/test_publisher.py tests/test_health.py \
    tests/test_nginx.py || status=$?

# Skipped or absent Redis tests are a failure here: this step exists to run them.
"$WORK/venv/bin/python" - "$REPORT" <<'EOF' || status=1
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
tests = sum(int(s.get("tests", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print("redis, publisher, health and nginx tests: %d run, %d skipped" % (tests - skipped, skipped))
if skipped or tests == 0:
    print("FAIL: these tests must run in CI, none may be skipped")
    sys.exit(1)
EOF

bash scripts/browser_push_test.sh || status=1
exit "$status"
