#!/usr/bin/env bash
# `imgsearch eval` on Corel-1k with the real ImageNet MobileNetV2 reproduces the Python
# reference (../shared/models/README.md): every image a query against the other 999,
# relevant = same class, P@10 = 0.964 and mAP = 0.894, within +-0.005; for the HNSW and the
# exact ranking. The shared index is built with the default precision (bf16 on a CPU with
# native bf16, else fp32).
# fixture: corel
source "$(dirname "$0")/lib.sh"

expect_status 0 "$IMGSEARCH" eval -i "$COREL_INDEX" --json
cp "$WORK/out" eval.json
"$PYTHON" - eval.json <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
for key in ("queries", "skipped", "mAP", "P@1", "P@5", "P@10", "P@20", "R-precision", "exact", "ann_recall@10",
            "latency_ms", "per_label", "model", "dimension", "precision", "hnsw", "label_source"):
    assert key in j, "missing key " + key
assert j["queries"] == 1000 and j["skipped"] == 0 and j["unlabelled"] == 0, j["queries"]
for name, fig in (("HNSW", j), ("exact", j["exact"])):
    print("%s: P@10 %.4f mAP %.4f" % (name, fig["P@10"], fig["mAP"]))
    assert abs(fig["P@10"] - 0.964) <= 0.005, (name, "P@10", fig["P@10"])
    assert abs(fig["mAP"] - 0.894) <= 0.005, (name, "mAP", fig["mAP"])
    assert fig["P@1"] >= fig["P@20"] and 0 < fig["R-precision"] <= 1
assert j["ann_recall@10"] >= 0.95, j["ann_recall@10"]
lat = j["latency_ms"]
assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"], lat
classes = ["africans", "beaches", "buildings", "buses", "dinosaurs", "elephants", "flowers", "food", "horses", "mountains"]
assert sorted(r["label"] for r in j["per_label"]) == classes
aps = [r["AP"] for r in j["per_label"]]
assert aps == sorted(aps), "per_label is not worst first"
assert all(r["images"] == 100 and r["queries"] == 100 for r in j["per_label"])
# The mean of the per-label APs is the mAP (every class has 100 queries).
assert abs(sum(aps) / len(aps) - j["mAP"]) < 1e-9
assert j["dimension"] == 1280 and j["hnsw"]["M"] == 16 and j["hnsw"]["ef_search"] >= 21
assert j["label_source"] == {"source": "parent folder"}
assert j["model"]["path"].endswith("mobilenet_v2_imagenet_embed.pt")
assert len(j["pr_curve"]["recall"]) == len(j["pr_curve"]["hnsw"]) == 21
PY

# The default table: the protocol, both rankings, the per-label table worst first.
expect_status 0 "$IMGSEARCH" eval -i "$COREL_INDEX"
expect_in "$WORK/out" "^protocol: 1000 queries; each left out of its own ranking; relevant = same label"
expect_in "$WORK/out" "^P@10 +0\.96[0-9] +0\.96[0-9]$"
expect_in "$WORK/out" "^mAP +0\.89[0-9] +0\.89[0-9]$"
expect_in "$WORK/out" "^ANN recall@10 +[01]\.[0-9]{3}$"
expect_in "$WORK/out" "^search latency +p50 [0-9.]+ ms, p95 [0-9.]+ ms, p99 [0-9.]+ ms$"
expect_in "$WORK/out" "^africans +100 +100 "
[ "$(grep -cE '^[a-z]+ +100 +100 +[01]\.[0-9]{3} +[01]\.[0-9]{3}$' "$WORK/out")" = 10 ] || fail "not 10 label rows"

# Other k's and a seeded sample: the same seed gives the same figures, another seed others.
expect_status 0 "$IMGSEARCH" eval -i "$COREL_INDEX" -k 3,7 --queries 100 --seed 5 --json
cp "$WORK/out" a.json
expect_status 0 "$IMGSEARCH" eval -i "$COREL_INDEX" -k 3,7 --queries 100 --seed 5 --json
cp "$WORK/out" b.json
expect_status 0 "$IMGSEARCH" eval -i "$COREL_INDEX" -k 3,7 --queries 100 --seed 6 --json
cp "$WORK/out" c.json
"$PYTHON" - a.json b.json c.json <<'PY'
import json, sys
a, b, c = (json.load(open(p)) for p in sys.argv[1:])
for j in (a, b, c):
    assert j["queries"] == 100 and "P@3" in j and "P@7" in j and "P@10" not in j, sorted(j)
    assert j["sample"]["of"] == 1000
strip = lambda j: {k: v for k, v in j.items() if k not in ("latency_ms", "sample")}
assert strip(a) == strip(b), "same seed, different figures"
assert strip(a) != strip(c), "another seed, same figures"
PY

# Bad command lines: exit 2, saying why.
expect_status 2 "$IMGSEARCH" eval -i "$COREL_INDEX" -k 0
expect_status 2 "$IMGSEARCH" eval -i "$COREL_INDEX" --labels "$SHARED/datasets/fashion44k/labels.csv"
expect_in "$WORK/err" "needs --label-column"
expect_status 2 "$IMGSEARCH" eval -i "$COREL_INDEX" --labels "$SHARED/datasets/fashion44k/labels.csv" --label-column nope
expect_in "$WORK/err" "no column 'nope' \(the columns are: id, master_category"
# Corel's file names are not fashion ids: nothing is labelled, so nothing can be a query.
expect_status 2 "$IMGSEARCH" eval -i "$COREL_INDEX" --labels "$SHARED/datasets/fashion44k/labels.csv" --label-column article_type
expect_in "$WORK/err" "no image can be a query: 1000 of 1000 images have no label"
expect_status 1 "$IMGSEARCH" eval -i "$WORK/missing.index"
echo "ok"
