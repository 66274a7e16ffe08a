#!/usr/bin/env bash
# Configures and builds imgsearch (Release) into build/. Extra arguments go to cmake.
#   scripts/build.sh          the library and the command (what scripts/quickstart.sh needs)
#   scripts/build.sh --test   also the test suite, with the test-only packages
set -euo pipefail
cd "$(dirname "$0")/.."
TESTS=OFF
if [ "${1:-}" = "--test" ]; then TESTS=ON; shift; fi
if [ $TESTS = ON ]; then bash scripts/install-deps.sh --test; else bash scripts/install-deps.sh; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DIMGSEARCH_BUILD_TESTS=$TESTS "$@" >/dev/null
cmake --build build -j"$(nproc)"
