#!/usr/bin/env bash
# The benchmark of issue 13 ("A million images, int8 and shards"), one command; not part of
# ctest. Two parts (docs/benchmarks.md):
#   index    tests/bench/vector_codes.sh at N = 10^6 for f32, f16 and int8: build time, file
#            size, peak RSS building and serving, recall@10 against exact fp32, p50/p99, add
#            10k, remove 10k, cold `query` (hours of CPU on 2 cores: --n for a smaller run);
#   extract  tests/bench/int8_extract.py: ResNet50, VGG16 and MobileNetV2 extraction in int8
#            against bf16, fp32 and both Python pipelines, same run.
#   tests/bench/run_scale.sh [--only index,extract] [--n 1000000] [--images 200]
#        [--out DIR (index part)] [--work DIR (extract part)] [--build build]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
only=index,extract
n=1000000
images=200
index_args=()
extract_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --only) only=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --out) index_args+=(--out "$2"); shift 2 ;;
    --work) extract_args+=(--work "$2"); shift 2 ;;
    --build) index_args+=(--build "$2"); extract_args+=(--build "$2"); shift 2 ;;
    *) echo "run_scale.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case ",$only," in *,index,*)
  bash "$here/vector_codes.sh" --sizes "$n" --codes "f32 f16 int8" "${index_args[@]}" ;;
esac
case ",$only," in *,extract,*)
  /usr/bin/python3 "$here/int8_extract.py" --images "$images" "${extract_args[@]}" ;;
esac
