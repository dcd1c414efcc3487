#!/usr/bin/env bash
# WAMP v1 with real clients, against examples/wamp_push.py (the CI step for issue 18):
#   1. AutobahnPython 0.8.15 (autobahn.wamp1, Python 2.7 + Twisted 20.3.0), on the
#      private python2.7 of the conformance scripts, installed into its own folder;
#   2. the npm package wamp1@0.0.3 on ws@8, in Node;
#   3. the example page in headless Chromium (its plain-JS WAMP v1 client).
# Each client runs: prefix; a call with a result; five calls in flight; a call that
# returns an error; subscribe; publish with excludeMe, exclude, eligible and both;
# unsubscribe.
#
#   bash scripts/ci_wamp.sh
#
# Installs what is missing (idempotently): the python2.7 via scripts/setup_autobahn.sh,
# autobahn into $RATCHET_SEL_WAMP_DIR/site, wamp1 into $RATCHET_SEL_WAMP_DIR/node,
# Debian's chromium and playwright-core (scripts/interop/lib.sh).  Starts one server
# on 127.0.0.1 with an ephemeral port and always stops it.  Exits non-zero if any
# client failed a step.
set -euo pipefail
exec </dev/null

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=interop/lib.sh
source "$HERE/interop/lib.sh"

WAMP_DIR="${RATCHET_SEL_WAMP_DIR:-/tmp/ratchet_sel-wamp1}"
PY27_PREFIX="${AUTOBAHN_PREFIX:-/tmp/ratchet_sel-conformance/py27}"
PY2="$PY27_PREFIX/py2"
SITE="$WAMP_DIR/site"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export BROWSER_TEST_TOKEN="rs-wamp-$$-$RANDOM$RANDOM"
MAIN_PID=$BASHPID

kill_browser_leftovers() {
    local p cmdline
    for p in /proc/[0-9]*; do
        cmdline="$( { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null)" || continue
        if [[ "$cmdline" == *"--ratchet-sel-browser-test=$BROWSER_TEST_TOKEN"* ]]; then
            kill -KILL "${p#/proc/}" 2>/dev/null || true
        fi
    done
}
cleanup() {
    [[ "$BASHPID" == "$MAIN_PID" ]] || return 0
    kill_browser_leftovers
    stop_server
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_dirs
mkdir -p "$WAMP_DIR"
INSTALL_LOG="$LOG_DIR/install-wamp.log"
: >"$INSTALL_LOG"
fail_install() { log "FAIL: $1 (see $INSTALL_LOG)"; tail -n 30 "$INSTALL_LOG" >&2; exit 1; }

# 1. python2.7 (shared with the conformance scripts), then autobahn 0.8.15 in its own folder.
if [[ ! -x "$PY2" ]]; then
    DEBS_ARGS=()
    SHARED_DEBS="$(cd "$HERE/.." && pwd)/../shared/conformance/debs"
    [[ -d "$SHARED_DEBS" ]] && DEBS_ARGS=(--debs "$SHARED_DEBS")
    log "installing the private python2.7 (scripts/setup_autobahn.sh)"
    bash "$HERE/setup_autobahn.sh" --prefix "$PY27_PREFIX" "${DEBS_ARGS[@]}" >>"$INSTALL_LOG" 2>&1 \
        || fail_install "could not install python2.7"
fi
AUTOBAHN_CHECK="import sys; sys.path.insert(0, '$SITE'); import autobahn, twisted; \
assert autobahn.__version__ == '0.8.15', autobahn.__version__; import autobahn.wamp1.protocol"
if ! "$PY2" -c "$AUTOBAHN_CHECK" >/dev/null 2>&1; then
    log "installing autobahn 0.8.15 and Twisted 20.3.0 into $SITE"
    rm -rf "$SITE"
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 timeout 900 "$PY2" -m pip install -q --no-warn-script-location \
        --target "$SITE" "autobahn[twisted]==0.8.15" "Twisted==20.3.0" >>"$INSTALL_LOG" 2>&1 \
        || fail_install "pip could not install autobahn 0.8.15"
    "$PY2" -c "$AUTOBAHN_CHECK" >>"$INSTALL_LOG" 2>&1 || fail_install "autobahn 0.8.15 does not import"
fi

# 2. wamp1 on ws@8.
mkdir -p "$WAMP_DIR/node"
if ! cmp -s "$HERE/wamp/package.json" "$WAMP_DIR/node/package.json" \
        || [[ ! -d "$WAMP_DIR/node/node_modules/wamp1" || ! -d "$WAMP_DIR/node/node_modules/ws" ]]; then
    cp "$HERE/wamp/package.json" "$WAMP_DIR/node/package.json"
    log "installing wamp1@0.0.3 and ws@8 into $WAMP_DIR/node"
    (cd "$WAMP_DIR/node" && timeout 600 npm install --no-audit --no-fund --loglevel=error) >>"$INSTALL_LOG" 2>&1 \
        || fail_install "npm could not install wamp1"
fi

# 3. chromium and playwright-core (never downloads a browser).
if [[ ! -x "$CHROMIUM" ]]; then
    log "installing Debian chromium (apt-get)"
    { timeout 300 apt-get update && timeout 900 apt-get install -y chromium; } >>"$INSTALL_LOG" 2>&1 \
        || fail_install "could not install chromium"
fi
ensure_node >>"$INSTALL_LOG" 2>&1 || fail_install "could not install playwright-core"

# One token-protected server for all three clients.
export WAMP_PUSH_TOKEN="ci-$RANDOM$RANDOM"
RATCHET_SEL_SERVER="bash $HERE/wamp/serve.sh" start_server wamp_push http
URL="ws://127.0.0.1:$SERVER_PORT/"

rc=0
log "---- AutobahnPython 0.8.15 ----"
timeout -k 5 180 "$PY2" -W ignore "$HERE/wamp/autobahn_client.py" "$SITE" "$URL" || rc=1
log "---- npm wamp1 0.0.3 ----"
WAMP1_NODE_DIR="$WAMP_DIR/node" timeout -k 5 180 node "$HERE/wamp/wamp1_client.mjs" "$URL" || rc=1
log "---- headless chromium, the example page ----"
INTEROP_NODE_DIR="$NODE_DIR" CHROMIUM="$CHROMIUM" BROWSER_TEST_SCREENSHOT_DIR="$LOG_DIR" \
    timeout -k 5 180 node "$HERE/wamp/browser_test.mjs" "$SERVER_PORT" || rc=1

kill_browser_leftovers
stop_server
case "$SERVER_STATUS" in
    0) ;;
    *) log "server exit status: $SERVER_STATUS"; rc=1 ;;
esac
if (( rc != 0 )); then dump_server_log; echo "WAMP v1 clients: FAIL"; else echo "WAMP v1 clients: all passed"; fi
exit "$rc"
