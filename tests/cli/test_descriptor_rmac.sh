#!/usr/bin/env bash
# The R-MAC descriptor (`--descriptor rmac`) end to end with the real MobileNetV2, on the
# first 16 scenes of Holidays: the index records it (info, META requires), every later
# command embeds queries with it without being told, an indexed photo finds itself at
# rank 1 with score 1, and its vectors are the same through `extract` and `index`. On all
# of Holidays it ranks photos of the same place better than the pooled default (docs/eval.md
# has the full table). Mixing descriptors, a model without a feature map and a bad
# descriptor name are refused with a message.
# timeout: 1200
source "$(dirname "$0")/lib.sh"

HOL="$SHARED/datasets/holidays300"
mkdir hol
ls "$HOL/images" | LC_ALL=C sort | awk -F. '$1 < 101600' | while read -r f; do cp "$HOL/images/$f" hol/; done
head -16 "$HOL/queries.txt" | sed 's|^images/|hol/|' > queries.txt
n=$(ls hol | wc -l)

expect_status 0 "$IMGSEARCH" index hol -i rmac.index --descriptor rmac "${MOBILENET_ARGS[@]}"
expect_status 0 "$IMGSEARCH" info -i rmac.index
expect_in "$WORK/out" "^descriptor: R-MAC"
expect_in "$WORK/out" "^preprocess: whole image, longer side 448, 640, 800,"
expect_status 0 "$IMGSEARCH" info -i rmac.index --json
"$PYTHON" -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["model"]["descriptor"] == {"type": "rmac", "scales": [448, 640, 800]}, j["model"]
assert j["model_dim"] == 1280, j
' "$WORK/out"
"$PYTHON" - rmac.index <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack_from("<I", b, 12)[0]
for i in range(n):
    e = 16 + 32 * i
    if b[e:e + 8].rstrip(b"\0") == b"META":
        off, size = struct.unpack_from("<QQ", b, e + 8)
        meta = json.loads(b[off:off + size])
assert "descriptor" in meta["requires"], meta.get("requires")
PY

# A query needs no --descriptor: the index's is used. An indexed photo is its own best hit.
expect_status 0 "$IMGSEARCH" query hol/100100.jpg -i rmac.index -k 3 --format tsv
"$PYTHON" -c '
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
assert rows[0][3].endswith("/hol/100100.jpg") and abs(float(rows[0][2]) - 1) < 1e-3, rows
' "$WORK/out"
# Naming another descriptor for that index is a mismatch, not a silent re-embedding.
expect_status 1 "$IMGSEARCH" query hol/100100.jpg -i rmac.index --descriptor pooled
expect_in "$WORK/err" "descriptor pooled differs from the index's descriptor rmac:448,640,800"

# Updating the index (a new photo) embeds it the index's way without being told.
mv hol/101500.jpg later.jpg
expect_status 0 "$IMGSEARCH" index hol -i rmac.index
mv later.jpg hol/101500.jpg
expect_status 0 "$IMGSEARCH" index hol -i rmac.index
expect_in "$WORK/out" "^added 1, updated 0, removed 0"
expect_status 0 "$IMGSEARCH" query hol/101500.jpg -i rmac.index -k 1 --format tsv
expect_in "$WORK/out" "/hol/101500\.jpg$"
"$PYTHON" -c 'import sys; s = float(open(sys.argv[1]).read().split("\t")[2]); assert abs(s - 1) < 1e-3, s' "$WORK/out"

# extract gives the same vectors as index, in a version 2 features file.
expect_status 0 "$IMGSEARCH" extract hol -o rmac.feat --descriptor rmac "${MOBILENET_ARGS[@]}"
expect_status 0 "$IMGSEARCH" index --from-features rmac.feat -i from-feat.index
"$PYTHON" -c 'import struct,sys; assert struct.unpack_from("<I", open(sys.argv[1],"rb").read(), 8)[0] == 2' rmac.feat
expect_status 0 "$IMGSEARCH" query hol/100100.jpg -i from-feat.index -k 3 --format tsv
cp "$WORK/out" from-feat.tsv
expect_status 0 "$IMGSEARCH" query hol/100100.jpg -i rmac.index -k 3 --format tsv
cmp from-feat.tsv "$WORK/out" || fail "extract and index give different R-MAC rankings"

# Against the pooled default on all of Holidays (811 photos, its 300 queries): R-MAC at
# one scale (448; the default three cost 6x more) finds the same place better. On a few
# scenes alone it need not: its gain is in ranking the right scene above many others.
if at_dataset_scale "R-MAC against pooled on all of Holidays (1,622 images embedded)"; then
expect_status 0 "$IMGSEARCH" index "$HOL/images" -i all-rmac.index --descriptor rmac:448 "${MOBILENET_ARGS[@]}"
expect_status 0 "$IMGSEARCH" index "$HOL/images" -i all-pooled.index "${MOBILENET_ARGS[@]}"
for d in rmac pooled; do
  expect_status 0 "$IMGSEARCH" eval -i all-$d.index --labels "$HOL/labels.csv" --label-column scene \
    --query-list "$HOL/queries.txt" --json
  cp "$WORK/out" $d.json
done
"$PYTHON" - rmac.json pooled.json <<'PY'
import json, sys
r, p = (json.load(open(f)) for f in sys.argv[1:3])
print("Holidays-300: R-MAC at 448 mAP %.3f, pooled %.3f" % (r["exact"]["mAP"], p["exact"]["mAP"]))
assert r["queries"] == p["queries"] == 300 and r["images"] == 811
assert r["exact"]["mAP"] > p["exact"]["mAP"] + 0.015, (r["exact"]["mAP"], p["exact"]["mAP"])
PY
fi

# Descriptors do not mix: pooled features into an R-MAC index, or the reverse.
expect_status 0 "$IMGSEARCH" extract hol/100000.jpg -o pooled.feat "${MOBILENET_ARGS[@]}"
expect_status 1 "$IMGSEARCH" index --from-features pooled.feat -i rmac.index
expect_in "$WORK/err" "holds pooled descriptors, but rmac.index has rmac:448,640,800; descriptors cannot be mixed"
expect_status 0 "$IMGSEARCH" index hol -i pooled.index "${MOBILENET_ARGS[@]}"
expect_status 1 "$IMGSEARCH" index --from-features rmac.feat -i pooled.index
expect_in "$WORK/err" "descriptors cannot be mixed"

# A model without a `features` submodule has no feature map to pool.
"$PYTHON" -c '
import torch
net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
torch.jit.trace(net, torch.zeros(1, 3, 64, 64)).save("flat.pt")
'
expect_status 1 "$IMGSEARCH" extract hol/100000.jpg -o flat.feat -m flat.pt --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --descriptor rmac
expect_in "$WORK/err" "flat.pt: the R-MAC descriptor needs the model's last feature map, a \`features\` submodule"
expect_status 2 "$IMGSEARCH" extract hol/100000.jpg -o x.feat "${MOBILENET_ARGS[@]}" --descriptor gem
expect_in "$WORK/err" "unknown descriptor 'gem'"
expect_status 2 "$IMGSEARCH" extract hol/100000.jpg -o x.feat "${MOBILENET_ARGS[@]}" --descriptor rmac:10
[ ! -e x.feat ] || fail "a refused extract wrote its output"
echo "ok: $n images"
