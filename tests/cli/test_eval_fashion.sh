#!/usr/bin/env bash
# eval with labels from a CSV, on a fixed subset of fashion44k (the first 300 images by file
# name, plus one image the CSV does not list) and the real MobileNetV2: eval indexes the
# folder itself and reuses the index when run again; the article_type and
# article_type+colour protocols count the images without a label and the queries skipped
# because no other image shares their label. (The full 44k figures are in docs/eval.md.)
source "$(dirname "$0")/lib.sh"

FASHION="$SHARED/datasets/fashion44k"
mkdir subset
ls "$FASHION/images" | LC_ALL=C sort | sed -n 1,300p | while read -r f; do cp "$FASHION/images/$f" subset/; done
cp "$COREL/horses/700.jpg" subset/not-in-the-csv.jpg
LABELS=(--labels "$FASHION/labels.csv" --id-column id)

expect_status 0 "$IMGSEARCH" eval subset -i sub.index "${MOBILENET_ARGS[@]}" "${LABELS[@]}" --label-column article_type \
  --json --html type.html
expect_in "$WORK/err" "^added 301, updated 0, removed 0, unchanged 0$"
cp "$WORK/out" type.json
# Run again: nothing is extracted, the figures are the same.
expect_status 0 "$IMGSEARCH" eval subset -i sub.index "${LABELS[@]}" --label-column article_type --json
expect_in "$WORK/err" "^added 0, updated 0, removed 0, unchanged 301$"
cp "$WORK/out" type2.json
expect_status 0 "$IMGSEARCH" eval -i sub.index "${LABELS[@]}" --label-column article_type+colour --json
cp "$WORK/out" fine.json
expect_status 0 "$IMGSEARCH" eval -i sub.index "${LABELS[@]}" --label-column article_type --queries 40 --seed 9 --json
cp "$WORK/out" sample.json
"$PYTHON" - type.json type2.json fine.json sample.json "$FASHION/labels.csv" <<'PY'
import csv, json, sys
from collections import Counter
t, t2, f, s = (json.load(open(p)) for p in sys.argv[1:5])
rows = {r["id"]: r for r in csv.DictReader(open(sys.argv[5], newline=""))}
import os
ids = sorted(os.listdir(os.path.join(os.path.dirname(sys.argv[5]), "images")))[:300]
ids = [i[:-4] for i in ids]
def expected(key):
    labels = Counter(key(rows[i]) for i in ids)
    skipped = sum(1 for i in ids if labels[key(rows[i])] == 1)
    return len(labels), skipped
for j, key in ((t, lambda r: r["article_type"]), (f, lambda r: r["article_type"] + "+" + r["colour"])):
    nlabels, skipped = expected(key)
    assert j["images"] == 301 and j["unlabelled"] == 1, (j["images"], j["unlabelled"])
    assert j["labels"] == nlabels, (j["labels"], nlabels)
    assert j["skipped"] == skipped, (j["skipped"], skipped)
    assert j["queries"] == 300 - skipped
    assert sum(r["queries"] for r in j["per_label"]) == j["queries"]
    print("%s: %d queries, %d skipped, %d labels, P@1 %.3f P@10 %.3f mAP %.3f" % (
        j["label_source"]["label_columns"], j["queries"], j["skipped"], j["labels"], j["P@1"], j["P@10"], j["mAP"]))
assert t["label_source"] == {"source": "csv", "csv": sys.argv[5], "id_column": "id", "label_columns": ["article_type"]}
assert f["label_source"]["label_columns"] == ["article_type", "colour"]
assert all("+" in r["label"] for r in f["per_label"])
# Product photos of one article type look alike: the nearest neighbour mostly shares it.
assert t["P@1"] >= 0.6 and t["mAP"] >= 0.3, (t["P@1"], t["mAP"])
assert f["queries"] < t["queries"]
strip = lambda j: {k: v for k, v in j.items() if k != "latency_ms"}
assert strip(t) == strip(t2), "the reused index gave other figures"
assert s["queries"] == 40 and s["sample"] == {"queries": 40, "of": t["queries"], "seed": 9}
PY
"$PYTHON" "$SOURCE_DIR/tests/cli/check_html.py" type.html --imgs 132 --figures 2 --text "labels.csv (article_type by id)"
echo "ok"
