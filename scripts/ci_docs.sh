#!/usr/bin/env bash
# The documentation checks of CI, on a fresh machine or this one:
#   1. every ```python block of README.md and docs/**/*.md runs (scripts/check_doc_blocks.py;
#      blocks that need Flask or Django run too: --require-all turns a missing module into a failure),
#   2. docs/api.md is what scripts/gen_api_reference.py generates from the source (--check),
#   3. links into the source ([`Name`](../ratchet_sel/x.py#L42)) point at Name's line
#      (scripts/check_code_links.py; --fix repairs them),
#   4. mypy ratchet_sel passes with the default settings.
#
#   bash scripts/ci_docs.sh
#
# mypy, Flask and Django go into a venv under /tmp/ratchet_sel-docs (never into the repo or the
# library's dependencies); the blocks import ratchet_sel from this checkout, with nothing installed.
# All four checks run even when one fails; the exit status is non-zero if any failed.
#
# Environment knobs (optional):
#   RATCHET_SEL_DOCS_DIR   work dir (default /tmp/ratchet_sel-docs)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
WORK_DIR="${RATCHET_SEL_DOCS_DIR:-/tmp/ratchet_sel-docs}"
VENV_DIR="$WORK_DIR/venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

mkdir -p "$WORK_DIR"
INSTALL_LOG="$WORK_DIR/install.log"
: >"$INSTALL_LOG"
if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    echo "creating venv $VENV_DIR" >&2
    if ! timeout 300 python3 -m venv "$VENV_DIR" >>"$INSTALL_LOG" 2>&1; then
        echo "docs: FAIL: could not create the venv (see $INSTALL_LOG)"; tail -n 20 "$INSTALL_LOG" >&2; exit 1
    fi
fi
if ! timeout 600 "$VENV_DIR/bin/python" -m pip install --quiet mypy -r "$HERE/session_interop/requirements.txt" \
        </dev/null >>"$INSTALL_LOG" 2>&1; then
    echo "docs: FAIL: could not install mypy, Flask and Django (see $INSTALL_LOG)"
    tail -n 20 "$INSTALL_LOG" >&2
    exit 1
fi

cd "$ROOT" || exit 1
failed=()
echo "--- code blocks of README.md and docs/"
timeout -k 5 900 "$VENV_DIR/bin/python" scripts/check_doc_blocks.py --require-all || failed+=("code blocks")
echo "--- API reference (docs/api.md) up to date"
timeout -k 5 120 "$VENV_DIR/bin/python" scripts/gen_api_reference.py --check || failed+=("API reference")
echo "--- links into the source point at the right lines"
timeout -k 5 120 "$VENV_DIR/bin/python" scripts/check_code_links.py || failed+=("code links")
echo "--- mypy ratchet_sel"
timeout -k 5 600 "$VENV_DIR/bin/python" -m mypy ratchet_sel || failed+=("mypy")

if [ ${#failed[@]} -gt 0 ]; then
    printf 'docs: FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "docs: all checks passed"
