#!/bin/bash
# Draft-76 (Hixie-76) conformance check of ratchet_sel with a real draft-76 client:
# Autobahn 0.10.9 (the library wstest 0.8.2 brings along) under the private python2.7
# that scripts/setup_autobahn.sh installs.  See scripts/HIXIE_NOTES.md.
#
#   1. echo: starts `python3 -m ratchet_sel echo --host 127.0.0.1 --port 0` from the
#      repository root and runs scripts/hixie76_client.py echo against it: one
#      connection each for draft-76, HyBi-10 (Sec-WebSocket-Version: 8) and RFC 6455;
#      text, UTF-8, empty, U+0000, 70,000-character and pipelined messages echoed
#      exactly, clean closing handshake (draft-76: 0xFF 0x00 both ways).
#   2. shutdown: three connections (one per version) stay open while the echo server
#      gets SIGTERM; each must be closed cleanly by the server (draft-76: 0xFF 0x00,
#      HyBi: 1001), and the server must exit 0.
#   3. chat: starts `python3 -m ratchet_sel chat ...`; a draft-76, a HyBi-10 and an
#      RFC 6455 client at once; each must get the other two clients' messages, never
#      its own (and only HyBi-10 the RFC 6455 client's binary message); SIGTERM, exit 0.
# When a draft-76 check fails, the same check is repeated once as a DIAGNOSTIC with the
# client's `Content-Length: 8` request header removed (hixie76_client.py
# --strip-content-length), to tell a handshake problem from a framing one.  The
# diagnostic run never changes the exit status.
#
# Usage: scripts/hixie76.sh [--debs DIR] [--prefix DIR] [--timeout SEC] [--no-diagnose]
#   --debs DIR      passed to setup_autobahn.sh (cache of the python2.7 .deb files)
#   --prefix DIR    the wstest/python2.7 install (env AUTOBAHN_PREFIX;
#                   default /tmp/ratchet_sel-conformance/py27)
#   --timeout SEC   limit of each client run (default 30)
#   --no-diagnose   skip the diagnostic re-runs
# Exit status: 0 if every check passed, 1 if one failed, 2 for a usage or setup error.
# Non-interactive (reads no stdin); only 127.0.0.1; every server is stopped on exit.
set -euo pipefail
export CI=true
exec </dev/null

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${AUTOBAHN_PREFIX:-/tmp/ratchet_sel-conformance/py27}
DEBS=""
TIMEOUT=30
DIAGNOSE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --debs) DEBS=${2:?--debs needs a directory}; shift 2 ;;
    --debs=*) DEBS=${1#*=}; shift ;;
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    --no-diagnose) DIAGNOSE=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "hixie76.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$TIMEOUT" in ''|*[!0-9]*) echo "hixie76.sh: --timeout needs whole seconds" >&2; exit 2 ;; esac

log() { echo "hixie76.sh: $*" >&2; }

# -- the Python 2.7 + Autobahn install ------------------------------------------------
SETUP_ARGS=(--prefix "$PREFIX")
[ -n "$DEBS" ] && SETUP_ARGS+=(--debs "$DEBS")
if ! bash "$REPO/scripts/setup_autobahn.sh" "${SETUP_ARGS[@]}"; then
  log "setup_autobahn.sh failed"; exit 2
fi
PY2=$PREFIX/py2
CLIENT=$REPO/scripts/hixie76_client.py
[ -x "$PY2" ] || { log "no $PY2 after setup"; exit 2; }

WORK=$(mktemp -d /tmp/ratchet_sel-hixie76.XXXXXX)
SERVER_PID=""
SERVER_KIND=""
HOLD_PID=""
FAILED=0
CHECKS=0

cleanup() {
  local rc=$?
  if [ -n "$HOLD_PID" ] && kill -0 "$HOLD_PID" 2>/dev/null; then
    kill -TERM "$HOLD_PID" 2>/dev/null || true
  fi
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    log "stopping the $SERVER_KIND server (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

result() {   # result OK|FAILED LINE: one line on stdout, counted
  CHECKS=$((CHECKS + 1))
  [ "$1" = OK ] || FAILED=$((FAILED + 1))
  echo "$2"
}

client_lines() {   # the client's result lines from FILE, counted (READY is a signal, not a result)
  local line
  while IFS= read -r line; do
    [ "$line" = READY ] && continue
    case "$line" in
      *FAILED*) result FAILED "$line" ;;
      *) result OK "$line" ;;
    esac
  done < "$1"
}

start_server() {   # start_server echo|chat: sets SERVER_PID, PORT
  SERVER_KIND=$1
  local logfile=$WORK/$1-server.log
  (cd "$REPO" && exec python3 -m ratchet_sel "$1" --host 127.0.0.1 --port 0) >"$logfile" 2>&1 &
  SERVER_PID=$!
  PORT=""
  for _ in $(seq 150); do
    PORT=$(grep -o 'ws://127\.0\.0\.1:[0-9]*/' "$logfile" | head -n1 | sed 's/.*:\([0-9]*\)\//\1/' || true)
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$PORT" ]; then
    log "the $1 server did not log its ws://127.0.0.1:PORT/ line within 15 s:"
    sed 's/^/  /' "$logfile" >&2
    result FAILED "server $1: FAILED (did not start)"
    exit 1
  fi
  log "$1 server (pid $SERVER_PID) on ws://127.0.0.1:$PORT/"
}

stop_server() {   # stop_server: SIGTERM, must exit 0 within 10 s
  local rc=0 gone=0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 100); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then gone=1; break; fi
    sleep 0.1
  done
  if [ "$gone" = 0 ]; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    result FAILED "server $SERVER_KIND: SIGTERM FAILED (still running after 10 s; killed)"
  else
    wait "$SERVER_PID" || rc=$?
    if [ "$rc" = 0 ]; then
      result OK "server $SERVER_KIND: SIGTERM ok (exit 0)"
    else
      result FAILED "server $SERVER_KIND: SIGTERM FAILED (exit $rc)"
      tail -n 20 "$WORK/$SERVER_KIND-server.log" | sed 's/^/  /' >&2
    fi
  fi
  SERVER_PID=""
}

run_client() {   # run_client OUTFILE ARGS...: the client, bounded; returns its status
  local out=$1; shift
  local rc=0
  timeout -k 5 $((TIMEOUT + 20)) "$PY2" "$CLIENT" "$@" --timeout "$TIMEOUT" >"$out" || rc=$?
  return "$rc"
}

diagnostic() {   # diagnostic OUTFILE ARGS...: a --strip-content-length re-run, not counted
  local out=$1; shift
  [ "$DIAGNOSE" = 1 ] || return 0
  log "draft-76 check failed; DIAGNOSTIC re-run without the request's Content-Length header"
  run_client "$out" "$@" --strip-content-length 2>"$out.err" || true
  sed 's/^/DIAGNOSTIC (not counted): /' "$out"
}

URL() { echo "ws://127.0.0.1:$PORT/"; }
ORIGIN=http://127.0.0.1

# -- 1. echo ----------------------------------------------------------------------------
start_server echo
rc=0
run_client "$WORK/echo.out" echo "$(URL)" --origin "$ORIGIN" || rc=$?
client_lines "$WORK/echo.out"
if [ "$rc" != 0 ] && ! grep -q FAILED "$WORK/echo.out"; then
  result FAILED "echo client: FAILED (exit $rc without a result line)"
fi
if grep -q '^hixie76 .*FAILED' "$WORK/echo.out"; then
  diagnostic "$WORK/echo-diag.out" echo "$(URL)" --origin "$ORIGIN" --versions 0
fi

# -- 2. server shutdown with open connections ---------------------------------------------
"$PY2" "$CLIENT" hold "$(URL)" --origin "$ORIGIN" --timeout "$TIMEOUT" >"$WORK/hold.out" &
HOLD_PID=$!
ready=0
for _ in $(seq $((TIMEOUT * 10))); do
  if grep -qx READY "$WORK/hold.out"; then ready=1; break; fi
  kill -0 "$HOLD_PID" 2>/dev/null || break
  sleep 0.1
done
[ "$ready" = 1 ] || log "the hold client never got ready; stopping the server anyway"
stop_server
rc=0
for _ in $(seq $(((TIMEOUT + 20) * 10))); do kill -0 "$HOLD_PID" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$HOLD_PID" 2>/dev/null || true
wait "$HOLD_PID" || rc=$?
HOLD_PID=""
client_lines "$WORK/hold.out"
if [ "$rc" != 0 ] && ! grep -q FAILED "$WORK/hold.out"; then
  result FAILED "shutdown client: FAILED (exit $rc without a result line)"
fi

# -- 3. mixed-version chat --------------------------------------------------------------
start_server chat
rc=0
run_client "$WORK/chat.out" chat "$(URL)" --origin "$ORIGIN" || rc=$?
client_lines "$WORK/chat.out"
if [ "$rc" != 0 ] && ! grep -q FAILED "$WORK/chat.out"; then
  result FAILED "chat client: FAILED (exit $rc without a result line)"
fi
if grep -q 'hixie76 [^,]*FAILED' "$WORK/chat.out"; then
  diagnostic "$WORK/chat-diag.out" chat "$(URL)" --origin "$ORIGIN"
fi
stop_server

if [ "$FAILED" = 0 ]; then
  echo "hixie76.sh: $CHECKS result lines, all ok"
  rm -rf "$WORK"
  exit 0
fi
echo "hixie76.sh: $CHECKS result lines, $FAILED failed (server logs and client output in $WORK)"
exit 1
