#!/usr/bin/env bash
# The whole test suite (unit + CLI) built with AddressSanitizer and UndefinedBehaviorSanitizer
# (gcc, -DIMGSEARCH_SANITIZE=ON) in build-asan/, run with ctest. Extra arguments go to ctest
# (e.g. -R unit.). The packaging tests (quickstart on a copy of the repository, install,
# .deb) are left out: they build and run Release binaries of their own, and a program built
# against the sanitized library would need the sanitizer runtime; the Release suite runs them.
#
# The library is built at -O1 -g1, the CLI and the unit tests' own code at -O0 (CMakeLists.txt:
# instrumented -O2 -g took six times Release's compile time).
#
# LibTorch itself is not instrumented; our code around it is. Runtime options, and why:
#  - detect_leaks=0: LeakSanitizer reports the allocations LibTorch, OpenMP and the
#    CPython-free TorchScript runtime make once per process and never free (operator
#    registries, thread pools). Leaks in our own code are caught by the fuzzers, which run
#    with leak detection on and never load LibTorch (scripts/fuzz.sh).
#  - halt_on_error / abort_on_error / UBSan halt_on_error: any report fails the test
#    (the build also uses -fno-sanitize-recover=undefined).
#  - verify_asan_link_order=0 is not needed: the executables link libasan first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test
build=${SANITIZE_BUILD_DIR:-build-asan}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGSEARCH_SANITIZE=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# The CLI tests' checks of ranking quality on whole datasets (at_dataset_scale in
# tests/cli/lib.sh) are the Release run's: under ASan they cost most of CI's time and run
# no code the smaller cases beside them do not.
export IMGSEARCH_TEST_SANITIZED=1
cd "$build"
ctest --output-on-failure -j"$(nproc)" -E '^cli\.(quickstart|install|package)$' "$@"
