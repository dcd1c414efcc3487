#!/usr/bin/env bash
# CI step: the WAMP v2 router's tests, all of which must RUN (none skipped): serializers
# (with the wamp-proto test vectors), the sans-IO session, the router over sockets, the
# fuzz test, the example, calls between --workers, and two routers on one real Redis.
# Then it checks the committed MessagePack oracle vectors against the msgpack package.
#
#   bash scripts/ci_wamp2.sh
#
# Installs Debian's redis-server when it is missing (the test starts its own instance
# on a free loopback port and stops it by PID), makes a venv under /tmp with pytest
# and msgpack (msgpack only regenerates tests/data/msgpack_oracle.json into a temporary
# copy, which must equal the committed file).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

WORK=/tmp/ratchet_sel-wamp2-router
mkdir -p "$WORK"

if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server (apt-get)"
    if ! { timeout 300 apt-get update && timeout 600 apt-get install -y --no-install-recommends redis-server; } \
            </dev/null >"$WORK/install.log" 2>&1; then
        echo "FAIL: could not install redis-server"; tail -n 30 "$WORK/install.log"; exit 1
    fi
fi

if [[ ! -x "$WORK/venv/bin/python" ]]; then
    python3 -m venv "$WORK/venv"
fi
"$WORK/venv/bin/python" -m pip install -q pytest pytest-timeout msgpack </dev/null

REPORT="$WORK/junit.xml"
rm -f "$REPORT"
status=0
PYTHONPATH="$PWD" "$WORK/venv/bin/python" -m pytest -q -rs -p no:cacheprovider --junitxml="$REPORT" \
    tests/test_wamp2_serializers.py tests/test_wamp2_session.py tests/test_wamp2_router.py \
    tests/test_wamp2_fuzz.py tests/test_wamp2_example.py tests/test_wamp2_cluster.py tests/test_wamp2_workers.py \
    tests/test_wamp2_redis.py || status=$?

"$WORK/venv/bin/python" - "$REPORT" <<'PYEOF' || status=1
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
tests = sum(int(s.get("tests", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print("WAMP v2 tests: %d run, %d skipped" % (tests - skipped, skipped))
if skipped or tests == 0:
    print("FAIL: these tests must run in CI, none may be skipped")
    sys.exit(1)
PYEOF

# The oracle: the msgpack package must still produce the committed bytes.
cp tests/data/msgpack_oracle.json "$WORK/oracle.committed.json"
PYTHONPATH="$PWD" "$WORK/venv/bin/python" scripts/gen_msgpack_vectors.py --output "$WORK/oracle.fresh.json"
if ! "$WORK/venv/bin/python" - "$WORK/oracle.committed.json" "$WORK/oracle.fresh.json" <<'PYEOF'; then
import json, sys
committed, fresh = (json.load(open(path))["entries"] for path in sys.argv[1:3])
if committed != fresh:
    print("FAIL: tests/data/msgpack_oracle.json differs from what the msgpack package produces now")
    sys.exit(1)
print("msgpack oracle: %d committed vectors match the msgpack package" % len(committed))
PYEOF
    status=1
fi
exit "$status"
