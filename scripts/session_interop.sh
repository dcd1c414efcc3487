#!/usr/bin/env bash
# Session interop: real Flask and Django create logged-in sessions, and the
# WebSocket server of this checkout reads the same data through
# SessionProvider; tampered, expired and foreign cookies give no session.
#
#   bash scripts/session_interop.sh
#
# Flask and Django go into a venv under /tmp/ratchet_sel-session-interop
# (never into the repo or the library's dependencies).  The WebSocket server
# runs under the system python3 (stdlib only) on 127.0.0.1 with a free port.
# Prints one "ok"/"FAIL" line per check and exits non-zero on any failure.
#
# Environment knobs (optional):
#   RATCHET_SEL_SESSION_INTEROP_DIR  work dir (default /tmp/ratchet_sel-session-interop)
#   RATCHET_SEL_SERVER_PYTHON        interpreter for the server (default python3)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK_DIR="${RATCHET_SEL_SESSION_INTEROP_DIR:-/tmp/ratchet_sel-session-interop}"
VENV_DIR="$WORK_DIR/venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1

mkdir -p "$WORK_DIR"
INSTALL_LOG="$WORK_DIR/install.log"
: >"$INSTALL_LOG"
if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    echo "creating venv $VENV_DIR" >&2
    if ! timeout 300 python3 -m venv "$VENV_DIR" >>"$INSTALL_LOG" 2>&1; then
        echo "session interop: FAIL: could not create the venv (see $INSTALL_LOG)"; tail -n 20 "$INSTALL_LOG" >&2; exit 1
    fi
fi
if ! timeout 600 "$VENV_DIR/bin/python" -m pip install --quiet -r "$HERE/session_interop/requirements.txt" \
        </dev/null >>"$INSTALL_LOG" 2>&1; then
    echo "session interop: FAIL: could not install Flask and Django (see $INSTALL_LOG)"
    tail -n 20 "$INSTALL_LOG" >&2
    exit 1
fi

rm -rf "$WORK_DIR/run"
exec timeout -k 5 300 "$VENV_DIR/bin/python" "$HERE/session_interop/check.py" \
    --server-python "${RATCHET_SEL_SERVER_PYTHON:-python3}" --work "$WORK_DIR/run"
