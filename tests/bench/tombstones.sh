#!/usr/bin/env bash
# Deletions without rebuilds (docs/benchmarks.md, "Deletions without rebuilds"): not part
# of ctest. Builds (once, cached) an N x 1280-d index made from the real fashion44k
# embeddings, removes 1 % with tombstones, then compacts, which is what every removal used
# to cost; the same on a smaller index with database-side augmentation (k 20).
#   tests/bench/tombstones.sh [--build build] [--out /work/cache/tomb] [--n 200000]
#                             [--dba-n 10000] [--threads 2] [--source FILE]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
out=/work/cache/tomb
n=200000
dba_n=10000
threads=2
source_index=/work/cache/fashion44k-mobilenet.index
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --dba-n) dba_n=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --source) source_index=$2; shift 2 ;;
    *) echo "tombstones.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
grep "model name" /proc/cpuinfo | head -1
echo "load: $(cat /proc/loadavg)"
g++ -std=c++17 -O2 -I"$root/lib/include" "$root/tests/bench/tombstone_bench.cpp" "$build/lib/libimgsearch_core.a" \
  -lfmt -lxxhash -lblas -lpthread -o "$out/tombstone_bench"
# M 16 (the default), ef_construction 100 (as the issue 13 scale table) to keep the build
# within reach of two shared cores; search at the default ef 64.
/usr/bin/time -f "peak RSS %M KB, %e s wall" "$out/tombstone_bench" "$source_index" "$n" "$out/synthetic-$n.index" \
  "$threads" 16 100 "$dba_n" | tee "$out/tombstones-$n.json"
echo "load: $(cat /proc/loadavg)"
