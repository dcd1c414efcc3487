#!/usr/bin/env bash
# The WAMP v2 servers of scripts/ci_wamp2_interop.sh, called the way scripts/interop/lib.sh's
# start_server calls a server: `serve.sh MODE --host H --port P ...`.  MODE only names
# the log file, except that a MODE starting with "app" runs examples/wamp2_app.py;
# any other runs `python3 -m ratchet_sel wamp` (the router CLI).
set -euo pipefail
mode="$1"
shift
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
case "$mode" in
    app*) exec python3 "$ROOT/examples/wamp2_app.py" "$@" ;;
    *) exec python3 -m ratchet_sel wamp "$@" ;;
esac
