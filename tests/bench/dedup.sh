#!/usr/bin/env bash
# The dedup benchmark (docs/benchmarks.md, "dedup"): not part of ctest.
#  1. What the duplicate signals cost at indexing time: decode vs content hash vs pHash per
#     image (tests/bench/signal_cost.cpp), against the whole extraction per image
#     (`imgsearch extract` on the same files, same run).
#  2. dedup of fashion44k from an existing index: the plain index (no signals) is copied,
#     `imgsearch index` fills the signals in (decode only, no model), then `dedup` runs
#     with 2 threads: wall time and peak memory (/usr/bin/time).
#  3. Quality on the Corel-1k edited-copy set (tests/dedup/make_edits.py): indexes it and
#     runs `imgsearch eval --duplicates`.
#   tests/bench/dedup.sh [--build build] [--out /work/cache/dedup] [--plain-index FILE]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
out=/work/cache/dedup
plain=/work/cache/fashion44k-mobilenet.index
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --plain-index) plain=$2; shift 2 ;;
    *) echo "dedup.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
shared=$(cd "$root/../shared" && pwd)
bin=$build/bin/imgsearch
model=$shared/models/mobilenet_v2/mobilenet_v2_imagenet_embed.pt
margs=(-m "$model" --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5)
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$out"
grep "model name" /proc/cpuinfo | head -1
echo "load: $(cat /proc/loadavg)"

echo "== 1. signal cost per image"
g++ -std=c++17 -O2 -I"$root/lib/include" "$root/tests/bench/signal_cost.cpp" "$build/lib/libimgsearch_core.a" \
  -lfmt -lxxhash -lturbojpeg -lwebp -lwebpdemux -lstb -lblas -lpthread -o "$out/signal_cost"
find "$shared/datasets/corel1k/images" -name '*.jpg' | sort >"$out/corel.list"
find "$shared/datasets/fashion44k/images" -name '*.jpg' | sort >"$out/fashion.all"
sed -n 1,2000p "$out/fashion.all" >"$out/fashion2k.list"
for set in corel fashion2k; do
  # extraction decodes JPEGs keeping the shorter side >= 2 x 256 (the model's resize)
  "$out/signal_cost" "$out/$set.list" 512
  n=$(wc -l <"$out/$set.list")
  /usr/bin/time -f "extract $set: %e s wall for $n images" "$bin" extract - -o "$out/$set.feat" --threads 2 "${margs[@]}" \
    <"$out/$set.list" >/dev/null 2>"$out/extract-$set.err" || true
  tail -1 "$out/extract-$set.err"
done

echo "== 2. dedup of fashion44k"
cp "$plain" "$out/fashion44k.index"
/usr/bin/time -f "index (fill signals): %e s wall, %M KB peak" "$bin" index "$shared/datasets/fashion44k/images" \
  -i "$out/fashion44k.index" --threads 2 "${margs[@]}" 2>&1 | tail -2
"$bin" info -i "$out/fashion44k.index" | head -3
/usr/bin/time -f "info (load only): %e s wall, %M KB peak" "$bin" info -i "$out/fashion44k.index" >/dev/null
for preset in exact near similar; do
  /usr/bin/time -f "dedup --preset $preset: %e s wall, %U s user, %S s sys, %M KB peak" "$bin" -v dedup -i "$out/fashion44k.index" \
    --preset "$preset" --threads 2 --format json -o "$out/fashion44k-$preset.jsonl" 2>&1 | tail -4
done

echo "== 3. quality on Corel-1k edited copies"
if [ ! -f "$out/corel-edits/ground_truth.csv" ]; then
  /usr/bin/python3 "$root/tests/dedup/make_edits.py" --source "$shared/datasets/corel1k/images" --out "$out/corel-edits" \
    --per-class 10 --distractors-per-class 90 --seed 1
fi
"$bin" index "$out/corel-edits" -i "$out/corel-edits.index" --threads 2 "${margs[@]}" 2>&1 | tail -1
"$bin" eval -i "$out/corel-edits.index" --duplicates "$out/corel-edits/ground_truth.csv" \
  --html "$out/corel-edits-eval.html" --json >"$out/corel-edits-eval.json"
"$bin" eval -i "$out/corel-edits.index" --duplicates "$out/corel-edits/ground_truth.csv"
