#!/usr/bin/env bash
# Runs examples/wamp_push.py the way scripts/interop/lib.sh's start_server calls a
# server: `serve.sh MODE --host H --port P ...` (MODE is ignored).
shift
exec python3 "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/examples/wamp_push.py" "$@"
