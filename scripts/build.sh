#!/usr/bin/env bash
# Configures and builds imgsearch (Release) into build/. Extra arguments go to cmake.
#   scripts/build.sh          the library and the command (what scripts/quickstart.sh needs)
#   scripts/build.sh --test   also the test suite, with the test-only packages
set -euo pipefail
cd "$(dirname "$0")/.."
TESTS=OFF
if [ "${1:-}" = "--test" ]; then TESTS=ON; shift; fi
if [ $TESTS = ON ]; then bash scripts/install-deps.sh --test; else bash scripts/install-deps.sh; fi
# With ccache installed (the test packages include it), compilations are cached in
# build/.ccache, keyed on paths relative to the repository, so another copy of the
# repository built with the same CCACHE_DIR reuses them (the quickstart test does).
launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=)
if command -v ccache >/dev/null && [ "${IMGSEARCH_CCACHE:-1}" != 0 ]; then
  export CCACHE_DIR=${CCACHE_DIR:-$PWD/build/.ccache} CCACHE_BASEDIR=$PWD
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DIMGSEARCH_BUILD_TESTS=$TESTS "${launcher[@]}" "$@" >/dev/null
cmake --build build -j"$(nproc)"
