#!/usr/bin/env bash
# Runs every engine test binary (tests/test_*, not the GStreamer or example tests) under valgrind
# memcheck, from a normal (non-sanitized) build in ./build-vg (debugoptimized: -O2 -g, for line
# numbers). Suppressions: tests/valgrind/libtorch.supp (third-party internals only).
#
#   scripts/memcheck.sh [-C BUILD_DIR] [TEST_NAME...]     e.g. scripts/memcheck.sh wav tokenizer
#
# A binary fails on any memcheck error, any definite leak, or a failing test. Only the test process
# is checked: the tools some tests start (voxcpm-synth, voxcpm-tokenize, ...) run untraced. Binaries too slow
# under memcheck (20-50x) run the gtest filter listed in `filter` below; VOXCPM_MEMCHECK_FULL=1 runs
# everything. Logs: BUILD_DIR/memcheck/<test>.{valgrind,out}.log. Ends with a table
# (test, result, errors, definitely lost, seconds, filter) and "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

build=build-vg
if [ "${1:-}" = "-C" ]; then build=$2; shift 2; fi
supp=$PWD/tests/valgrind/libtorch.supp

# gtest filters. generator/stream take 15-30 min whole under memcheck on a loaded 2-core machine:
# the filter keeps one golden case per model version and mode (zero-shot, clone, v2 reference),
# bf16, resampling, cancellation, first chunk, errors; left out are repeats of those paths,
# Stream.LongTextIsSplit* (41 segments: over 25 min alone; test_text_split covers the splitting)
# and Stream.ConcurrentRequests* (memcheck serialises threads; the ASan build runs it).
# tokenizer: its two timing tests (load < 5 s, encode < 1 s) cannot hold under memcheck; the real
# tokenizers still load and encode in the other RealTokenizer tests.
declare -A filter=(
  [generator]='GeneratorV15.Clone:GeneratorV15.Bfloat16*:GeneratorV15.BadInput*:GeneratorV1.ZeroShot:GeneratorV2.ReferenceAndContinuation:GeneratorV2.VoiceDesign*:GeneratorV2.PromptAtAnotherRate*:ModelLoad.*'
  [stream]='Stream.V15CloneEqualsWhole:Stream.V1ZeroShotEqualsWhole:Stream.V2ReferenceAndContinuationEqualsWhole:Stream.CancelFromAnotherThread*:Stream.FirstChunkComesAfterPrefill*'
  [tokenizer]='-Models/RealTokenizer.MatchesHuggingFaceIds/*:Models/RealTokenizer.LongTextIsFast/*'
)

command -v valgrind >/dev/null || { echo "memcheck: valgrind missing (scripts/setup.sh installs it)" >&2; exit 1; }
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Dbuildtype=debugoptimized || exit 1
fi
sanitize=$(meson introspect "$build" --buildoptions |
  python3 -c 'import json, sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "b_sanitize"][0])')
[ "$sanitize" = none ] || { echo "memcheck: $build is built with -Db_sanitize=$sanitize; valgrind needs a normal build" >&2; exit 1; }

# name <TAB> executable <TAB> env assignments (shell-quoted), for the engine tests only.
tests=$(meson introspect "$build" --tests | python3 -c '
import json, os, shlex, sys
root = os.path.realpath(sys.argv[1])
for t in json.load(sys.stdin):
    exe = t["cmd"][0]
    if os.path.dirname(os.path.realpath(exe)) != os.path.join(root, "tests") or t["protocol"] != "gtest":
        continue
    env = " ".join(shlex.quote(k + "=" + v) for k, v in sorted(t["env"].items()))
    print(t["name"], exe, env, sep="\t")' "$build") || exit 1
if [ $# -gt 0 ]; then
  tests=$(printf '%s\n' "$tests" | awk -F'\t' -v want=" $* " 'index(want, " " $1 " ")')
fi
[ -n "$tests" ] || { echo "memcheck: no engine tests selected" >&2; exit 1; }

# The engine tests run tools/ binaries (not traced by valgrind): build those too.
targets=$(cut -f2 <<<"$tests" | sed "s|^$(realpath "$build")/||; s|^$build/||")
ninja -C "$build" -j "${VOXCPM_MEMCHECK_JOBS:-1}" $targets tools/voxcpm-synth tools/voxcpm-tokenize \
  tools/voxcpm-make-model tools/voxcpm-bench || { echo "0 passed, 1 failed"; exit 1; }

logs=$build/memcheck
mkdir -p "$logs"
# libgomp threads spin while waiting; under valgrind's one-thread-at-a-time scheduler that spin
# dominates the run time, so they sleep instead (the engine's thread count is unchanged).
export OMP_WAIT_POLICY=passive
passed=0 failed=0
table=$(printf '%-14s %-6s %7s %15s %8s  %s' test result errors "definitely lost" seconds filter)
while IFS=$'\t' read -r name exe envs; do
  f=${filter[$name]:-}
  [ "${VOXCPM_MEMCHECK_FULL:-0}" = 1 ] && f=
  args=()
  [ -n "$f" ] && args+=("--gtest_filter=$f")
  echo "memcheck: $name ${f:+(filter $f)}"
  start=$(date +%s)
  eval "env $envs" valgrind --tool=memcheck --error-exitcode=1 --leak-check=full \
    --errors-for-leak-kinds=definite --suppressions="$supp" --num-callers=40 --gen-suppressions=all \
    --log-file="$logs/$name.valgrind.log" "$exe" "${args[@]}" >"$logs/$name.out.log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$logs/$name.valgrind.log" | tail -1)
  lost=$(sed -n 's/.*definitely lost: \([0-9,]* bytes in [0-9,]* blocks\).*/\1/p' "$logs/$name.valgrind.log" | tail -1)
  [ -n "$lost" ] || lost="0 bytes"  # no leak summary: nothing was allocated and lost
  if [ $rc -eq 0 ] && [ "${errors:-x}" = 0 ]; then result=ok; passed=$((passed + 1)); else result=FAIL; failed=$((failed + 1)); fi
  [ $rc -ne 0 ] && tail -5 "$logs/$name.out.log"
  table+=$'\n'$(printf '%-14s %-6s %7s %15s %8s  %s' "$name" "$result" "${errors:-?}" "${lost% in*}" "$secs" "${f:-all}")
done <<<"$tests"

echo "$table"
echo "logs: $logs"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
