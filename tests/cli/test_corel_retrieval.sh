# Corel-1k with the real MobileNetV2: each query finds itself first, the top 9 others are
# nearly all of the query's class, and HNSW agrees with brute force.
# fixture: corel
source "$(dirname "$0")/lib.sh"

# The acceptance example: nine buses.
expect_status 0 "$IMGSEARCH" query -i "$COREL_INDEX" "$COREL/buses/300.jpg" -k 9
cat "$WORK/out"
[ "$(grep -cE '^ +[0-9]+ +[01]\.[0-9]+ +.*/buses/' "$WORK/out")" = 9 ] || fail "query for buses/300.jpg did not return nine buses"

# Several classes, JSON out, queries from stdin with one model load.
printf '%s\n' "$COREL/buses/300.jpg" "$COREL/buses/355.jpg" "$COREL/dinosaurs/400.jpg" "$COREL/dinosaurs/470.jpg" \
  "$COREL/horses/700.jpg" "$COREL/horses/750.jpg" "$COREL/elephants/500.jpg" "$COREL/elephants/530.jpg" \
  "$COREL/flowers/600.jpg" "$COREL/flowers/650.jpg" > queries.txt
"$IMGSEARCH" query -i "$COREL_INDEX" - -k 10 --json < queries.txt > hnsw.jsonl
"$IMGSEARCH" query -i "$COREL_INDEX" - -k 10 --json --exact < queries.txt > exact.jsonl
"$PYTHON" - hnsw.jsonl exact.jsonl <<'PY'
import json, sys, os
hnsw = [json.loads(l) for l in open(sys.argv[1])]
exact = [json.loads(l) for l in open(sys.argv[2])]
assert len(hnsw) == 10 and len(exact) == 10, (len(hnsw), len(exact))
cls = lambda p: os.path.basename(os.path.dirname(p))
total_same = 0
for q in hnsw:
    res = q["results"]
    assert [r["rank"] for r in res] == list(range(1, 11)), res
    assert res[0]["path"] == q["query"], f"{q['query']} is not its own best match: {res[0]}"
    assert res[0]["score"] >= 0.999, res[0]
    scores = [r["score"] for r in res]
    assert scores == sorted(scores, reverse=True), scores
    same = sum(cls(r["path"]) == cls(q["query"]) for r in res[1:])
    print(f"{q['query']}: {same}/9 of the same class")
    assert same >= 7, f"{q['query']}: only {same}/9 of its class in the top 9"
    total_same += same
assert total_same >= 85, f"only {total_same}/90 same-class results"
agree = sum([r["path"] for r in h["results"]] == [r["path"] for r in e["results"]] for h, e in zip(hnsw, exact))
print(f"HNSW top-10 == exact top-10 for {agree}/10 queries")
assert agree >= 9, agree
PY

# A larger sample: HNSW top-10 equals exact top-10 for nearly all of 100 queries.
find "$COREL" -name '*.jpg' | sort | awk 'NR % 10 == 1' > sample.txt
[ "$(wc -l < sample.txt)" = 100 ] || fail "expected 100 sample queries"
"$IMGSEARCH" query -i "$COREL_INDEX" - -k 10 --format tsv < sample.txt > hnsw.tsv
"$IMGSEARCH" query -i "$COREL_INDEX" - -k 10 --format tsv --exact < sample.txt > exact.tsv
"$PYTHON" - hnsw.tsv exact.tsv <<'PY'
import sys, collections
def load(p):
    d = collections.defaultdict(list)
    for line in open(p):
        q, rank, score, path = line.rstrip("\n").split("\t")
        d[q].append(path)
    return d
h, e = load(sys.argv[1]), load(sys.argv[2])
assert len(h) == 100 and len(e) == 100
agree = sum(h[q] == e[q] for q in e)
recall = sum(len(set(h[q]) & set(e[q])) for q in e) / 1000
print(f"identical top-10: {agree}/100, recall@10 {recall:.4f}")
assert agree >= 95 and recall >= 0.99
PY
