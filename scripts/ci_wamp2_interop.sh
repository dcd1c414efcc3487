#!/usr/bin/env bash
# WAMP v2 with real clients (the "Proof (in CI)" of issue 23):
#   0. the harness against Crossbar.io (the reference router) first, so that a failure
#      below is the router's and not the harness's (skip with --no-crossbar);
#   1. AutobahnPython (PyPI autobahn, latest, asyncio) and Autobahn|JS (npm autobahn,
#      latest, on ws in Node 20), each with wamp.2.json and wamp.2.msgpack, the full
#      scenario list (scripts/wamp2/py_client.py, node_client.mjs) against
#      `python -m ratchet_sel wamp`; then cross-library: a Python caller reaches a JS
#      callee, events both ways, across serializers;
#   2. v1 and v2 at once: AutobahnPython 0.8.15 (WAMP v1, the private python2.7) and npm
#      autobahn (v2) on one port (scripts/wamp2/v1v2.mjs);
#   3. headless Chromium: examples/wamp2_app.py serves its page and autobahn-js's browser
#      build (npm autobahn-browser, --static); a call and a subscription run in the page;
#   4. --workers 2: RPC between sessions on different workers (told apart through /proc)
#      and an event across them; two servers on one real redis-server: events across
#      servers (scripts/wamp2/workers_check.py);
#   5. the benchmark smoke: scripts/bench_wamp2.py --quick (our router and Crossbar.io).
#
#   bash scripts/ci_wamp2_interop.sh [--no-crossbar]
#
# Installs what is missing, idempotently, under /tmp/ratchet_sel-wamp2 (scripts/wamp2/
# lib.sh), /tmp/ratchet_sel-wamp1 and /tmp/ratchet_sel-conformance/py27 (shared with
# scripts/ci_wamp.sh), /tmp/ratchet_sel-interop/node (playwright-core; Debian's
# chromium).  Every server listens on 127.0.0.1 and is always stopped.  Prints
# PASS/FAIL lines and a summary; exits non-zero if anything failed.  --no-crossbar
# says loudly that the harness was not validated; it never skips our router's runs.
set -euo pipefail
exec </dev/null

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=interop/lib.sh
source "$HERE/interop/lib.sh"
# shellcheck source=wamp2/lib.sh
source "$HERE/wamp2/lib.sh"

WITH_CROSSBAR=1
for arg in "$@"; do
    case "$arg" in
        --no-crossbar) WITH_CROSSBAR=0 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "ci_wamp2_interop.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

WAMP1_DIR="${RATCHET_SEL_WAMP_DIR:-/tmp/ratchet_sel-wamp1}"
PY27_PREFIX="${AUTOBAHN_PREFIX:-/tmp/ratchet_sel-conformance/py27}"
PY2="$PY27_PREFIX/py2"
SITE="$WAMP1_DIR/site"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
PYC="$WAMP2_CLIENT_VENV/bin/python"
REALM=realm1
export BROWSER_TEST_TOKEN="rs-wamp2-$$-$RANDOM$RANDOM"
export RATCHET_SEL_SERVER="bash $HERE/wamp2/serve.sh"
export WAMP2_NODE_DIR
MAIN_PID=$BASHPID
REDIS_PID=""
START=$SECONDS

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
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
    fi
}
cleanup() {
    [[ "$BASHPID" == "$MAIN_PID" ]] || return 0
    kill_browser_leftovers
    stop_server
    stop_second_server
    stop_crossbar
    stop_redis
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A second server at once (start_server keeps one in SERVER_*): moved aside here.
SECOND_PID="" SECOND_DRAIN_PID="" SECOND_PORT="" SECOND_LOG=""
keep_as_second_server() {
    SECOND_PID="$SERVER_PID" SECOND_DRAIN_PID="$SERVER_DRAIN_PID" SECOND_PORT="$SERVER_PORT" SECOND_LOG="$SERVER_LOG"
    SERVER_PID="" SERVER_DRAIN_PID=""
}
stop_second_server() {
    [[ -n "$SECOND_PID$SECOND_DRAIN_PID" ]] || return 0
    local pid="$SERVER_PID" drain="$SERVER_DRAIN_PID" log_="$SERVER_LOG"
    SERVER_PID="$SECOND_PID" SERVER_DRAIN_PID="$SECOND_DRAIN_PID" SERVER_LOG="$SECOND_LOG"
    stop_server
    [[ "$SERVER_STATUS" == 0 ]] || { log "second server exit status: $SERVER_STATUS"; dump_server_log; RC=1; }
    SECOND_PID="" SECOND_DRAIN_PID=""
    SERVER_PID="$pid" SERVER_DRAIN_PID="$drain" SERVER_LOG="$log_"
}

RC=0
SUMMARY=()
# step NAME COMMAND...: runs one client run, records PASS/FAIL for the summary.
step() {
    local name="$1"
    shift
    log "---- $name ----"
    if "$@"; then
        SUMMARY+=("PASS  $name")
    else
        SUMMARY+=("FAIL  $name")
        RC=1
    fi
}
# stop_checked: stops the current server; a non-zero exit status fails the run.
stop_checked() {
    stop_server
    if [[ "$SERVER_STATUS" != 0 ]]; then
        log "server exit status: $SERVER_STATUS"
        dump_server_log
        SUMMARY+=("FAIL  server $1 exited with status $SERVER_STATUS")
        RC=1
    fi
}

# ---- installs ----
ensure_dirs
mkdir -p "$WAMP2_LOG_DIR" "$WAMP1_DIR"
T0=$SECONDS
ensure_wamp2_client || exit 1
ensure_wamp2_node || exit 1
if (( WITH_CROSSBAR )); then ensure_wamp2_crossbar || exit 1; fi
INSTALL_LOG="$WAMP2_LOG_DIR/install-wamp1.log"
: >"$INSTALL_LOG"
fail_install() { log "FAIL: $1 (see $INSTALL_LOG)"; tail -n 30 "$INSTALL_LOG" >&2; exit 1; }
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
if [[ ! -x "$CHROMIUM" ]]; then
    log "installing Debian chromium (apt-get)"
    { timeout 300 apt-get update && timeout 900 apt-get install -y chromium; } >>"$INSTALL_LOG" 2>&1 \
        || fail_install "could not install chromium"
fi
if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server (apt-get)"
    { timeout 300 apt-get update && timeout 600 apt-get install -y --no-install-recommends redis-server; } \
        >>"$INSTALL_LOG" 2>&1 || fail_install "could not install redis-server"
fi
ensure_node >>"$INSTALL_LOG" 2>&1 || fail_install "could not install playwright-core"
log "installs ready in $((SECONDS - T0))s: autobahn $("$PYC" -c 'import autobahn; print(autobahn.__version__)'), \
npm autobahn $(node -p "require('$WAMP2_NODE_DIR/node_modules/autobahn/package.json').version"), \
autobahn-browser $(node -p "require('$WAMP2_NODE_DIR/node_modules/autobahn-browser/package.json').version")"

# all_scenarios URL LABEL: the single-library runs and the cross-library runs.
all_scenarios() {
    local url="$1" label="$2" ser
    for ser in json msgpack; do
        step "$label: AutobahnPython $ser" timeout -k 5 180 "$PYC" "$HERE/wamp2/py_client.py" "$url" "$REALM" "$ser"
        step "$label: autobahn-js $ser" timeout -k 5 180 node "$HERE/wamp2/node_client.mjs" "$url" "$REALM" "$ser"
    done
    step "$label: cross-library, Python json <-> JS msgpack" timeout -k 5 180 "$PYC" "$HERE/wamp2/py_client.py" \
        "$url" "$REALM" json --cross-only --cross-node "$HERE/wamp2/node_client.mjs" --cross-serializer msgpack
    step "$label: cross-library, Python msgpack <-> JS json" timeout -k 5 180 "$PYC" "$HERE/wamp2/py_client.py" \
        "$url" "$REALM" msgpack --cross-only --cross-node "$HERE/wamp2/node_client.mjs" --cross-serializer json
}

# ---- 0. the harness against Crossbar.io ----
if (( WITH_CROSSBAR )); then
    T0=$SECONDS
    start_crossbar
    # Crossbar.io answers GOODBYE with wamp.close.normal (the spec says goodbye_and_out),
    # and reads a CALL's timeout option as seconds, answering wamp.error.canceled.
    WAMP2_GOODBYE_REPLY=wamp.close.normal WAMP2_TIMEOUT_ERROR=wamp.error.canceled all_scenarios "ws://127.0.0.1:$CROSSBAR_PORT/" "crossbar"
    stop_crossbar
    log "crossbar harness run: $((SECONDS - T0))s"
else
    log "NOTE: --no-crossbar: the harness is NOT validated against Crossbar.io in this run"
    SUMMARY+=("SKIP  crossbar harness validation (--no-crossbar)")
fi

# ---- 1. our router: every scenario ----
start_server wamp-router ws --realm "$REALM"
all_scenarios "ws://127.0.0.1:$SERVER_PORT/" "ratchet_sel"

# ---- 2. v1 and v2 on the same port ----
for ser in json msgpack; do
    step "ratchet_sel: v1 (AutobahnPython 0.8.15) and v2 (autobahn-js $ser) on one port" \
        timeout -k 5 120 node "$HERE/wamp2/v1v2.mjs" "ws://127.0.0.1:$SERVER_PORT/" "$REALM" "$PY2" "$SITE" "$ser"
done
stop_checked wamp-router

# ---- 3. the example page in headless Chromium ----
BROWSER_BUILD="$WAMP2_NODE_DIR/node_modules/autobahn-browser"
if start_server app-wamp2 http --realm "$REALM" --static "$BROWSER_BUILD"; then
    step "ratchet_sel: examples/wamp2_app.py page in headless Chromium" env INTEROP_NODE_DIR="$NODE_DIR" \
        CHROMIUM="$CHROMIUM" timeout -k 5 150 node "$HERE/wamp2/browser_test.mjs" "$SERVER_PORT" "$REALM"
    kill_browser_leftovers
    stop_checked app-wamp2
else
    SUMMARY+=("FAIL  examples/wamp2_app.py did not start"); RC=1
fi

# ---- 4. --workers 2, then two servers on one Redis ----
if start_server wamp-workers ws --realm "$REALM" --workers 2; then
    for ser in json msgpack; do
        step "ratchet_sel --workers 2: RPC and events across workers ($ser)" timeout -k 5 120 "$PYC" \
            "$HERE/wamp2/workers_check.py" workers "ws://127.0.0.1:$SERVER_PORT/" "$REALM" "$SERVER_PID" "$ser"
    done
    stop_checked wamp-workers
else
    SUMMARY+=("FAIL  ratchet_sel wamp --workers 2 did not start"); RC=1
fi
REDIS_PORT="$(wamp2_free_port)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$WAMP2_LOG_DIR/redis.log" 2>&1 &
REDIS_PID=$!
if wamp2_wait_port "$REDIS_PORT" 30 \
        && start_server wamp-redis1 ws --realm "$REALM" --redis "redis://127.0.0.1:$REDIS_PORT/0"; then
    keep_as_second_server
    if start_server wamp-redis2 ws --realm "$REALM" --redis "redis://127.0.0.1:$REDIS_PORT/0"; then
        for ser in json msgpack; do
            step "ratchet_sel: two servers on one Redis: events across servers ($ser)" timeout -k 5 120 "$PYC" \
                "$HERE/wamp2/workers_check.py" redis "ws://127.0.0.1:$SECOND_PORT/" "ws://127.0.0.1:$SERVER_PORT/" "$REALM" "$ser"
        done
        stop_checked wamp-redis2
    else
        SUMMARY+=("FAIL  the second --redis server did not start"); RC=1
    fi
    stop_second_server
else
    SUMMARY+=("FAIL  redis-server or the first --redis server did not start"); RC=1
fi
stop_redis

# ---- 5. the benchmark smoke ----
step "scripts/bench_wamp2.py --quick" timeout -k 5 300 python3 "$HERE/bench_wamp2.py" --quick

log ""
log "==== WAMP v2 summary ($((SECONDS - START))s) ===="
printf '%s\n' "${SUMMARY[@]}" >&2
if (( RC != 0 )); then echo "WAMP v2 clients: FAIL"; else echo "WAMP v2 clients: all passed"; fi
exit "$RC"
