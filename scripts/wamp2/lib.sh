# Shared helpers for scripts/ci_wamp2_interop.sh and scripts/bench_wamp2.py's installs.
# Sourced, not executed; expects `set -euo pipefail` in the caller.
#
# Everything is installed under $RATCHET_SEL_WAMP2_DIR (default /tmp/ratchet_sel-wamp2),
# never into the repository, and only when missing or out of date (idempotent):
#   client/    venv: AutobahnPython (PyPI autobahn, latest; asyncio) + msgpack
#   crossbar/  venv: Crossbar.io (PyPI crossbar), the reference router (~2 minutes)
#   node/      npm autobahn (+ msgpack5 and cbor, its dependencies), ws (Node 20 has no
#              global WebSocket), autobahn-browser (the browser build, for the page)
# Non-interactive (stdin is never read), safe under CI=true.

WAMP2_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WAMP2_DIR="${RATCHET_SEL_WAMP2_DIR:-/tmp/ratchet_sel-wamp2}"
WAMP2_CLIENT_VENV="$WAMP2_DIR/client"
WAMP2_CROSSBAR_VENV="$WAMP2_DIR/crossbar"
WAMP2_NODE_DIR="$WAMP2_DIR/node"
WAMP2_LOG_DIR="$WAMP2_DIR/logs"
export WAMP2_NODE_DIR
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

wamp2_log() { printf '%s\n' "$*" >&2; }

# _wamp2_pip_venv VENV CHECK_PYTHON PACKAGES...: makes VENV and installs PACKAGES
# unless `VENV/bin/python -c CHECK_PYTHON` already succeeds.
_wamp2_pip_venv() {
    local venv="$1" check="$2"
    shift 2
    mkdir -p "$WAMP2_LOG_DIR"
    if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
        return 0
    fi
    local logf="$WAMP2_LOG_DIR/install-$(basename "$venv").log"
    wamp2_log "installing $* into $venv (log: $logf)"
    [[ -x "$venv/bin/python" ]] || timeout 300 python3 -m venv "$venv" >"$logf" 2>&1
    if ! timeout 1200 "$venv/bin/python" -m pip install -q "$@" </dev/null >>"$logf" 2>&1 \
            || ! "$venv/bin/python" -c "$check" >>"$logf" 2>&1; then
        wamp2_log "FAIL: could not install $* into $venv"
        tail -n 30 "$logf" >&2
        return 1
    fi
}

ensure_wamp2_client() {
    _wamp2_pip_venv "$WAMP2_CLIENT_VENV" \
        "import autobahn.asyncio.wamp, autobahn.wamp.serializer as s, msgpack; s.MsgPackSerializer()" \
        autobahn msgpack
}

ensure_wamp2_crossbar() {
    _wamp2_pip_venv "$WAMP2_CROSSBAR_VENV" "import crossbar" crossbar
}

ensure_wamp2_node() {
    mkdir -p "$WAMP2_NODE_DIR" "$WAMP2_LOG_DIR"
    local m
    for m in autobahn ws autobahn-browser msgpack5; do
        if ! cmp -s "$WAMP2_LIB_DIR/package.json" "$WAMP2_NODE_DIR/package.json" \
                || [[ ! -d "$WAMP2_NODE_DIR/node_modules/$m" ]]; then
            cp "$WAMP2_LIB_DIR/package.json" "$WAMP2_NODE_DIR/package.json"
            wamp2_log "installing npm autobahn, ws and autobahn-browser into $WAMP2_NODE_DIR"
            (cd "$WAMP2_NODE_DIR" && timeout 600 npm install --no-audit --no-fund --loglevel=error) \
                </dev/null >"$WAMP2_LOG_DIR/install-node.log" 2>&1 || {
                wamp2_log "FAIL: npm could not install the WAMP v2 clients"
                tail -n 30 "$WAMP2_LOG_DIR/install-node.log" >&2
                return 1
            }
            break
        fi
    done
}

# wamp2_free_port: an unused TCP port on 127.0.0.1 (for crossbar, which cannot take port 0
# and log its port).
wamp2_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wamp2_wait_port PORT SECONDS: waits (bounded) until 127.0.0.1:PORT accepts connections.
wamp2_wait_port() {
    python3 - "$1" "$2" <<'EOF'
import socket, sys, time
port, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
EOF
}

CROSSBAR_PID=""
CROSSBAR_PORT=""
CROSSBAR_DIR=""

# start_crossbar: Crossbar.io with a generated config (realm1; the anonymous role may
# call, register, publish and subscribe anything; one WebSocket transport on
# 127.0.0.1:CROSSBAR_PORT with the json and msgpack serializers).  Sets CROSSBAR_PID,
# CROSSBAR_PORT, CROSSBAR_DIR.
start_crossbar() {
    CROSSBAR_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ratchet_sel-crossbar.XXXXXX")"
    CROSSBAR_PORT="$(wamp2_free_port)"
    mkdir -p "$CROSSBAR_DIR/.crossbar"
    python3 "$WAMP2_LIB_DIR/crossbar_config.py" "$CROSSBAR_PORT" >"$CROSSBAR_DIR/.crossbar/config.json"
    (cd "$CROSSBAR_DIR" && exec setsid "$WAMP2_CROSSBAR_VENV/bin/crossbar" start \
        --cbdir "$CROSSBAR_DIR/.crossbar" --loglevel warn </dev/null >"$CROSSBAR_DIR/crossbar.log" 2>&1) &
    CROSSBAR_PID=$!
    if ! wamp2_wait_port "$CROSSBAR_PORT" 120; then
        wamp2_log "FAIL: crossbar did not listen on 127.0.0.1:$CROSSBAR_PORT within 120s"
        tail -n 40 "$CROSSBAR_DIR/crossbar.log" >&2
        stop_crossbar
        return 1
    fi
    wamp2_log "crossbar pid $CROSSBAR_PID listening on port $CROSSBAR_PORT (log: $CROSSBAR_DIR/crossbar.log)"
}

stop_crossbar() {
    [[ -n "$CROSSBAR_PID" ]] || return 0
    kill -TERM "$CROSSBAR_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do
        kill -0 "$CROSSBAR_PID" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL -- "-$CROSSBAR_PID" 2>/dev/null || true
    wait "$CROSSBAR_PID" 2>/dev/null || true
    CROSSBAR_PID=""
}
