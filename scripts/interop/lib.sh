# Shared helpers for scripts/interop.sh and scripts/browser_test.sh.
# Sourced, not executed.  Expects `set -euo pipefail` in the caller.
#
# Environment knobs (all optional):
#   RATCHET_SEL_INTEROP_DIR  work dir for venv/node_modules/logs (default /tmp/ratchet_sel-interop)
#   RATCHET_SEL_SERVER       command that runs the server (default "python3 -m ratchet_sel");
#                            run from the repository root so the checkout's package is used.
#   SERVER_START_TIMEOUT     seconds to wait for the "listening" log line (default 20)

INTEROP_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INTEROP_LIB_DIR/../.." && pwd)"
WORK_DIR="${RATCHET_SEL_INTEROP_DIR:-/tmp/ratchet_sel-interop}"
VENV_DIR="$WORK_DIR/venv"
NODE_DIR="$WORK_DIR/node"
LOG_DIR="$WORK_DIR/logs"
SERVER_START_TIMEOUT="${SERVER_START_TIMEOUT:-20}"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

SERVER_PID=""
SERVER_DRAIN_PID=""
SERVER_LOG=""
SERVER_PORT=""
SERVER_STATUS=""

log() { printf '%s\n' "$*" >&2; }

# proc_alive PID: true while PID runs (a zombie, i.e. exited but not yet
# reaped by us, counts as dead -- unlike `kill -0`).
proc_alive() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}

ensure_dirs() {
    mkdir -p "$WORK_DIR" "$LOG_DIR"
}

# Python venv with the third-party Python clients.
ensure_venv() {
    ensure_dirs
    if [[ ! -x "$VENV_DIR/bin/python" ]]; then
        log "creating venv $VENV_DIR"
        timeout 300 python3 -m venv "$VENV_DIR"
    fi
    timeout 600 "$VENV_DIR/bin/python" -m pip install --quiet -r "$INTEROP_LIB_DIR/requirements.txt" </dev/null
}

# node_modules with ws and playwright-core (no browser download).
ensure_node() {
    ensure_dirs
    mkdir -p "$NODE_DIR"
    if ! cmp -s "$INTEROP_LIB_DIR/package.json" "$NODE_DIR/package.json" \
        || [[ ! -d "$NODE_DIR/node_modules/ws" || ! -d "$NODE_DIR/node_modules/playwright-core" ]]; then
        cp "$INTEROP_LIB_DIR/package.json" "$NODE_DIR/package.json"
        log "installing npm packages into $NODE_DIR"
        (cd "$NODE_DIR" && timeout 600 npm install --no-audit --no-fund --loglevel=error </dev/null >&2)
    fi
}

# start_server MODE URL_SCHEME
#   Starts `$RATCHET_SEL_SERVER MODE --host 127.0.0.1 --port 0` from the repo root,
#   waits (event-driven, bounded) for a stderr/stdout line containing
#   SCHEME://127.0.0.1:PORT/ and sets SERVER_PID, SERVER_PORT, SERVER_LOG.
start_server() {
    local mode="$1" scheme="$2"
    shift 2   # anything further goes to the server's command line (e.g. --certfile)
    local -a cmd
    read -r -a cmd <<<"${RATCHET_SEL_SERVER:-python3 -m ratchet_sel}"
    ensure_dirs
    SERVER_LOG="$LOG_DIR/server-$mode.log"
    : >"$SERVER_LOG"
    local fifo
    fifo="$(mktemp -u "$WORK_DIR/server-$mode.XXXXXX.fifo")"
    mkfifo "$fifo"
    # The server writes into the fifo; we read it line by line until the
    # listening line shows up, then a background cat keeps draining it into
    # the log file so the server can never block on a full pipe.
    # setsid: the server gets its own process group, so the SIGKILL fallback
    # also takes any children it may have.  (SIGTERM goes to the pid only.)
    (cd "$REPO_ROOT" && PYTHONUNBUFFERED=1 exec setsid "${cmd[@]}" "$mode" --host 127.0.0.1 --port 0 "$@" \
        </dev/null >"$fifo" 2>&1) &
    SERVER_PID=$!
    local fd
    exec {fd}<"$fifo"
    rm -f "$fifo"
    local line deadline=$((SECONDS + SERVER_START_TIMEOUT))
    local re="${scheme}://127\\.0\\.0\\.1:([0-9]+)/"
    SERVER_PORT=""
    while (( SECONDS < deadline )); do
        if ! IFS= read -r -t $((deadline - SECONDS)) -u "$fd" line; then
            break   # timeout or EOF (server died)
        fi
        printf '%s\n' "$line" >>"$SERVER_LOG"
        if [[ "$line" =~ $re ]]; then
            SERVER_PORT="${BASH_REMATCH[1]}"
            break
        fi
    done
    cat <&"$fd" >>"$SERVER_LOG" &
    SERVER_DRAIN_PID=$!
    exec {fd}<&-
    if [[ -z "$SERVER_PORT" ]]; then
        if proc_alive "$SERVER_PID"; then
            log "FAIL: '${cmd[*]} $mode' did not log ${scheme}://127.0.0.1:PORT/ within ${SERVER_START_TIMEOUT}s"
        else
            log "FAIL: '${cmd[*]} $mode' exited without logging ${scheme}://127.0.0.1:PORT/"
        fi
        stop_server
        log "server exit status: $SERVER_STATUS"
        dump_server_log
        return 1
    fi
    log "server '$mode' pid $SERVER_PID listening on port $SERVER_PORT (log: $SERVER_LOG)"
}

# _start_watchdog SECS PID: background process that SIGKILLs PID after SECS.
# Sets WATCHDOG_PID.  It runs in its own session/process group (setsid), so
# _stop_watchdog can SIGKILL it together with its sleep.  SIGKILL, not TERM: a
# forked bash child that has not exec'd yet would otherwise run our traps.
_start_watchdog() {
    setsid sh -c 'sleep "$1"; kill -KILL "-$2" 2>/dev/null || kill -KILL "$2" 2>/dev/null' watchdog "$1" "$2" &
    WATCHDOG_PID=$!
}

# _stop_watchdog: returns 0 if the watchdog was still pending (had not fired).
_stop_watchdog() {
    local rc=0
    kill -KILL -- "-$WATCHDOG_PID" 2>/dev/null || kill -KILL "$WATCHDOG_PID" 2>/dev/null || true
    wait "$WATCHDOG_PID" 2>/dev/null || rc=$?
    # 137 = it died of our SIGKILL, i.e. it had not fired yet.
    (( rc == 137 ))
}

# Wait (bounded) for a pid that is a child of this shell; SIGKILL it on timeout.
# Sets SERVER_STATUS to its exit status (or "killed ...").
_wait_bounded() {
    local pid="$1" secs="$2" rc=0
    _start_watchdog "$secs" "$pid"
    wait "$pid" 2>/dev/null || rc=$?
    if _stop_watchdog; then
        SERVER_STATUS="$rc"
    else
        SERVER_STATUS="killed (no exit within ${secs}s of SIGTERM)"
    fi
}

# stop_server [--already-signalled]: SIGTERM (unless someone else already sent
# it), bounded wait, SIGKILL fallback.  Idempotent.  Sets SERVER_STATUS.
stop_server() {
    local signalled="${1:-}"
    if [[ -n "$SERVER_PID" ]]; then
        if [[ "$signalled" == --already-signalled ]] || proc_alive "$SERVER_PID"; then
            [[ "$signalled" == --already-signalled ]] || kill -TERM "$SERVER_PID" 2>/dev/null || true
            _wait_bounded "$SERVER_PID" 10
        else
            local rc=0
            wait "$SERVER_PID" 2>/dev/null || rc=$?
            SERVER_STATUS="$rc (exited before SIGTERM)"
        fi
        SERVER_PID=""
    fi
    if [[ -n "$SERVER_DRAIN_PID" ]]; then
        # The drain ends at EOF once the server (the fifo's only writer) is gone.
        _start_watchdog 5 "$SERVER_DRAIN_PID"
        wait "$SERVER_DRAIN_PID" 2>/dev/null || true
        _stop_watchdog || true
        SERVER_DRAIN_PID=""
    fi
}

dump_server_log() {
    if [[ -n "$SERVER_LOG" && -s "$SERVER_LOG" ]]; then
        log "---- server log ($SERVER_LOG, last 40 lines) ----"
        tail -n 40 "$SERVER_LOG" >&2
        log "---- end server log ----"
    fi
}
