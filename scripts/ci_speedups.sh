#!/usr/bin/env bash
# CI: build the optional C accelerator (ratchet_sel/ops/_speedups.c), check that it
# is the implementation in use, then run the whole test suite twice: with it,
# and with RATCHET_SEL_NO_SPEEDUPS=1 (the pure-Python reference path).
# Self-contained: installs a compiler and Python's headers when missing, and
# the test extra into its own venv.  Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 DEBIAN_FRONTEND=noninteractive

need_apt=()
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc)
include_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[ -f "$include_dir/Python.h" ] || need_apt+=(python3-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq "${need_apt[@]}"
fi

VENV=/tmp/ratchet_sel-ci-speedups/venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip setuptools >/dev/null

# The README's install command (with the test extra) builds the accelerator in place when it can.
"$PY" -m pip install -q -e ".[test]"
unset RATCHET_SEL_NO_SPEEDUPS
"$PY" - <<'PYEOF'
import ratchet_sel
from ratchet_sel import accelerator
print("masking:", accelerator.status)
assert ratchet_sel.speedups_enabled, "the C accelerator was not built or not imported"
PYEOF
RATCHET_SEL_NO_SPEEDUPS=1 "$PY" -c 'import ratchet_sel; assert not ratchet_sel.speedups_enabled'

echo "== test suite with the C accelerator"
# The accelerator's own comparisons must run here, not skip.
"$PY" -m pytest -q -p no:cacheprovider -rs tests/test_speedups.py | tee /tmp/ratchet_sel-ci-speedups/speedups.log
if grep -q "SKIPPED" /tmp/ratchet_sel-ci-speedups/speedups.log; then
    echo "tests/test_speedups.py skipped tests although the accelerator is built" >&2
    exit 1
fi
# The whole suite with the accelerator is .ci/run's last step (the README's command builds it in
# place), so it is not run a second time here.

echo "== test suite on the pure-Python path (RATCHET_SEL_NO_SPEEDUPS=1)"
RATCHET_SEL_NO_SPEEDUPS=1 "$PY" -m pytest -q -p no:cacheprovider
