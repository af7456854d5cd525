#!/usr/bin/env bash
# Builds gst-voxcpm with AddressSanitizer + UndefinedBehaviorSanitizer (and LeakSanitizer) in
# ./build-asan and runs the whole test suite under them. Any sanitizer report fails its test
# (runtime options: tests/sanitizer/meson.build). Ends like scripts/test.sh with
# "N passed, N failed, N skipped", then the build and test wall times.
#
#   scripts/sanitize.sh [meson test arguments, e.g. a test name or --suite gst]
#
# VOXCPM_SANITIZE_JOBS limits ninja's parallel jobs; VOXCPM_TEST_JOBS runs tests in parallel.
set -uo pipefail
cd "$(dirname "$0")/.."
build=build-asan

bash scripts/setup.sh || exit 1
t0=$(date +%s)
if [ ! -f "$build/build.ninja" ]; then
  # -O2 -g: sanitizer reports with file:line; b_lundef=false because the plugin is a module whose
  # sanitizer symbols come from the runtime of the process that loads it.
  meson setup "$build" -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false ||
    { echo "0 passed, 1 failed"; exit 1; }
fi
ninja -C "$build" ${VOXCPM_SANITIZE_JOBS:+-j "$VOXCPM_SANITIZE_JOBS"} || { echo "0 passed, 1 failed"; echo "build failed" >&2; exit 1; }
t1=$(date +%s)

# Sanitized code runs 2-4x slower: the per-test timeouts of meson.build are tripled.
meson test -C "$build" --print-errorlogs --timeout-multiplier 3 --num-processes "${VOXCPM_TEST_JOBS:-1}" "$@"
status=$?
t2=$(date +%s)
python3 scripts/test_summary.py "$build/meson-logs/testlog.json" || status=1
echo "sanitize: build $((t1 - t0)) s, tests $((t2 - t1)) s ($build, -Db_sanitize=address,undefined)"
exit $status
