#!/usr/bin/env bash
# Sets up the machine, builds, and runs the whole test suite. Ends with "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
bash scripts/build.sh || { echo "0 passed, 1 failed"; echo "build failed" >&2; exit 1; }
meson test -C build --print-errorlogs --num-processes "${VOXCPM_TEST_JOBS:-1}" "$@"
status=$?
logs=(build/meson-logs/testlog.json)

# The libFuzzer targets (fuzz/README.md): a separate clang build, each target run FUZZ_SECONDS
# (default 45) over its seed corpus, two at a time. Skipped when tests are named or VOXCPM_FUZZ=0.
if [ $# -eq 0 ] && [ "${VOXCPM_FUZZ:-1}" != 0 ]; then
  rm -f build-fuzz/meson-logs/testlog.json  # a failed build must not leave an old log to count
  if { [ -f build-fuzz/build.ninja ] ||
       CC=clang-14 CXX=clang++-14 meson setup build-fuzz -Dfuzzing=true --buildtype=debugoptimized; } &&
     ninja -C build-fuzz; then
    meson test -C build-fuzz --suite fuzz --print-errorlogs --num-processes 2 || status=1
  else
    echo "fuzz build failed" >&2
    status=1
  fi
  logs+=(build-fuzz/meson-logs/testlog.json)
fi
python3 scripts/test_summary.py "${logs[@]}" || status=1
exit $status
