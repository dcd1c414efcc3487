#!/usr/bin/env bash
# Interoperability test: third-party WebSocket clients against
# `python -m ratchet_sel echo` from this checkout.
#
#   bash scripts/interop.sh
#
# Installs its clients outside the repo (venv + node_modules under
# /tmp/ratchet_sel-interop), starts the echo server on 127.0.0.1 with an
# ephemeral port, runs every client, stops the server and exits non-zero if
# anything failed.  See scripts/INTEROP_NOTES.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=interop/lib.sh
source "$HERE/interop/lib.sh"

CLIENT_TIMEOUT="${CLIENT_TIMEOUT:-60}"

MAIN_PID=$BASHPID
cleanup() {
    # Background helpers forked from this shell inherit the trap: only the
    # main shell may clean up.
    [[ "$BASHPID" == "$MAIN_PID" ]] || return 0
    stop_server
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_dirs
INSTALL_LOG="$LOG_DIR/install.log"
: >"$INSTALL_LOG"
if ! ensure_venv 2>>"$INSTALL_LOG" >>"$INSTALL_LOG"; then
    log "FAIL: could not set up the Python venv (see $INSTALL_LOG)"; tail -n 30 "$INSTALL_LOG" >&2; exit 1
fi
if ! ensure_node 2>>"$INSTALL_LOG" >>"$INSTALL_LOG"; then
    log "FAIL: could not install npm packages (see $INSTALL_LOG)"; tail -n 30 "$INSTALL_LOG" >&2; exit 1
fi
PY="$VENV_DIR/bin/python"
export INTEROP_NODE_DIR="$NODE_DIR"

start_server echo ws
BASE="ws://127.0.0.1:$SERVER_PORT"

passed=0
failed=0

# run_client NAME CMD...: run one client (bounded), echo its result line.
run_client() {
    local name="$1"; shift
    local out rc=0
    if [[ -n "$SERVER_PID" ]] && ! proc_alive "$SERVER_PID"; then
        echo "interop $name: FAIL: server process is no longer running"
        failed=$((failed + 1))
        return 0
    fi
    out="$(timeout -k 5 "$CLIENT_TIMEOUT" "$@" 2>"$LOG_DIR/client.stderr")" || rc=$?
    if [[ -n "$out" ]]; then
        printf '%s\n' "$out"
    fi
    if (( rc == 124 || rc == 137 )); then
        echo "interop $name: FAIL: client did not finish within ${CLIENT_TIMEOUT}s"
    elif (( rc != 0 )) && [[ "$out" != *FAIL* ]]; then
        echo "interop $name: FAIL: client exited with status $rc"
    fi
    if (( rc != 0 )) && [[ -s "$LOG_DIR/client.stderr" ]]; then
        sed 's/^/    stderr: /' "$LOG_DIR/client.stderr" | tail -n 15
    fi
    if (( rc == 0 )); then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

# Different paths on purpose: the echo server must answer on any path.
run_client "websockets(py) rfc6455"       "$PY" "$HERE/interop/clients.py" websockets "$BASE/"
run_client "websocket-client(py) rfc6455" "$PY" "$HERE/interop/clients.py" websocket-client "$BASE/interop/websocket-client?x=1"
run_client "ws(node) rfc6455"             node "$HERE/interop/client_ws.mjs" "$BASE/interop/ws13" 13
run_client "ws(node) hybi-08"             node "$HERE/interop/client_ws.mjs" "$BASE/interop/ws8" 8
run_client "websocket-client(py) hybi-07" "$PY" "$HERE/interop/clients.py" websocket-client-hybi07 "$BASE/interop/hybi07"

# Last: SIGTERM with a client connected must close it with 1001.
# (The client itself sends the SIGTERM once its connection is confirmed.)
if [[ -n "$SERVER_PID" ]] && proc_alive "$SERVER_PID"; then
    SHUTDOWN_SENT_SIGTERM=1
fi
run_client "websockets(py) shutdown" "$PY" "$HERE/interop/clients.py" shutdown --pid "$SERVER_PID" "$BASE/shutdown"

if [[ "${SHUTDOWN_SENT_SIGTERM:-}" == 1 ]]; then
    stop_server --already-signalled
else
    stop_server
fi
case "$SERVER_STATUS" in
    killed*|*before\ SIGTERM*)
        echo "interop server shutdown: FAIL: exit status $SERVER_STATUS"
        failed=$((failed + 1)) ;;
    *)
        echo "interop server shutdown: exited with status $SERVER_STATUS after SIGTERM" ;;
esac

if (( failed > 0 )); then
    dump_server_log
fi

# wss://: the same echo server over TLS with the test certificate.
export INTEROP_CAFILE="$REPO_ROOT/tests/certs/localhost.pem"
start_server echo wss --certfile "$REPO_ROOT/tests/certs/localhost.pem" --keyfile "$REPO_ROOT/tests/certs/localhost.key"
TLS_BASE="wss://localhost:$SERVER_PORT"
run_client "websockets(py) wss"       "$PY" "$HERE/interop/clients.py" websockets "$TLS_BASE/tls"
run_client "websocket-client(py) wss" "$PY" "$HERE/interop/clients.py" websocket-client "$TLS_BASE/tls"
run_client "ws(node) wss"             node "$HERE/interop/client_ws.mjs" "$TLS_BASE/tls" 13
stop_server
if (( failed > 0 )); then
    dump_server_log
fi
echo "interop: $passed passed, $failed failed"
(( failed == 0 ))
