#!/usr/bin/env bash
# What the R-MAC descriptor costs against the pooled default (docs/benchmarks.md, "The
# R-MAC descriptor"): not part of ctest. Same run, interleaved: `extract` of Holidays-300
# (811 photos of 325 x 243, so each scale upsamples) and of the first 300 Corel-1k photos,
# with --descriptor pooled, rmac:640 and rmac (448, 640, 800), then a whole cold `query`
# (process start, model load, decode, CNN, search) of 10 Holidays photos against each index.
#   tests/bench/descriptor_cost.sh [--build build] [--out /work/cache/descriptor-cost] [--rounds 2]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
out=/work/cache/descriptor-cost
rounds=2
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "descriptor_cost.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
shared=$(cd "$root/../shared" && pwd)
imgsearch=$build/bin/imgsearch
model=(-m "$shared/models/mobilenet_v2/mobilenet_v2_imagenet_embed.pt" --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5)
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$out"
grep "model name" /proc/cpuinfo | head -1
echo "load: $(cat /proc/loadavg)"
ls "$shared/datasets/holidays300/images/"* > "$out/holidays.txt"
ls "$shared/datasets/corel1k/images/"*/* | head -300 > "$out/corel.txt"
head -10 "$out/holidays.txt" > "$out/queries.txt"
echo "| set | descriptor | round | images | seconds | img/s |"
for round in $(seq 1 "$rounds"); do
  for set in holidays corel; do
    for d in pooled rmac:640 rmac; do
      n=$(wc -l < "$out/$set.txt")
      start=$(date +%s.%N)
      "$imgsearch" extract - -o "$out/$set-${d/:/-}.feat" --descriptor "$d" "${model[@]}" < "$out/$set.txt" 2>/dev/null
      end=$(date +%s.%N)
      awk -v s="$set" -v d="$d" -v r="$round" -v n="$n" -v a="$start" -v b="$end" \
        'BEGIN { printf "| %s | %s | %d | %d | %.1f | %.2f |\n", s, d, r, n, b - a, n / (b - a) }'
    done
  done
done
echo
echo "| descriptor | cold query, median of 10 (s) |"
for d in pooled rmac:640 rmac; do
  "$imgsearch" index --from-features "$out/holidays-${d/:/-}.feat" -i "$out/holidays-${d/:/-}.index" --rebuild > /dev/null
  times=()
  while read -r q; do
    start=$(date +%s.%N)
    "$imgsearch" query "$q" -i "$out/holidays-${d/:/-}.index" -k 10 > /dev/null
    end=$(date +%s.%N)
    times+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')")
  done < "$out/queries.txt"
  printf '%s\n' "${times[@]}" | sort -n | awk -v d="$d" '{ t[NR] = $1 } END { printf "| %s | %.2f |\n", d, (t[5] + t[6]) / 2 }'
done
