#!/usr/bin/env bash
# The `imgsearch serve` benchmark, one command (docs/benchmarks.md, "Serve"): wrk against
# imgsearch serve and a seed-style Flask server on fashion44k, in the same run.
#   tests/bench/bench_serve.sh [--seconds 10] [--quick] [--index FILE] [--json OUT]
# Needs wrk, python3-flask and the fashion44k index (/work/cache/fashion44k-mobilenet.index
# or --index). Not part of ctest.
set -euo pipefail
exec nice -n 10 /usr/bin/python3 "$(dirname "$0")/bench_serve.py" "$@"
