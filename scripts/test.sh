#!/usr/bin/env bash
# Sets up the machine, builds, and runs the whole test suite. Ends with "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
bash scripts/build.sh || { echo "0 passed, 1 failed"; echo "build failed" >&2; exit 1; }
meson test -C build --print-errorlogs --num-processes "${VOXCPM_TEST_JOBS:-1}" "$@"
status=$?
python3 scripts/test_summary.py build/meson-logs/testlog.json || status=1
exit $status
