#!/usr/bin/env bash
# Interop of ratchet_sel's *client* with third-party servers:
#   the `websockets` package (Python) and the Node `ws` package, each as an echo
#   server on 127.0.0.1, over ws:// and over wss:// with tests/certs/localhost.pem
#   verified.  For each: text, binary, a 1 MiB message, fragments, a ping, and
#   permessage-deflate negotiated (asserted), plus the command-line client once.
#
#   bash scripts/interop_client.sh
#
# Installs the servers' packages outside the repo (the venv and node_modules of
# scripts/interop/lib.sh, under /tmp/ratchet_sel-interop) and exits non-zero if
# any check failed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=interop/lib.sh
source "$HERE/interop/lib.sh"
CERT="$REPO_ROOT/tests/certs/localhost.pem"
KEY="$REPO_ROOT/tests/certs/localhost.key"

ensure_dirs
INSTALL_LOG="$LOG_DIR/install-client.log"
: >"$INSTALL_LOG"
if ! ensure_venv >>"$INSTALL_LOG" 2>&1; then
    log "FAIL: could not set up the Python venv (see $INSTALL_LOG)"; tail -n 30 "$INSTALL_LOG" >&2; exit 1
fi
if ! ensure_node >>"$INSTALL_LOG" 2>&1; then
    log "FAIL: could not install npm packages (see $INSTALL_LOG)"; tail -n 30 "$INSTALL_LOG" >&2; exit 1
fi
export INTEROP_NODE_DIR="$NODE_DIR"

PEER_PID=""
PEER_IN=""
stop_peer() {
    if [[ -n "$PEER_PID" ]]; then
        exec {PEER_IN}>&- 2>/dev/null || true
        kill "$PEER_PID" 2>/dev/null || true
        wait "$PEER_PID" 2>/dev/null || true
        PEER_PID=""
    fi
}
trap stop_peer EXIT

# start_peer LOGNAME COMMAND...: runs the server with a pipe as stdin (closing it
# stops the server) and reads "PORT n" from its stdout (bounded).
start_peer() {
    local name="$1"; shift
    local out="$LOG_DIR/client-peer-$name.log"
    local fifo_in
    fifo_in="$(mktemp -u "$WORK_DIR/peer.XXXXXX")"
    mkfifo "$fifo_in"
    "$@" <"$fifo_in" >"$out" 2>&1 &
    PEER_PID=$!
    exec {PEER_IN}>"$fifo_in"
    rm -f "$fifo_in"
    PEER_PORT=""
    local waited=0
    while [[ -z "$PEER_PORT" && $waited -lt 200 ]]; do
        PEER_PORT="$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$out" | head -n1)"
        proc_alive "$PEER_PID" || break
        [[ -n "$PEER_PORT" ]] || { sleep 0.1; waited=$((waited + 1)); }
    done
    if [[ -z "$PEER_PORT" ]]; then
        log "FAIL: $name server did not start (see $out)"; tail -n 20 "$out" >&2
        return 1
    fi
}

failures=0
check() {
    local name="$1" scheme="$2"; shift 2
    local -a tls_args=() cafile=()
    if [[ "$scheme" == wss ]]; then tls_args=(--tls "$CERT" "$KEY"); cafile=("$CERT"); fi
    if ! start_peer "$name-$scheme" "$@" "${tls_args[@]}"; then failures=$((failures + 1)); return; fi
    local host=127.0.0.1
    [[ "$scheme" == wss ]] && host=localhost   # the name the certificate is for
    if ! timeout 120 python3 "$HERE/interop_client/check.py" "$scheme://$host:$PEER_PORT/" "$name $scheme" "${cafile[@]}"; then
        failures=$((failures + 1))
    fi
    if [[ "$scheme" == wss ]]; then
        # The command line, in a pipe, against the same server.
        local got
        got="$(printf 'one\ntwo\n' | timeout 60 python3 -m ratchet_sel client --cafile "$CERT" --count 2 \
               "$scheme://$host:$PEER_PORT/")" || { log "FAIL $name $scheme: CLI exit status $?"; failures=$((failures + 1)); }
        if [[ "$got" != $'one\ntwo' ]]; then
            log "FAIL $name $scheme: CLI printed '$got'"; failures=$((failures + 1))
        else
            printf 'ok   %-28s command line in a pipe\n' "$name $scheme"
        fi
    fi
    stop_peer
}

cd "$REPO_ROOT"
for scheme in ws wss; do
    check websockets "$scheme" "$VENV_DIR/bin/python" "$HERE/interop_client/server_websockets.py"
    check node-ws "$scheme" node "$HERE/interop_client/server_ws.mjs"
done

if [[ $failures -gt 0 ]]; then
    log "interop_client: $failures check(s) FAILED"
    exit 1
fi
echo "interop_client: all checks passed"
