#!/usr/bin/env bash
# CI step: the scale smoke.  scripts/scale.py --quick opens 10,000 WebSocket
# connections (C client scripts/scale/wscrowd.c, built with gcc, from source
# address 127.0.0.2) to the chat demo with --workers 2 and keepalive
# pings every 2 s, holds them 5 s, broadcasts twice to all, pings; it fails on
# any connection that did not open, any lost delivery, a keepalive ping left
# unanswered or a connection closed by the server, a crashed server or worker,
# or more than 16 KiB of RSS per connection.
#
#   bash scripts/ci_scale.sh
#
# Installs gcc when missing (apt-get); needs nothing else (stdlib Python).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

WORK=/tmp/ratchet_sel-scale-ci
mkdir -p "$WORK"

if ! command -v gcc >/dev/null 2>&1; then
    echo "installing gcc (apt-get)"
    if ! { timeout 300 apt-get update && timeout 600 apt-get install -y --no-install-recommends gcc libc6-dev; } \
            </dev/null >"$WORK/install.log" 2>&1; then
        echo "FAIL: could not install gcc"; tail -n 30 "$WORK/install.log"; exit 1
    fi
fi

# The hard RLIMIT_NOFILE bounds each process: 10,000 connections need at least ~10,200 in
# the worker that gets the most (SO_REUSEPORT spreads them unevenly) and 10,100 in the client.
hard=$(ulimit -Hn)
if [[ "$hard" != unlimited && "$hard" -lt 12000 ]]; then
    echo "FAIL: the hard RLIMIT_NOFILE is $hard; the scale smoke needs 12000 (raise it in the CI machine's limits)"
    exit 1
fi

start=$(date +%s)
status=0
timeout 600 python3 scripts/scale.py --quick --workdir "$WORK" --json "$WORK/scale.json" </dev/null || status=$?
echo "scale smoke: exit $status in $(( $(date +%s) - start )) s (figures: $WORK/scale.json)"
if [[ $status -ne 0 ]]; then
    echo "--- server log (tail)"; tail -n 40 "$WORK/host.log" || true
fi
exit $status
