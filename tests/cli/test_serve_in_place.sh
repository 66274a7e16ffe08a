#!/usr/bin/env bash
# `imgsearch serve` on a Corel-1k index with int8 codes and a `learn --pca` projection:
# the exact rows and the model vectors stay in the file and are read with pread. A search
# by id ranks as `query` does (the image itself first, the model's cosine). The file
# truncated in place under the server (written, not renamed) fails the requests that read
# it with a 500 that says why, while the server keeps answering and reports the bad file;
# a good file renamed over it is loaded and served again; SIGTERM still exits 0.
# fixture: corel
source "$(dirname "$0")/lib.sh"
kill_serve_on_exit

cp "$COREL_INDEX" p.index
expect_status 0 "$IMGSEARCH" index -i p.index --vectors int8
expect_status 0 "$IMGSEARCH" learn -i p.index --pca --dim 64
cp p.index good.index
"$IMGSEARCH" query -i p.index "$COREL/buses/300.jpg" -k 5 --json > query.json

start_serve -i p.index --threads 1 --reload-interval 0.2
export SERVE_URL WORK COREL
"$PYTHON" - <<'PY'
import json, os, shutil, time, urllib.error, urllib.request

url, work, corel = os.environ["SERVE_URL"], os.environ["WORK"], os.environ["COREL"]

def call(path, body=None, headers=None):
    req = urllib.request.Request(url + path.lstrip("/"), data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())

def wait_for(pred, what):
    for _ in range(300):
        code, h = call("/healthz")
        if pred(h):
            return h
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {h}")

code, r = call("/api/search?id=5&k=3")
assert code == 200 and r["results"][0]["id"] == 5 and r["results"][0]["score"] > 0.999, (code, r)
# An upload ranks as `query` ranks the same file: the same paths, the model's scores.
expected = json.load(open(f"{work}/query.json"))
with open(f"{corel}/buses/300.jpg", "rb") as f:
    body = f.read()
code, up = call("/api/search?k=5", body, {"Content-Type": "image/jpeg"})
assert code == 200, (code, up)
want = [h["path"] for h in expected["results"]]
assert [h["path"] for h in up["results"]] == want, (up["results"], want)
for got, exp in zip(up["results"], expected["results"]):
    assert abs(got["score"] - exp["score"]) < 1e-5, (got, exp)

# Truncated in place: the requests that read the file fail with a 500 saying why; the
# server lives on and /healthz reports the file it could not load.
with open(f"{work}/p.index", "r+b") as f:
    f.truncate(4096)
code, r = call("/api/search?id=5&k=3")
assert code == 500 and "truncated or changed since it was loaded" in r["error"], (code, r)
h = wait_for(lambda h: h["status"] == "degraded", "the truncated file to be noticed")
assert h["images"] == 1000 and "p.index" in h["reload_error"], h
code, r = call("/api/search?id=7&k=3")
assert code == 500, (code, r)

# A good file renamed over it: served again.
shutil.copy(f"{work}/good.index", f"{work}/p.index.tmp")
os.rename(f"{work}/p.index.tmp", f"{work}/p.index")
wait_for(lambda h: h["status"] == "ok" and h["reloads"] == 1, "the good file")
code, r = call("/api/search?id=5&k=3")
assert code == 200 and r["results"][0]["id"] == 5, (code, r)
print("truncated in place: 500s, the server alive; renamed good file: served")
PY
stop_serve
echo ok
