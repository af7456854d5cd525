#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time over its seed corpus (meson test suite 'fuzz').
#   run_fuzz.sh NAME FUZZER SEED_MAKER SOURCE_DIR WORK_DIR [libFuzzer flags...]
# FUZZ_SECONDS (default 45) bounds the run. Seeds are regenerated from the fixtures into
# WORK_DIR/seeds-NAME (plus fuzz/seeds/NAME); new inputs go to WORK_DIR/corpus-NAME, which is
# kept between runs. Any finding (crash, sanitizer report, leak, timeout, out-of-memory, a huge
# allocation) fails the test and prints how to reproduce it.
set -euo pipefail
name=$1 fuzzer=$2 make_seeds=$3 src=$4 work=$5
shift 5
seconds=${FUZZ_SECONDS:-45}
seeds=$work/seeds-$name corpus=$work/corpus-$name artifacts=$work/artifacts-$name
rm -rf "$seeds" "$artifacts"
mkdir -p "$seeds" "$corpus" "$artifacts"
"$make_seeds" "$name" "$seeds"
if [ -d "$src/seeds/$name" ]; then cp "$src/seeds/$name"/* "$seeds"/; fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
  -print_final_stats=1 -artifact_prefix="$artifacts/" "$@" "$corpus" "$seeds" || status=$?

shopt -s nullglob
found=("$artifacts"/*)
if [ "$status" -ne 0 ] || [ ${#found[@]} -gt 0 ]; then
  echo "FINDING in $name (exit status $status). Reproduce with:"
  for f in "${found[@]}"; do
    echo "  $fuzzer $f"
    # The input itself, so that a CI log is enough to reproduce it.
    if [ "$(stat -c %s "$f")" -le 4096 ]; then echo "  base64: $(base64 -w0 "$f")"; fi
  done
  exit 1
fi
echo "$name: no finding in ${seconds} s; corpus $(ls "$corpus" | wc -l) new + $(ls "$seeds" | wc -l) seed inputs"
