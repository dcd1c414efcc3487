#!/usr/bin/env bash
# CI step for issue 14 (hardening, command-line limits, Prometheus metrics): runs the tests of
# the metrics endpoint (checked with prometheus_client's own parser), the shutdown and the
# split-invariance properties, and the command-line options, in a venv of its own, and fails
# if any of them was skipped (prometheus_client missing, not Linux, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=/tmp/ratchet_sel-ci-metrics/venv
if [ ! -x "$VENV/bin/python3" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python3" -m pip install -q --disable-pip-version-check pytest pytest-timeout prometheus_client
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
PYTHONPATH="$PWD" "$VENV/bin/python3" -m pytest -q -rs -p no:cacheprovider \
    tests/test_metrics.py tests/test_shutdown.py tests/test_split_invariance.py tests/test_cli_options.py \
    tests/test_http_parser.py 2>&1 | tee "$out" || status=$?
if grep -q "SKIPPED" "$out"; then
    echo "ci_metrics: some tests were skipped; this step needs them all to run" >&2
    exit 1
fi
exit $status
