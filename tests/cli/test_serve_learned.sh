#!/usr/bin/env bash
# `imgsearch serve` on an index with a learned projection (here a colour one, fitted on the
# Corel-1k categories): it starts (it once refused any projected index, comparing the
# model's output with the projected dimension), uploads rank exactly like `imgsearch
# query` (the query image's colour histogram goes through the same library path), and id
# search and refine work in the projected space.
# fixture: corel
source "$(dirname "$0")/lib.sh"
kill_serve_on_exit

cp "$COREL_INDEX" learned.index
"$PYTHON" - "$COREL" <<'PY'
import os, sys
root = sys.argv[1]
with open("labels.csv", "w") as out:
    out.write("id,category\n")
    for category in sorted(os.listdir(root)):
        for f in sorted(os.listdir(os.path.join(root, category))):
            out.write(f"{os.path.splitext(f)[0]},{category}\n")
PY
expect_status 0 "$IMGSEARCH" learn -i learned.index --labels labels.csv --label-column category --colour on \
  --holdout 0.5 --seed 1
expect_in "$WORK/out" "^learned an LDA projection 1394 -> 9 dimensions from [0-9]+ images with 10 labels \(category\)"
expect_in "$WORK/out" "^input: the model's 1280-d vector and the image's 114-bin colour histogram \(weight 0\.5\)$"
expect_status 0 "$IMGSEARCH" info -i learned.index
expect_in "$WORK/out" "^projection: learned, 1280 \+ 114 colour bins x 0\.5 -> 9 dimensions"

"$IMGSEARCH" query "$COREL/buses/300.jpg" -i learned.index -k 9 --json >query.json
start_serve -i learned.index --threads 1
export SERVE_URL COREL WORK
"$PYTHON" - <<'PY'
import json, os, urllib.request

url, corel, work = os.environ["SERVE_URL"], os.environ["COREL"], os.environ["WORK"]

def call(method, path, body=None, headers=None):
    req = urllib.request.Request(url + path.lstrip("/"), data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())

bus = f"{corel}/buses/300.jpg"
got = call("POST", "/api/search?k=9", open(bus, "rb").read(), {"Content-Type": "image/jpeg"})["results"]
want = json.load(open(f"{work}/query.json"))["results"]
assert [r["path"] for r in got] == [r["path"] for r in want], (got, want)
for g, w in zip(got, want):
    assert abs(g["score"] - w["score"]) < 1e-4, (g, w)
assert got[0]["path"] == bus and got[0]["score"] > 0.999
assert sum("/buses/" in r["path"] for r in got) >= 8, got

byid = call("GET", f"/api/search?id={got[0]['id']}&k=5")["results"]
assert byid[0]["id"] == got[0]["id"] and abs(byid[0]["score"] - 1) < 1e-4, byid

refined = call("POST", "/api/search", json.dumps({"positive": [got[1]["id"], got[2]["id"]], "k": 9}).encode(),
               {"Content-Type": "application/json"})["results"]
assert sum("/buses/" in r["path"] for r in refined) >= 8, refined

info = call("GET", "/api/info")
assert info["dim"] == 9 and info["model_dim"] == 1280, info
assert info["projection"]["colour_bins"] == 114, info["projection"]
PY
stop_serve
echo "ok"
