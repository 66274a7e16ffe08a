#!/usr/bin/env bash
# Start-up of a long-running subcommand (docs/benchmarks.md, "Start-up: the OpenMP wait
# policy"): `imgsearch index --help` loads and initialises LibTorch, then exits. Runs,
# interleaved in the same minutes: this build as it is (the wait policy given to libgomp
# however omp_env.cpp does it), the same binary with the variables already set by the user
# (nothing to do: the floor), and, with --compare BIN, another binary (for example one
# configured with -DIMGSEARCH_OMP_ENV_BY_GETENV=OFF, which restarts from .preinit_array).
#   tests/bench/startup.sh [--build build] [--runs 12] [--compare BIN]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
runs=12
compare=""
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --compare) compare=$2; shift 2 ;;
    *) echo "startup.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
unset OMP_WAIT_POLICY GOMP_SPINCOUNT
bin=$build/bin/imgsearch
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
grep "model name" /proc/cpuinfo | head -1
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" -v index -i "$out/none.index" 2>&1 | grep OpenMP || true
for r in $(seq "$runs"); do
  /usr/bin/time -a -o "$out/this" -f "%e %U %S" "$bin" index --help >/dev/null
  /usr/bin/time -a -o "$out/user-set" -f "%e %U %S" env OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=3000 "$bin" index --help >/dev/null
  [ -n "$compare" ] && /usr/bin/time -a -o "$out/compare" -f "%e %U %S" "$compare" index --help >/dev/null
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-44s %8s %8s\n" "$runs runs each, means" "wall s" "CPU s"
for f in this compare user-set; do
  [ -f "$out/$f" ] || continue
  case $f in
    this) label="this build ($bin)" ;;
    compare) label="--compare ($compare)" ;;
    user-set) label="variables set by the user (no work)" ;;
  esac
  awk -v label="$label" '{w += $1; c += $2 + $3; n++} END {printf "%-44s %8.3f %8.3f\n", label, w / n, c / n}' "$out/$f"
done
