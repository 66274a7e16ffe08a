#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang-14, ASan + UBSan; tests/fuzz/) and runs each for a
# bounded time, starting from the seed corpus in tests/fuzz/corpus/.
#
#   scripts/fuzz.sh [SECONDS_EACH] [FUZZER...]     # default: 60 s each, all four
#
# Harnesses: fuzz_index_loader (load_index), fuzz_features_loader (read_features_file),
# fuzz_image_decode (decode_image_memory), fuzz_http_request (serve's query-string, multipart
# and refine-JSON parsing). New interesting inputs go to
# build-fuzz/corpus/NAME (not into the source tree); a crash leaves its input in
# build-fuzz/artifacts/ and makes this script exit 1. Reproduce one with
#   build-fuzz/fuzz/NAME build-fuzz/artifacts/NAME-crash-...
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (parallel build jobs).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
fuzzers=("$@")
[ ${#fuzzers[@]} -gt 0 ] || fuzzers=(fuzz_index_loader fuzz_features_loader fuzz_image_decode fuzz_http_request)
build=${FUZZ_BUILD_DIR:-build-fuzz}
cxx=$(command -v clang++-14 || command -v clang++ || true)
[ -n "$cxx" ] || { echo "fuzz.sh: needs clang++ (Debian: apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }

cmake -S . -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGSEARCH_FUZZ=ON \
  -DIMGSEARCH_BUILD_APPS=OFF -DIMGSEARCH_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target "${fuzzers[@]}" -j"${FUZZ_JOBS:-$(nproc)}"

seed_dir() {
  case $1 in
    fuzz_index_loader) echo tests/fuzz/corpus/index ;;
    fuzz_features_loader) echo tests/fuzz/corpus/features ;;
    fuzz_image_decode) echo tests/fuzz/corpus/image ;;
    fuzz_http_request) echo tests/fuzz/corpus/http ;;
  esac
}

# libFuzzer truncates longer seeds to -max_len: the index seeds with crop thumbnails
# (tests/fuzz/make_seeds.cpp) are up to 92 KB, and their later sections must be reached.
max_len() {
  case $1 in
    fuzz_index_loader) echo 131072 ;;
    *) echo 65536 ;;
  esac
}

mkdir -p "$build/artifacts" "$build/logs"
# Leaks are reported (detect_leaks=1); allocator_may_return_null lets a refused huge
# allocation surface as an error instead of aborting, but the -rss_limit_mb and
# -malloc_limit_mb below still flag any single allocation above 512 MB as a bug.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
printf '%-22s %10s %8s %s\n' fuzzer executions corpus result >"$build/logs/summary.txt"
for name in "${fuzzers[@]}"; do
  corpus="$build/corpus/$name"
  mkdir -p "$corpus"
  log="$build/logs/$name.log"
  set +e
  "$build/fuzz/$name" "$corpus" "$(seed_dir "$name")" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len="$(max_len "$name")" -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$name-" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  files=$(find "$corpus" -type f | wc -l)
  if [ $rc -eq 0 ]; then
    result=ok
  else
    result="FAILED (exit $rc; see $log)"
    status=1
    grep -E 'ERROR:|runtime error:|unexpected error|SUMMARY:' "$log" | head -5 >&2 || true
  fi
  printf '%-22s %10s %8s %s\n' "$name" "${execs:-?}" "$files" "$result" >>"$build/logs/summary.txt"
done
cat "$build/logs/summary.txt"
exit $status
