#!/usr/bin/env bash
# eval's instance-retrieval protocols on small real subsets with the real MobileNetV2:
# the UKBench N-S score (reported when every label has exactly 4 images, or with --metric
# ns) equals the mean count of each image's group in its own `query --exact -k 4` results;
# --query-list (Holidays' queries.txt format, paths relative to the list) makes exactly
# the listed images the queries; a listed image the index lacks is a usage error naming
# the line.
source "$(dirname "$0")/lib.sh"

UKB="$SHARED/datasets/ukbench1000"
HOL="$SHARED/datasets/holidays300"
mkdir ukb hol
for i in $(seq 0 39); do cp "$UKB/images/ukbench$(printf %05d "$i").jpg" ukb/; done
# The first 8 Holidays groups: queries.txt lists NNNN00.jpg, the first image of each.
ls "$HOL/images" | LC_ALL=C sort | awk -F. '$1 < 100800' | while read -r f; do cp "$HOL/images/$f" hol/; done
head -8 "$HOL/queries.txt" | sed 's|^images/|hol/|' > queries.txt

expect_status 0 "$IMGSEARCH" index ukb -i ukb.index "${MOBILENET_ARGS[@]}"
expect_status 0 "$IMGSEARCH" eval -i ukb.index --labels "$UKB/labels.csv" --label-column object --json
cp "$WORK/out" ukb.json
expect_status 0 "$IMGSEARCH" eval -i ukb.index --labels "$UKB/labels.csv" --label-column object
expect_in "$WORK/out" "^N-S \(top 4\) +[0-4]\.[0-9]{3} +[0-4]\.[0-9]{3}$"
ls ukb | sed "s|^|$WORK/ukb/|" | "$IMGSEARCH" query - -i ukb.index --exact -k 4 --format tsv > top4.tsv
"$PYTHON" - ukb.json top4.tsv <<'PY'
import json, os, sys
j = json.load(open(sys.argv[1]))
group = lambda p: int(os.path.basename(p)[7:12]) // 4
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])]
assert len(rows) == 160
found = sum(group(q) == group(p) for q, _, _, p in rows) / 40
print("N-S: eval %.3f, from query --exact %.3f" % (j["exact"]["N-S"], found))
assert abs(j["exact"]["N-S"] - found) < 1e-9 and abs(j["N-S"] - found) < 0.05
assert j["queries"] == 40 and 3.0 <= found <= 4.0
PY
# One image fewer: not every label has 4 images, no N-S unless asked.
rm ukb/ukbench00039.jpg
expect_status 0 "$IMGSEARCH" index ukb -i ukb.index
expect_status 0 "$IMGSEARCH" eval -i ukb.index --labels "$UKB/labels.csv" --label-column object --json
"$PYTHON" -c 'import json,sys; j=json.load(open(sys.argv[1])); assert "N-S" not in j and "N-S" not in j["exact"], j' "$WORK/out"
expect_status 0 "$IMGSEARCH" eval -i ukb.index --labels "$UKB/labels.csv" --label-column object --json --metric ns
"$PYTHON" -c 'import json,sys; j=json.load(open(sys.argv[1])); assert 0 < j["N-S"] <= 4, j' "$WORK/out"

expect_status 0 "$IMGSEARCH" index hol -i hol.index "${MOBILENET_ARGS[@]}"
expect_status 0 "$IMGSEARCH" eval -i hol.index --labels "$HOL/labels.csv" --label-column scene --json
cp "$WORK/out" all.json
expect_status 0 "$IMGSEARCH" eval -i hol.index --labels "$HOL/labels.csv" --label-column scene --query-list queries.txt --json
cp "$WORK/out" listed.json
expect_status 0 "$IMGSEARCH" eval -i hol.index --labels "$HOL/labels.csv" --label-column scene --query-list queries.txt
expect_in "$WORK/out" "^protocol: 8 queries from queries.txt; each left out of its own ranking"
"$PYTHON" - all.json listed.json "$(ls hol | wc -l)" <<'PY'
import json, sys
a, l = (json.load(open(p)) for p in sys.argv[1:3])
n = int(sys.argv[3])
assert a["queries"] == n and l["queries"] == 8 and l["images"] == n, (a["queries"], l["queries"], n)
assert l["query_list"].endswith("/queries.txt")
assert sorted(r["label"] for r in l["per_label"]) == [str(g) for g in range(1000, 1008)]
assert all(r["queries"] == 1 for r in l["per_label"])
PY
echo "hol/not-indexed.jpg" >> queries.txt
expect_status 2 "$IMGSEARCH" eval -i hol.index --labels "$HOL/labels.csv" --label-column scene --query-list queries.txt
expect_in "$WORK/err" "queries.txt: line 9: $WORK/hol/not-indexed.jpg is not in the index"
expect_status 1 "$IMGSEARCH" eval -i hol.index --labels "$HOL/labels.csv" --label-column scene --query-list missing.txt
expect_in "$WORK/err" "missing.txt: cannot open"
echo "ok"
