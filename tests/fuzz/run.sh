#!/usr/bin/env bash
# Builds the libFuzzer targets (clang 14, ASan + UBSan) and runs each one for a bounded time
# on a copy of its seed corpus; exits non-zero if any run ends in a crash, leak or timeout.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET [TARGET...]]     (default 60, every target)
#
# Environment: DROVER_FUZZ_BUILD_DIR (default build-fuzz), DROVER_FUZZ_PARALLEL (targets run
# at once, default 1; the fuzzers are single processes), DROVER_FUZZ_NO_BUILD=1 (use the
# binaries as built). The repository's corpora are never written: each run fuzzes a copy in
# BUILD/fuzz-work/TARGET/, where its log and any crashing input (artifacts/) stay.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
shift || true
build=${DROVER_FUZZ_BUILD_DIR:-build-fuzz}
parallel=${DROVER_FUZZ_PARALLEL:-1}

if [ "${DROVER_FUZZ_NO_BUILD:-0}" != 1 ]; then
  # CC/CXX choose the compiler when the build directory is first configured.
  CC=clang-14 CXX=clang++-14 DROVER_BUILD_DIR="$build" DROVER_BUILD_TYPE=Fuzz \
    DROVER_BUILD_TARGETS=drover_fuzz DROVER_EXTRA_PACKAGES="clang-14 libclang-rt-14-dev" \
    DROVER_CMAKE_ARGS="-DDROVER_FUZZ=ON -DDROVER_BUILD_TESTS=OFF -DDROVER_BUILD_BENCH=OFF" \
    bash tools/bootstrap.sh
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in tests/fuzz/*_fuzz.cpp; do
    t=$(basename "$f" .cpp)
    targets+=("${t%_fuzz}")
  done
fi

# Inputs larger than a real one would be only slow: a config or a report is a few KiB, a
# command line or a request a few hundred bytes, a size or a signal name a few.
max_len() {
  case $1 in
    config | seccomp | bench_json) echo 16384 ;;
    units) echo 256 ;;
    *) echo 2048 ;;
  esac
}

work=$build/fuzz-work
# One run: fresh copy of the corpus, then libFuzzer for `seconds`.
run_one() {
  local t=$1 dir=$work/$1
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp -r "tests/fuzz/corpus/$t/." "$dir/corpus/"
  local args=("$dir/corpus" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10
              -max_len="$(max_len "$t")" -artifact_prefix="$dir/artifacts/" -print_final_stats=1)
  [ -f "tests/fuzz/dict/$t.dict" ] && args+=(-dict="tests/fuzz/dict/$t.dict")
  local start=$SECONDS rc=0
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$build/tests/fuzz/${t}_fuzz" "${args[@]}" >"$dir/log" 2>&1 || rc=$?
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  echo "$t $rc ${execs:-0} $((SECONDS - start))" >"$dir/result"
}

running=0
for t in "${targets[@]}"; do
  [ -x "$build/tests/fuzz/${t}_fuzz" ] || { echo "fuzz: no target $t in $build" >&2; exit 2; }
  run_one "$t" &
  running=$((running + 1))
  if ((running >= parallel)); then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=0
total=0
printf '%-16s %12s %8s  %s\n' TARGET EXECUTIONS SECONDS RESULT
for t in "${targets[@]}"; do
  read -r _ rc execs secs <"$work/$t/result"
  total=$((total + execs))
  if [ "$rc" = 0 ]; then
    printf '%-16s %12s %8s  ok\n' "$t" "$execs" "$secs"
  else
    failed=1
    printf '%-16s %12s %8s  FAILED (exit %s): see %s\n' "$t" "$execs" "$secs" "$rc" "$work/$t/log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz: property)|runtime error' "$work/$t/log" | head -5 | sed 's/^/    /'
    ls "$work/$t/artifacts/" | sed 's/^/    artifact: /'
  fi
done
echo "fuzz: $total executions in total"
exit "$failed"
