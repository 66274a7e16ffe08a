#!/usr/bin/env bash
# `imgsearch learn --pca` on Corel-1k with the real MobileNetV2: without labels, the
# 1280-d vectors are projected onto their 256 strongest directions; the ranking keeps the
# raw one's quality (mAP and P@10 within 0.01), `info` and `eval` say so, the searched
# vectors shrink five-fold, a query by an image file finds that image first with score 1,
# a seeded --sample is reproducible, bad requests are refused with one line, and `learn
# --reset` gives the raw ranking back exactly.
# fixture: corel
source "$(dirname "$0")/lib.sh"

cp "$COREL_INDEX" c.index
expect_status 0 "$IMGSEARCH" eval -i c.index --json --dba 0 --qe 0
cp "$WORK/out" raw.json

expect_status 0 "$IMGSEARCH" learn -i c.index --pca --dim 256
cp "$WORK/out" learn.txt
expect_in learn.txt "^learned a PCA projection 1280 -> 256 dimensions from 1000 of 1000 images \(no labels\); it keeps [0-9.]+ % of their vectors' energy$"
expect_in learn.txt "^vectors searched: 5\.1 MB -> 1\.0 MB; the model's vectors stay in the file for \`learn --reset\`$"
expect_status 0 "$IMGSEARCH" eval -i c.index --json --dba 0 --qe 0
cp "$WORK/out" pca.json
expect_status 0 "$IMGSEARCH" info -i c.index --json
cp "$WORK/out" info.json
img="$SHARED/datasets/corel1k/images/buses/$(ls "$SHARED/datasets/corel1k/images/buses" | head -1)"
expect_status 0 "$IMGSEARCH" query -i c.index "$img" -k 3 --format tsv
cp "$WORK/out" query.tsv
"$PYTHON" - raw.json pca.json info.json learn.txt query.tsv "$img" <<'PY'
import json, re, sys
raw, pca, info = (json.load(open(p)) for p in sys.argv[1:4])
energy = float(re.search(r"keeps ([0-9.]+) %", open(sys.argv[4]).read()).group(1))
print("raw mAP %.4f P@10 %.4f; PCA 256: mAP %.4f P@10 %.4f, energy %.1f %%" % (
    raw["mAP"], raw["P@10"], pca["mAP"], pca["P@10"], energy))
assert 80 < energy < 100, energy
for key in ("mAP", "P@10"):
    assert abs(pca["exact"][key] - raw["exact"][key]) <= 0.01, (key, pca["exact"][key], raw["exact"][key])
assert pca["post_processing"]["projection"] == {"in_dim": 1280, "out_dim": 256}
assert info["dim"] == 256 and info["model_dim"] == 1280
assert info["projection"]["fitted"]["method"] == "pca" and info["projection"]["rescore"] is True, info["projection"]
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[5])]
assert rows[0][3] == sys.argv[6] and float(rows[0][2]) > 0.999, rows[0]
PY

# A seeded sample: the same seed, the same projection (the same exact ranking).
cp "$COREL_INDEX" s1.index
cp "$COREL_INDEX" s2.index
for f in s1 s2; do expect_status 0 "$IMGSEARCH" learn -i $f.index --pca --dim 64 --sample 300 --seed 7; done
expect_in "$WORK/out" "from 300 of 1000 images"
for f in s1 s2; do
  expect_status 0 "$IMGSEARCH" eval -i $f.index --json --dba 0 --qe 0
  cp "$WORK/out" $f.json
done
"$PYTHON" - s1.json s2.json <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["exact"] == b["exact"], (a["exact"], b["exact"])
PY

# Refused, one line each, the index unchanged.
cp c.index before.index
expect_status 2 "$IMGSEARCH" learn -i c.index --pca --dim 1280
expect_in "$WORK/err" "--dim must be in 1\.\.1279 \(below the model's 1280 dimensions\), not 1280"
expect_status 2 "$IMGSEARCH" learn -i c.index --pca --labels x.csv --label-column a
expect_in "$WORK/err" "--pca takes no labels"
cmp c.index before.index || fail "a refused learn changed the index"

expect_status 0 "$IMGSEARCH" learn -i c.index --reset
expect_in "$WORK/out" "^removed the learned projection: 1000 images searched with the model's 1280-d vectors again \(was 256-d\)$"
expect_status 0 "$IMGSEARCH" eval -i c.index --json --dba 0 --qe 0
cp "$WORK/out" reset.json
"$PYTHON" - raw.json reset.json <<'PY'
import json, sys
raw, reset = (json.load(open(p)) for p in sys.argv[1:])
for key in ("mAP", "P@10"):
    assert abs(raw["exact"][key] - reset["exact"][key]) < 1e-9, key
PY
echo ok
