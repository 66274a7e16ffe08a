#!/usr/bin/python3
"""Benchmark of `imgsearch serve` on fashion44k, one command (tests/bench/bench_serve.sh):

  - uploads per second and p50/p99 latency at concurrency 1, 4 and 16 (wrk, one thread,
    keep-alive connections, POST /api/search?k=9 cycling over 64 fashion44k photos);
  - id searches per second (GET /api/search?id=RANDOM&k=9, concurrency 4);
  - the server's peak RSS (VmHWM) against the index file size;
  - the same uploads against a seed-style Python server in the same run: Flask (Debian's
    python3-flask, threaded), the same TorchScript MobileNetV2 through torch.jit, PIL +
    torchvision transforms, and a NumPy cosine over the same 44,072 vectors (read from the
    index file's VECS section).

Client and servers share the machine's cores, as the issue asks. Prints a Markdown table
and writes JSON (--json). Not part of ctest.

Usage: bench_serve.py [--index FILE] [--imgsearch build/bin/imgsearch] [--seconds 10] [--quick]
"""

import argparse
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))
FASHION = os.path.join(SHARED, "datasets", "fashion44k", "images")
MOBILENET = os.path.join(SHARED, "models", "mobilenet_v2", "mobilenet_v2_imagenet_embed.pt")

UPLOAD_LUA = r"""
local bodies = {}
for path in io.lines(os.getenv("BENCH_LIST")) do
  local f = io.open(path, "rb"); bodies[#bodies + 1] = f:read("*a"); f:close()
end
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/api/search?k=9", {["Content-Type"] = "image/jpeg"}, bodies[i])
end
"""

ID_LUA = r"""
local n = tonumber(os.getenv("BENCH_COUNT"))
math.randomseed(42)
request = function()
  return wrk.format("GET", "/api/search?k=9&id=" .. math.random(0, n - 1))
end
"""

# The seed-style server: what the seed projects' Flask back ends do.
PYTHON_SERVER = r"""
import io, os, struct, sys, threading
import numpy as np
import torch, torchvision.transforms as T
from PIL import Image
from flask import Flask, jsonify, request

index_path, model_path, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))

def read_vectors(path):  # the VECS section of an imgsearch index (docs/formats.md)
    with open(path, "rb") as f:
        head = f.read(16)
        n = struct.unpack("<I", head[12:16])[0]
        table = f.read(32 * n)
        for i in range(n):
            tag, off, size, _ = struct.unpack("<8sQQQ", table[32 * i: 32 * i + 32])
            if tag.rstrip(b"\0") == b"VECS":
                f.seek(off)
                return np.frombuffer(f.read(size), dtype=np.float32)
    raise SystemExit("no VECS section")

model = torch.jit.load(model_path, map_location="cpu").eval()
with torch.no_grad():
    dim = model(torch.zeros(1, 3, 224, 224)).shape[1]
vectors = read_vectors(index_path).reshape(-1, dim)
transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
app = Flask(__name__)

@app.post("/api/search")
def search():
    k = int(request.args.get("k", 9))
    image = Image.open(io.BytesIO(request.get_data())).convert("RGB")
    with torch.no_grad():
        q = model(transform(image).unsqueeze(0))[0].numpy()
    q = q / np.linalg.norm(q)
    scores = vectors @ q
    top = np.argpartition(-scores, k)[:k]
    top = top[np.argsort(-scores[top])]
    return jsonify(results=[{"rank": r + 1, "id": int(i), "score": float(scores[i])} for r, i in enumerate(top)])

print(f"http://127.0.0.1:{port}/", flush=True)
app.run(host="127.0.0.1", port=port, threaded=True)
"""


def log(msg):
    print(f"[bench_serve] {msg}", file=sys.stderr, flush=True)


def wait_for_url(proc, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith("http://"):
            return line.strip()
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
    raise SystemExit("server printed no URL")


def wait_until_up(url, seconds=120):
    import urllib.request
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "healthz", timeout=2).read()
            return
        except Exception as e:  # noqa: BLE001
            if getattr(e, "code", None) == 404:  # Flask has no /healthz: it is up
                return
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def wrk(url, script, connections, seconds, env):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s", "-s", script, url]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **env), check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    pct = {p: to_ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"connections": connections, "rps": rate, "requests": total, "p50_ms": pct.get("50"),
            "p99_ms": pct.get("99"), "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0}


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure_uploads(name, url, tmp, env, concurrencies, seconds):
    script = os.path.join(tmp, "upload.lua")
    rows = []
    log(f"{name}: warm-up")
    wrk(url, script, 2, 3, env)
    for c in concurrencies:
        log(f"{name}: uploads at concurrency {c}, {seconds} s")
        r = wrk(url, script, c, seconds, env)
        log(f"  {r}")
        rows.append(r)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default="/work/cache/fashion44k-mobilenet.index")
    ap.add_argument("--imgsearch", default=os.path.join(ROOT, "build", "bin", "imgsearch"))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="3 s per run")
    ap.add_argument("--no-python", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    seconds = 3 if args.quick else args.seconds
    concurrencies = [1, 4, 16]

    tmp = tempfile.mkdtemp(prefix="bench-serve.")
    images = sorted(os.listdir(FASHION))[:64]
    with open(os.path.join(tmp, "list.txt"), "w") as f:
        f.writelines(os.path.join(FASHION, name) + "\n" for name in images)
    with open(os.path.join(tmp, "upload.lua"), "w") as f:
        f.write(UPLOAD_LUA)
    with open(os.path.join(tmp, "id.lua"), "w") as f:
        f.write(ID_LUA)
    env = {"BENCH_LIST": os.path.join(tmp, "list.txt")}
    index_mb = os.path.getsize(args.index) / 2**20
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    results = {"cpu": cpu, "cores": os.cpu_count(), "index_mb": index_mb, "seconds": seconds,
               "load_before": os.getloadavg()[0]}

    log(f"imgsearch serve -i {args.index}")
    start = time.time()
    server = subprocess.Popen([args.imgsearch, "serve", "-i", args.index, "--port", "0"], stdout=subprocess.PIPE,
                              stderr=open(os.path.join(tmp, "serve.err"), "w"), text=True)
    try:
        url = wait_for_url(server)
        wait_until_up(url)
        results["imgsearch_start_s"] = time.time() - start
        count = json.loads(__import__("urllib.request").request.urlopen(url + "api/info").read())["count"]
        results["imgsearch_uploads"] = measure_uploads("imgsearch", url, tmp, env, concurrencies, seconds)
        log("imgsearch: id searches at concurrency 4")
        results["imgsearch_ids"] = wrk(url, os.path.join(tmp, "id.lua"), 4, seconds,
                                       {"BENCH_COUNT": str(count)})
        log(f"  {results['imgsearch_ids']}")
        metrics = __import__("urllib.request").request.urlopen(url + "metrics").read().decode()
        b = re.search(r"\nimgsearch_inference_batches_total (\d+)", metrics)
        i = re.search(r"\nimgsearch_inference_images_total (\d+)", metrics)
        results["imgsearch_mean_batch"] = int(i.group(1)) / max(1, int(b.group(1)))
        results["imgsearch_rss_mb"] = peak_rss_mb(server.pid)
    finally:
        stop(server)
    results["imgsearch_exit"] = server.returncode

    if not args.no_python:
        script = os.path.join(tmp, "server.py")
        with open(script, "w") as f:
            f.write(PYTHON_SERVER)
        port = 18000 + os.getpid() % 1000
        log("seed-style Python server (Flask + torch.jit + PIL + NumPy)")
        py = subprocess.Popen(["/usr/bin/python3", script, args.index, MOBILENET, str(port)], stdout=subprocess.PIPE,
                              stderr=open(os.path.join(tmp, "python.err"), "w"), text=True,
                              env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))
        try:
            url = wait_for_url(py)
            wait_until_up(url)
            results["python_uploads"] = measure_uploads("python", url, tmp, env, concurrencies, seconds)
            results["python_rss_mb"] = peak_rss_mb(py.pid)
        finally:
            stop(py)

    results["load_after"] = os.getloadavg()[0]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    report(results)


def report(r):
    print(f"\nCPU: {r['cpu']} ({r['cores']} cores, shared by client and server); load average "
          f"{r['load_before']:.1f} before, {r['load_after']:.1f} after; {r['seconds']} s per run.\n")
    print("| uploads (POST /api/search?k=9) | concurrency | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, key in (("imgsearch serve", "imgsearch_uploads"), ("Python (Flask + torch + NumPy)", "python_uploads")):
        for row in r.get(key, []):
            print(f"| {name} | {row['connections']} | {row['rps']:.1f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
                  f"{row['non_2xx'] + row['socket_errors']} |")
    ids = r["imgsearch_ids"]
    print(f"\nid searches (GET /api/search?id=N&k=9, concurrency 4): {ids['rps']:.0f}/s, p50 {ids['p50_ms']:.2f} ms, "
          f"p99 {ids['p99_ms']:.2f} ms, {ids['non_2xx'] + ids['socket_errors']} errors")
    print(f"imgsearch serve: peak RSS {r['imgsearch_rss_mb']:.0f} MB (index file {r['index_mb']:.0f} MB); "
          f"mean CNN batch {r['imgsearch_mean_batch']:.2f} images; ready in {r['imgsearch_start_s']:.1f} s")
    if "python_uploads" in r:
        print(f"Python server: peak RSS {r['python_rss_mb']:.0f} MB")
        for a, b in zip(r["imgsearch_uploads"], r["python_uploads"]):
            print(f"  concurrency {a['connections']}: imgsearch / Python upload throughput = {a['rps'] / b['rps']:.2f}x")


if __name__ == "__main__":
    main()
