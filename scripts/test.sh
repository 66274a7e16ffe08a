#!/usr/bin/env bash
# The test command: installs what is missing (test-only packages too), builds, and runs
# the whole suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh --test
cd build
ctest --output-on-failure -j"$(nproc)" "$@"
