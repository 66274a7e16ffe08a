#!/usr/bin/env bash
# The R-MAC descriptor on fashion44k's categories (docs/eval.md, "Descriptor changes"): not
# part of ctest. All 44k at R-MAC's speed is hours of this machine, so a seeded sample:
# labels.csv sorted by id, shuffled by Python's random.Random(SEED), the first N images
# that exist, copied to OUT/sub. Indexed with --descriptor pooled and rmac, each evaluated
# by `imgsearch eval` on `article_type` (every image a query) raw and with --qe 2,
# --dba 1 --qe 1, --dba 2 --qe 2 and --dba 10 --qe 10 in memory.
#   tests/bench/descriptor_fashion.sh [--build build] [--out /work/cache/rmacfash] [--images 2000] [--seed 7]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
out=/work/cache/rmacfash
images=2000
seed=7
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    *) echo "descriptor_fashion.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
shared=$(cd "$root/../shared" && pwd)
imgsearch=$build/bin/imgsearch
labels=$shared/datasets/fashion44k/labels.csv
model=(-m "$shared/models/mobilenet_v2/mobilenet_v2_imagenet_embed.pt" --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5)
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$out"
cd "$out"
grep "model name" /proc/cpuinfo | head -1
rm -rf sub && mkdir sub
/usr/bin/python3 - "$shared/datasets/fashion44k" "$images" "$seed" <<'PY'
import csv, os, random, shutil, sys
root, want, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = sorted(csv.DictReader(open(os.path.join(root, "labels.csv"))), key=lambda r: r["id"])
random.Random(seed).shuffle(rows)
n = 0
for r in rows:
    p = os.path.join(root, "images", r["id"] + ".jpg")
    if os.path.exists(p):
        shutil.copy(p, "sub")
        n += 1
    if n == want:
        break
PY
evaluate() {
  "$imgsearch" eval -i "$1" --labels "$labels" --id-column id --label-column article_type --json "${@:2}" 2>/dev/null |
    /usr/bin/python3 -c "import json,sys; j=json.load(sys.stdin); print('%-12s %-22s mAP %.3f P@10 %.3f' % (sys.argv[1], ' '.join(sys.argv[2:]) or 'raw', j['mAP'], j['P@10']))" "$1" "${@:2}"
}
for descriptor in pooled rmac; do
  start=$(date +%s)
  "$imgsearch" index sub -i $descriptor.index "${model[@]}" --descriptor $descriptor >/dev/null
  echo "$descriptor: indexed $images images in $(( $(date +%s) - start )) s"
  evaluate $descriptor.index
  for k in "--qe 2" "--dba 1 --qe 1" "--dba 2 --qe 2" "--dba 10 --qe 10"; do
    # shellcheck disable=SC2086
    evaluate $descriptor.index $k
  done
done
