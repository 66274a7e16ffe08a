#!/usr/bin/env bash
# The imgsearch speed benchmark, one command: imgsearch against the Python pipelines on
# the same images in the same run (docs/benchmarks.md). Not part of ctest.
#   tests/bench/run.sh                   # everything, with build/bin/imgsearch (~20-30 min)
#   tests/bench/run.sh --quick           # a smoke run (a few minutes)
#   tests/bench/run.sh --build build-x --only extract,busy
# Needs Debian's python3-torch, python3-torchvision, python3-pil, python3-numpy and the
# 'time' package (/usr/bin/time); data from ../shared (Corel-1k, fashion44k, MobileNetV2).
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/bench.py" "$@"
