#!/usr/bin/env bash
# Headless Chromium test of the chat demo (`python -m ratchet_sel chat`).
#
#   bash scripts/browser_test.sh
#
# Installs Debian's chromium if missing and npm playwright-core into
# /tmp/ratchet_sel-interop/node (never downloads a browser), starts the chat
# server on 127.0.0.1 with an ephemeral port, runs
# scripts/interop/browser_test.mjs against it, and always stops the server and
# the browser.  Exits non-zero on any failure.  See scripts/INTEROP_NOTES.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=interop/lib.sh
source "$HERE/interop/lib.sh"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
BROWSER_TIMEOUT="${BROWSER_TIMEOUT:-180}"
export BROWSER_TEST_TOKEN="rs-$$-$RANDOM$RANDOM"

MAIN_PID=$BASHPID
NODE_PID=""

# Kill any process of this run's browser: they all carry our unique token
# (an ignored Chromium switch) on their command line.
kill_browser_leftovers() {
    local p cmdline n=0
    for p in /proc/[0-9]*; do
        cmdline="$( { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null)" || continue
        if [[ "$cmdline" == *"--ratchet-sel-browser-test=$BROWSER_TEST_TOKEN"* ]]; then
            kill -KILL "${p#/proc/}" 2>/dev/null && n=$((n + 1))
        fi
    done
    if (( n > 0 )); then log "killed $n leftover browser process(es)"; fi
}

cleanup() {
    [[ "$BASHPID" == "$MAIN_PID" ]] || return 0
    if [[ -n "$NODE_PID" ]]; then
        # NODE_PID is `timeout`, which passes the TERM on to node.
        if proc_alive "$NODE_PID"; then kill -TERM "$NODE_PID" 2>/dev/null || true; fi
        _wait_bounded "$NODE_PID" 10 # SIGKILLs it if still there after 10s
        NODE_PID=""
    fi
    kill_browser_leftovers
    stop_server
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_dirs
INSTALL_LOG="$LOG_DIR/install-browser.log"
: >"$INSTALL_LOG"

if [[ ! -x "$CHROMIUM" ]]; then
    log "installing Debian chromium (apt-get)"
    if ! { timeout 300 apt-get update && timeout 900 apt-get install -y chromium; } \
            </dev/null >>"$INSTALL_LOG" 2>&1; then
        log "FAIL: could not install chromium (see $INSTALL_LOG)"; tail -n 30 "$INSTALL_LOG" >&2; exit 1
    fi
fi
if ! ensure_node >>"$INSTALL_LOG" 2>&1; then
    log "FAIL: could not install npm packages (see $INSTALL_LOG)"; tail -n 30 "$INSTALL_LOG" >&2; exit 1
fi
export INTEROP_NODE_DIR="$NODE_DIR"
export CHROMIUM
export BROWSER_TEST_SCREENSHOT_DIR="$LOG_DIR"
export BROWSER_TEST_TIMEOUT_MS=$(( (BROWSER_TIMEOUT - 20) * 1000 ))

start_server chat http

rc=0
timeout -k 5 "$BROWSER_TIMEOUT" node "$HERE/interop/browser_test.mjs" "$SERVER_PORT" &
NODE_PID=$!
wait "$NODE_PID" || rc=$?
NODE_PID=""
if (( rc == 124 )); then
    echo "browser chat: FAIL: test did not finish within ${BROWSER_TIMEOUT}s"
elif (( rc > 1 )); then
    echo "browser chat: FAIL: test process ended with status $rc (137: SIGKILL / hard timeout)"
fi

kill_browser_leftovers
stop_server
case "$SERVER_STATUS" in
    killed*|*before\ SIGTERM*)
        echo "browser chat: FAIL: server exit status $SERVER_STATUS"
        rc=1 ;;
esac
if (( rc != 0 )); then
    dump_server_log
fi
exit "$rc"
