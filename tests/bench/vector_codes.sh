#!/usr/bin/env bash
# Compact vectors (docs/benchmarks.md, "A million images, int8 and shards (issue 13)"): not
# part of ctest. For each size N (default 50k and 200k; two sizes give the per-vector slope
# that the 10^6 projection uses) and each of f32, f16 and int8: build an N x 1280-d index
# made from the real fashion44k embeddings (vector_codes_bench.cpp says how), then in a
# fresh process load it and run 500 queries (RSS, recall@10 against exact fp32, p50/p99 at
# ef 16..128). On the largest N: add 10k, remove 10k, and a cold `imgsearch query` taken
# apart (process start with LibTorch, index load, model load + one image).
# With --pca D the 1280-d vectors are projected to D dimensions first (`learn --pca --dim D`
# fitted on the 44k real vectors of a copy of the source; every index built then carries
# that projection, and recall@10 is still against exact fp32 search of the 1280-d vectors).
#   tests/bench/vector_codes.sh [--build build] [--out /work/cache/compact/bench]
#        [--sizes "50000 200000"] [--threads 2] [--source /work/cache/f44k/f44k.index] [--no-extras]
#        [--codes "f32 f16 int8"] [--pca D] [--reuse] [--compare ROOT] [--cold-runs 3]
#        [--cold-sizes "N ..."]
# The cold query runs on the largest N unless --cold-sizes names others (each one of --sizes).
# With --reuse an index already built in --out by an earlier run of the same options is
# served and timed again instead of rebuilt (its build line is then missing from the log).
# With --compare ROOT (another checkout, built in ROOT/build) the largest indexes are also
# served by that checkout's library and queried cold by its binary, interleaved with this
# one's, in the same sitting: a before/after on the same files.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
out=/work/cache/compact/bench
sizes="50000 200000"
threads=2
source_index=/work/cache/f44k/f44k.index
nq=500
extras=1
codes_list="f32 f16 int8"
pca=0
reuse=0
compare=""
cold_runs=3
cold_sizes=""
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --source) source_index=$2; shift 2 ;;
    --no-extras) extras=0; shift ;;  # builds and serves only: no cold query, add or remove
    --codes) codes_list=$2; shift 2 ;;
    --pca) pca=$2; shift 2 ;;
    --reuse) reuse=1; shift ;;
    --compare) compare=$(cd "$2" && pwd); shift 2 ;;
    --cold-runs) cold_runs=$2; shift 2 ;;
    --cold-sizes) cold_sizes=$2; shift 2 ;;
    *) echo "vector_codes.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE
log=$out/results.jsonl
: > "$log"
grep "model name" /proc/cpuinfo | head -1
echo "load: $(cat /proc/loadavg)"
g++ -std=c++17 -O2 -I"$root/lib/include" "$root/tests/bench/vector_codes_bench.cpp" "$build/lib/libimgsearch_core.a" \
  -lfmt -lxxhash -lblas -lpthread -o "$out/vector_codes_bench"
bench=$out/vector_codes_bench
if [ -n "$compare" ]; then
  g++ -std=c++17 -O2 -I"$compare/lib/include" "$compare/tests/bench/vector_codes_bench.cpp" \
    "$compare/build/lib/libimgsearch_core.a" -lfmt -lxxhash -lblas -lpthread -o "$out/vector_codes_bench.compare"
  echo "compare: $compare ($(git -C "$compare" log --oneline -1))"
fi
tag=""
if [ "$pca" != 0 ]; then
  cp "$source_index" "$out/source-pca$pca.index"
  "$build/bin/imgsearch" learn -i "$out/source-pca$pca.index" --pca --dim "$pca" | tee -a "$out/learn.log"
  source_index=$out/source-pca$pca.index
  tag=-pca$pca
fi
# /usr/bin/time's numbers for one command as JSON: wall, CPU (user + system), peak RSS.
timed() {  # timed LABEL CMD...
  local label=$1; shift
  /usr/bin/time -f "{\"time\": \"$label\", \"wall_s\": %e, \"cpu_s\": %U + %S, \"peak_rss_kb\": %M}" -o "$out/time.txt" "$@"
  sed -E 's/"cpu_s": ([0-9.]+) \+ ([0-9.]+)/"cpu_s": \1, "cpu_sys_s": \2/' "$out/time.txt" | tee -a "$log"
}
largest=0
for n in $sizes; do
  [ "$n" -gt "$largest" ] && largest=$n
  [ "$reuse" = 1 ] && [ -s "$out/truth-$n.bin" ] && [ -s "$out/truth-$n.bin.queries" ] || "$bench" truth "$source_index" "$n" "$nq" "$out/truth-$n.bin" >> "$log"
  for codes in $codes_list; do
    # M 16, ef_construction 100 (as the tombstone bench) to keep 200k within reach of two
    # shared cores; the serving RSS does not depend on ef_construction.
    if [ "$reuse" = 1 ] && [ -s "$out/$codes$tag-$n.index" ]; then
      echo "reusing $out/$codes$tag-$n.index ($(date -r "$out/$codes$tag-$n.index" '+%F %R'))"
    else
      timed "build $codes$tag $n" "$bench" build "$source_index" "$n" "$codes" "$out/$codes$tag-$n.index" "$threads" 16 100 | tee -a "$log"
    fi
    "$bench" serve "$source_index" "$out/$codes$tag-$n.index" "$nq" "$out/truth-$n.bin" | tee -a "$log"
    if [ -n "$compare" ] && [ "$n" = "$(echo $sizes | tr ' ' '\n' | sort -n | tail -1)" ]; then
      "$out/vector_codes_bench.compare" serve "$source_index" "$out/$codes$tag-$n.index" "$nq" "$out/truth-$n.bin" |
        sed 's/^{/{"build": "compare", /' | tee -a "$log"
    fi
  done
done

if [ "$extras" = 1 ]; then
# Cold `imgsearch query`, taken apart; each command --cold-runs times (the file in the page cache).
img=$(find "$root/../shared/datasets/fashion44k/images" -name '*.jpg' -print -quit)
imgsearch=$build/bin/imgsearch
"$bench" build "$source_index" 1000 f32 "$out/tiny.index" "$threads" 16 100 > /dev/null
[ -n "$cold_sizes" ] || cold_sizes=$largest
for r in $(seq "$cold_runs"); do
  timed "start (--version)" "$imgsearch" --version > /dev/null
  timed "query tiny index (start + model + 1 image)" "$imgsearch" query -i "$out/tiny.index" "$img" -k 10 > /dev/null
  for n in $cold_sizes; do
    for codes in $codes_list; do
      timed "info $codes$tag $n (start + index load)" "$imgsearch" info -i "$out/$codes$tag-$n.index" > /dev/null
      timed "query $codes$tag $n (cold)" "$imgsearch" query -i "$out/$codes$tag-$n.index" "$img" -k 10 > /dev/null
      if [ -n "$compare" ]; then
        timed "query $codes$tag $n (cold, compare)" "$compare/build/bin/imgsearch" query \
          -i "$out/$codes$tag-$n.index" "$img" -k 10 > /dev/null
      fi
    done
  done
done

# Add 10k, remove 10k (on a copy: the serve numbers above stay reproducible).
for codes in $codes_list; do
  cp "$out/$codes$tag-$largest.index" "$out/$codes$tag-update.index"
  "$bench" update "$source_index" "$out/$codes$tag-update.index" "$threads" | tee -a "$log"
  rm -f "$out/$codes$tag-update.index"
done
fi
echo "load: $(cat /proc/loadavg)"
/usr/bin/python3 "$root/tests/bench/vector_codes_summary.py" "$log"
