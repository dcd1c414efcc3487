#!/usr/bin/env bash
# Headless Chromium test of the push example (examples/push.py).
#
#   bash scripts/browser_push_test.sh            # over HTTP, then through Redis
#
# Two subscribed tabs and one that is not: a post made by the blog in another
# process reaches exactly the subscribed ones.  Runs twice: with the server's
# POST /publish endpoint, and through a redis-server of its own (on a free
# loopback port, --save '' --appendonly no, stopped by PID; installed with
# apt-get when missing).  Installs chromium and playwright-core like
# scripts/browser_test.sh.  Exits non-zero on any failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=interop/lib.sh
source "$HERE/interop/lib.sh"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
BROWSER_TIMEOUT="${BROWSER_TIMEOUT:-150}"
export BROWSER_TEST_TOKEN="rs-push-$$-$RANDOM$RANDOM"
export RATCHET_SEL_SERVER="python3 examples/push.py"
PUBLISH_TOKEN="push-$RANDOM$RANDOM"

MAIN_PID=$BASHPID
NODE_PID=""
REDIS_PID=""

kill_browser_leftovers() {
    local p cmdline
    for p in /proc/[0-9]*; do
        cmdline="$( { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null)" || continue
        if [[ "$cmdline" == *"--ratchet-sel-browser-test=$BROWSER_TEST_TOKEN"* ]]; then
            kill -KILL "${p#/proc/}" 2>/dev/null || true
        fi
    done
}

stop_redis() {
    if [[ -n "$REDIS_PID" ]]; then
        kill -TERM "$REDIS_PID" 2>/dev/null || true
        _wait_bounded "$REDIS_PID" 10
        REDIS_PID=""
    fi
}

cleanup() {
    [[ "$BASHPID" == "$MAIN_PID" ]] || return 0
    if [[ -n "$NODE_PID" ]] && proc_alive "$NODE_PID"; then
        kill -TERM "$NODE_PID" 2>/dev/null || true
        _wait_bounded "$NODE_PID" 10
    fi
    kill_browser_leftovers
    stop_server
    stop_redis
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_dirs
INSTALL_LOG="$LOG_DIR/install-browser-push.log"
: >"$INSTALL_LOG"
if [[ ! -x "$CHROMIUM" ]] || ! command -v redis-server >/dev/null 2>&1; then
    log "installing chromium / redis-server (apt-get)"
    if ! { timeout 300 apt-get update && timeout 900 apt-get install -y chromium redis-server; } \
            </dev/null >>"$INSTALL_LOG" 2>&1; then
        log "FAIL: could not install chromium / redis-server (see $INSTALL_LOG)"; tail -n 30 "$INSTALL_LOG" >&2; exit 1
    fi
fi
if ! ensure_node >>"$INSTALL_LOG" 2>&1; then
    log "FAIL: could not install npm packages (see $INSTALL_LOG)"; tail -n 30 "$INSTALL_LOG" >&2; exit 1
fi
export INTEROP_NODE_DIR="$NODE_DIR" CHROMIUM
export BROWSER_TEST_TIMEOUT_MS=$(( (BROWSER_TIMEOUT - 20) * 1000 ))

# run_browser MODE POST_ARGS...: the page test against the running server.
run_browser() {
    local mode="$1" rc=0
    shift
    PUSH_MODE="$mode" PUSH_POST_ARGS="$*" timeout -k 5 "$BROWSER_TIMEOUT" \
        node "$HERE/interop/browser_push_test.mjs" "$SERVER_PORT" &
    NODE_PID=$!
    wait "$NODE_PID" || rc=$?
    NODE_PID=""
    kill_browser_leftovers
    if (( rc == 124 )); then echo "browser push ($mode): FAIL: no result within ${BROWSER_TIMEOUT}s"; fi
    return "$rc"
}

status=0

# 1. Over HTTP: the blog POSTs to the server's /publish endpoint.
start_server server http --publish-token "$PUBLISH_TOKEN"
run_browser http --http "http://127.0.0.1:$SERVER_PORT" --token "$PUBLISH_TOKEN" || { status=1; dump_server_log; }
stop_server

# 2. Through Redis: the blog PUBLISHes; the server only listens to Redis.
REDIS_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    >"$LOG_DIR/redis-push.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 200); do   # bounded: up to 20 s for redis to answer PING
    if [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; then break; fi
    sleep 0.1
done
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
start_server server http --redis "$REDIS_URL"
run_browser redis --redis "$REDIS_URL" || { status=1; dump_server_log; }
stop_server
stop_redis

exit "$status"
