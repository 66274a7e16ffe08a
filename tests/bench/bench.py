#!/usr/bin/python3
"""imgsearch speed benchmark: imgsearch against the Python pipelines, same images, same run.

Run it with tests/bench/run.sh (see README "Performance" and docs/benchmarks.md).
It prints Markdown tables and writes every raw figure to WORK/results.json.

Sections (--only picks some):
  extract  Corel-1k end to end with ResNet50 and VGG16 (random weights, exported here) and
           the real MobileNetV2, bf16 and fp32; the seed-style and the tuned Python
           pipelines on the same images; img/s, ratios, peak RSS, P@10 and mAP.
  busy     ResNet50 bf16 extraction while another process keeps a core busy, with the
           default OpenMP wait policy (PASSIVE, set by imgsearch) and with ACTIVE.
  index    fashion44k (44k images, MobileNetV2 1280-d): features extracted once (cached
           in WORK), then `index --from-features` with 2 threads: build time, peak RSS.
  query    on that index: search latency p50/p95 and recall@10 against exact search for a
           range of ef (`imgsearch eval`), and the wall time of a cold
           `imgsearch query one.jpg`.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))
COREL = os.path.join(SHARED, "datasets", "corel1k", "images")
FASHION = os.path.join(SHARED, "datasets", "fashion44k")
MOBILENET = os.path.join(SHARED, "models", "mobilenet_v2", "mobilenet_v2_imagenet_embed.pt")
MOBILENET_NORM = ["--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"]
PY = "/usr/bin/python3"
TIME = "/usr/bin/time"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg():
    return os.getloadavg()[0]


def timed(cmd, env=None, stdin=None, capture=True):
    """Runs cmd under /usr/bin/time -v; returns (wall seconds, peak RSS MB, stdout, rc, load before)."""
    load = loadavg()
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        full = [TIME, "-v", "-o", tf.name] + cmd
        t0 = time.perf_counter()
        p = subprocess.run(full, env=env, stdin=stdin, stdout=subprocess.PIPE if capture else None,
                           stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        report = open(tf.name).read()
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    rss = int(m.group(1)) / 1024 if m else float("nan")
    if p.returncode not in (0, 3):
        log(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return wall, rss, p.stdout, p.returncode, load


def env_with(**kv):
    env = dict(os.environ)
    for k, v in kv.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


# ---------------------------------------------------------------- retrieval quality
def corel_quality(npy, txt):
    """Corel-1k protocol: every image a query against the others, relevant = same class."""
    import numpy as np
    x = np.load(npy).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = [os.path.basename(os.path.dirname(p)) for p in open(txt).read().split("\n") if p]
    lab = np.array(labels)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :-1]  # drop the query itself (last)
    rel = lab[order] == lab[:, None]
    p10 = rel[:, :10].mean()
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)
    nrel = rel.sum(axis=1)
    ap = np.where(nrel > 0, (rel * hits / ranks).sum(axis=1) / np.maximum(nrel, 1), 0)
    return float(p10), float(ap.mean())


def max_abs_cosine_gap(npy_a, npy_b):
    import numpy as np
    a, b = np.load(npy_a), np.load(npy_b)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


# ---------------------------------------------------------------- setup
def export_models(work):
    models = {}
    for arch in ("resnet50", "vgg16"):
        out = os.path.join(work, f"{arch}-random.pt")
        if not os.path.exists(out):
            log(f"exporting {arch} (random weights) to {out}")
            subprocess.run([PY, os.path.join(ROOT, "models", "export.py"), arch, "--weights", "random",
                            "-o", out], check=True, stderr=subprocess.DEVNULL)
        models[arch] = (out, [])
    models["mobilenet_v2"] = (MOBILENET, MOBILENET_NORM)
    return models


def corel_list(work, limit):
    classes = sorted(os.listdir(COREL))
    per_class = {c: sorted(os.listdir(os.path.join(COREL, c)), key=lambda n: int(os.path.splitext(n)[0]))
                 for c in classes}
    paths = []
    n_per = max(1, limit // len(classes)) if limit else None
    for c in classes:
        files = per_class[c][:n_per] if n_per else per_class[c]
        paths += [os.path.join(COREL, c, f) for f in files]
    out = os.path.join(work, f"corel-{len(paths)}.txt")
    with open(out, "w") as f:
        f.write("\n".join(paths) + "\n")
    return out, len(paths)


# ---------------------------------------------------------------- sections
def run_imgsearch_extract(args, model, norm, listfile, n, precision, out, env=None):
    with open(listfile) as stdin:
        wall, rss, _, rc, load = timed([args.imgsearch, "extract", "-", "-m", model, *norm, "--precision", precision,
                                        "--threads", str(args.threads), "--format", "npy", "-o", out],
                                       env=env, stdin=stdin)
    return {"wall_s": wall, "img_s": n / wall, "rss_mb": rss, "rc": rc, "load": load}


def run_python(args, style, model, norm, listfile, n, precision, out):
    cmd = [PY, os.path.join(HERE, "python_pipeline.py"), style, model, listfile, out, "--precision", precision,
           "--threads", str(args.threads), "--workers", str(args.py_workers)]
    if norm:
        cmd += ["--mean", norm[1], "--std", norm[3]]
    # The same OpenMP wait policy and spin count imgsearch gives itself: on a shared box the default
    # spin-waiting would make the Python side collapse, which is not what is compared here.
    wall, rss, stdout, rc, load = timed(cmd, env=env_with(OMP_WAIT_POLICY="PASSIVE", GOMP_SPINCOUNT="3000"))
    inner = json.loads(stdout.strip().splitlines()[-1]) if rc == 0 else {"seconds": float("nan")}
    # Python is credited with its inner loop only (no interpreter start, import or model load);
    # imgsearch steady img/s (start-up subtracted) is the like-for-like figure.
    return {"wall_s": wall, "loop_s": inner["seconds"], "img_s": n / inner["seconds"], "rss_mb": rss, "rc": rc,
            "load": load}


def section_extract(args, work, results):
    models = export_models(work)
    listfile, n = corel_list(work, args.images)
    # The first few images alone: imgsearch's start-up (process, LibTorch, model load and
    # preparation, first batches), so that its steady rate can be set beside Python's inner
    # loop, which excludes start-up.
    head = os.path.join(work, "corel-head.txt")
    with open(listfile) as f, open(head, "w") as g:
        g.writelines(f.readlines()[:args.head_images])
    rows = []
    for name in args.models:
        model, norm = models[name]
        for precision in ("bf16", "fp32"):
            out = os.path.join(work, f"corel-{name}-{precision}-imgsearch.npy")
            log(f"imgsearch extract {name} {precision} on {n} Corel images")
            r = run_imgsearch_extract(args, model, norm, listfile, n, precision, out)
            r["p10"], r["map"] = corel_quality(out, out[:-4] + ".txt")
            h = run_imgsearch_extract(args, model, norm, head, args.head_images, precision, out + ".head.npy")
            r["startup_s"] = h["wall_s"]
            r["steady_img_s"] = (n - args.head_images) / (r["wall_s"] - h["wall_s"])
            rows.append({"model": name, "pipeline": "imgsearch", "precision": precision, **r})
        if not args.no_python:
            for style, precision in (("seed", "fp32"), ("tuned", "bf16"), ("tuned", "fp32")):
                out = os.path.join(work, f"corel-{name}-{precision}-{style}.npy")
                log(f"python {style} {name} {precision} on {n} Corel images")
                r = run_python(args, style, model, norm, listfile, n, precision, out)
                if r["rc"] == 0:
                    r["p10"], r["map"] = corel_quality(out, out[:-4] + ".txt")
                rows.append({"model": name, "pipeline": f"python-{style}", "precision": precision, **r})
        # bf16 against fp32, the same images: worst cosine between the two feature sets
        a = os.path.join(work, f"corel-{name}-bf16-imgsearch.npy")
        b = os.path.join(work, f"corel-{name}-fp32-imgsearch.npy")
        results.setdefault("bf16_vs_fp32_min_cosine", {})[name] = max_abs_cosine_gap(a, b)
    results["extract"] = rows
    results["corel_images"] = n


def section_busy(args, work, results):
    models = export_models(work)
    listfile, n = corel_list(work, args.busy_images)
    model, norm = models["resnet50"]
    out = os.path.join(work, "busy.npy")
    rows = []
    for busy in (False, True):
        for policy in (None, "PASSIVE", "ACTIVE"):
            hog = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) if busy else None
            try:
                time.sleep(0.5 if busy else 0)
                log(f"busy={busy} OMP_WAIT_POLICY={policy or 'unset (imgsearch: PASSIVE, GOMP_SPINCOUNT=3000)'}")
                r = run_imgsearch_extract(args, model, norm, listfile, n, "bf16", out,
                                          env=env_with(OMP_WAIT_POLICY=policy))
            finally:
                if hog:
                    hog.send_signal(signal.SIGTERM)
                    hog.wait()
            rows.append({"busy": busy, "omp_wait_policy": policy or "imgsearch default (PASSIVE + spin 3000)", **r})
    results["busy"] = {"images": n, "rows": rows}


def fashion_features(args, work, results):
    feats = os.path.join(work, "fashion44k-mobilenet_v2.features")
    if os.path.exists(feats):
        return feats
    log("extracting fashion44k features with MobileNetV2 (once; cached in the work dir)")
    wall, rss, _, rc, load = timed([args.imgsearch, "extract", os.path.join(FASHION, "images"), "-m", MOBILENET,
                                    *MOBILENET_NORM, "--threads", str(args.threads), "-o", feats + ".tmp"])
    if rc not in (0, 3):
        sys.exit("fashion44k extraction failed")
    os.rename(feats + ".tmp", feats)
    results["fashion_extract"] = {"images": 44072, "wall_s": wall, "img_s": 44072 / wall, "rss_mb": rss,
                                  "load": load}
    return feats


def fashion_full_index(args, work, results):
    """`imgsearch index` on the 44k images from nothing: what a user runs; its peak RSS is the
    memory target (decode workers, model, queue, vectors and graph together)."""
    index = os.path.join(work, "fashion44k-full.index")
    if os.path.exists(index):
        os.remove(index)
    log("imgsearch index fashion44k images from scratch (MobileNetV2, default precision)")
    wall, rss, out, rc, load = timed([args.imgsearch, "index", os.path.join(FASHION, "images"), "-i", index,
                                      "-m", MOBILENET, *MOBILENET_NORM, "--threads", str(args.threads)])
    results["fashion_index_full"] = {"images": 44072, "wall_s": wall, "img_s": 44072 / wall, "rss_mb": rss,
                                     "rc": rc, "load": load, "summary": out.strip().splitlines()[-1:]}
    os.remove(index)


def section_index(args, work, results):
    if not args.no_full_index:
        fashion_full_index(args, work, results)
    feats = fashion_features(args, work, results)
    index = os.path.join(work, "fashion44k.index")
    runs = []
    for _ in range(args.repeat):
        if os.path.exists(index):
            os.remove(index)
        log("index --from-features fashion44k")
        wall, rss, _, rc, load = timed([args.imgsearch, "index", "--from-features", feats, "-i", index,
                                        "--threads", str(args.threads)])
        runs.append({"wall_s": wall, "rss_mb": rss, "rc": rc, "load": load})
    best = min(runs, key=lambda r: r["wall_s"])
    results["index"] = {"vectors": 44072, "dim": 1280, "runs": runs, "best": best}


def first_fashion_image():
    d = os.path.join(FASHION, "images")
    return os.path.join(d, sorted(os.listdir(d))[0])


def section_query(args, work, results):
    index = os.path.join(work, "fashion44k.index")
    if not os.path.exists(index):
        section_index(args, work, results)
    sweep = []
    for ef in args.ef:
        log(f"eval --ef {ef} on fashion44k ({args.queries} queries)")
        p = subprocess.run([args.imgsearch, "eval", "-i", index, "--labels", os.path.join(FASHION, "labels.csv"),
                            "--label-column", "article_type", "--queries", str(args.queries), "--ef", str(ef),
                            "-k", "10", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            log(f"eval failed: {p.stderr[-500:]}")
            break
        j = json.loads(p.stdout)
        sweep.append({"ef": ef, "recall@10": j.get("ann_recall@10"), "p50_ms": j["latency_ms"]["p50"],
                      "p95_ms": j["latency_ms"]["p95"], "mAP": j.get("mAP"), "P@10": j.get("P@10")})
    results["query_sweep"] = sweep

    image = first_fashion_image()
    cold = []
    base = []
    for _ in range(args.repeat_cold):
        wall, rss, _, rc, load = timed([args.imgsearch, "query", image, "-i", index, "-k", "10"])
        cold.append({"wall_s": wall, "rss_mb": rss, "rc": rc, "load": load})
        wall, rss, _, rc, load = timed([args.imgsearch, "--version"])
        base.append(wall)
    results["cold_query"] = {"image": image, "runs": cold, "median_s": statistics.median(r["wall_s"] for r in cold),
                             "min_s": min(r["wall_s"] for r in cold),
                             "version_median_s": statistics.median(base)}


# ---------------------------------------------------------------- report
def fmt(v, spec=".1f"):
    return "–" if v is None or (isinstance(v, float) and v != v) else format(v, spec)


def report(results):
    lines = []
    if "extract" in results:
        rows = results["extract"]
        lines.append(f"\n### Extraction, Corel-1k ({results['corel_images']} images), "
                     f"{results['threads']} threads, end to end\n")
        lines.append("| model | pipeline | precision | img/s | × seed | × tuned (same precision) "
                     "| steady img/s | steady × tuned | peak RSS MB | P@10 | mAP | load |")
        lines.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            seed = next((s for s in rows if s["model"] == r["model"] and s["pipeline"] == "python-seed"), None)
            tuned = next((s for s in rows if s["model"] == r["model"] and s["pipeline"] == "python-tuned"
                          and s["precision"] == r["precision"]), None)
            xs = r["img_s"] / seed["img_s"] if seed and r["pipeline"] != "python-seed" else None
            xt = r["img_s"] / tuned["img_s"] if tuned and r["pipeline"] == "imgsearch" else None
            steady = r.get("steady_img_s")
            st = steady / tuned["img_s"] if tuned and steady else None
            lines.append(f"| {r['model']} | {r['pipeline']} | {r['precision']} | {fmt(r['img_s'])} | "
                         f"{fmt(xs, '.2f')} | {fmt(xt, '.2f')} | {fmt(steady)} | {fmt(st, '.2f')} | "
                         f"{fmt(r['rss_mb'], '.0f')} | "
                         f"{fmt(r.get('p10'), '.3f')} | {fmt(r.get('map'), '.4f')} | {fmt(r['load'], '.2f')} |")
        if "bf16_vs_fp32_min_cosine" in results:
            lines.append("\nbf16 vs fp32 features, same images, lowest cosine: " +
                         ", ".join(f"{k} {v:.5f}" for k, v in results["bf16_vs_fp32_min_cosine"].items()))
    if "busy" in results:
        b = results["busy"]
        lines.append(f"\n### ResNet50 bf16 extraction, {b['images']} Corel images, with another busy process\n")
        lines.append("| other process | OMP_WAIT_POLICY | img/s | load |")
        lines.append("|---|---|---:|---:|")
        for r in b["rows"]:
            lines.append(f"| {'`yes > /dev/null`' if r['busy'] else 'none'} | {r['omp_wait_policy']} | "
                         f"{fmt(r['img_s'])} | {fmt(r['load'], '.2f')} |")
    if "fashion_extract" in results:
        f = results["fashion_extract"]
        lines.append(f"\nfashion44k extraction (MobileNetV2, default precision): {f['img_s']:.0f} img/s, "
                     f"{f['wall_s']:.0f} s, peak RSS {f['rss_mb']:.0f} MB")
    if "fashion_index_full" in results:
        f = results["fashion_index_full"]
        lines.append(f"\n`imgsearch index` on the fashion44k images from scratch (extract + build + save): "
                     f"{f['wall_s']:.0f} s ({f['img_s']:.0f} img/s), peak RSS {f['rss_mb']:.0f} MB")
    if "index" in results:
        i = results["index"]["best"]
        lines.append(f"\n### Index build, fashion44k, 44,072 × 1280, {results['threads']} threads\n")
        lines.append(f"`index --from-features`: {i['wall_s']:.1f} s (best of {len(results['index']['runs'])}), "
                     f"peak RSS {i['rss_mb']:.0f} MB, load {i['load']:.2f}")
    if "query_sweep" in results:
        lines.append("\n### Search, fashion44k index (`imgsearch eval`, article_type labels)\n")
        lines.append("| ef | recall@10 | p50 ms | p95 ms | mAP | P@10 |")
        lines.append("|---:|---:|---:|---:|---:|---:|")
        for r in results["query_sweep"]:
            lines.append(f"| {r['ef']} | {fmt(r['recall@10'], '.4f')} | {fmt(r['p50_ms'], '.3f')} | "
                         f"{fmt(r['p95_ms'], '.3f')} | {fmt(r['mAP'], '.4f')} | {fmt(r['P@10'], '.4f')} |")
    if "cold_query" in results:
        c = results["cold_query"]
        lines.append(f"\ncold `imgsearch query one.jpg` on the fashion44k index: median {c['median_s']:.3f} s, "
                     f"min {c['min_s']:.3f} s over {len(c['runs'])} runs (peak RSS "
                     f"{c['runs'][0]['rss_mb']:.0f} MB); `imgsearch --version` alone: {c['version_median_s']:.3f} s")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("IMGSEARCH_BUILD", os.path.join(ROOT, "build")),
                    help="build directory holding bin/imgsearch (default: build, or $IMGSEARCH_BUILD)")
    ap.add_argument("--work", default=os.environ.get("IMGSEARCH_BENCH_DIR", "/tmp/imgsearch-bench"),
                    help="scratch dir: exported models, cached fashion44k features, outputs")
    ap.add_argument("--only", default="extract,busy,index,query", help="comma-separated sections")
    ap.add_argument("--models", default="resnet50,vgg16,mobilenet_v2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=0, help="Corel images (evenly per class); 0 = all 1000")
    ap.add_argument("--busy-images", type=int, default=300)
    ap.add_argument("--head-images", type=int, default=16, help="images of the start-up run (steady rate)")
    ap.add_argument("--py-workers", type=int, default=1, help="DataLoader workers of the tuned Python pipeline")
    ap.add_argument("--no-python", action="store_true", help="skip the Python pipelines")
    ap.add_argument("--no-full-index", action="store_true",
                    help="skip `imgsearch index` on the 44k fashion images from scratch (about 5 min)")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--ef", default="10,16,24,32,48,64,128")
    ap.add_argument("--repeat", type=int, default=2, help="index builds (best is reported)")
    ap.add_argument("--repeat-cold", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smoke run: 100 Corel images, fewer repeats")
    args = ap.parse_args()
    if args.quick:
        args.images, args.busy_images, args.queries, args.repeat, args.repeat_cold = 100, 40, 300, 1, 2
        args.no_full_index = True
    args.models = args.models.split(",")
    args.ef = [int(v) for v in args.ef.split(",")]
    args.imgsearch = os.path.join(args.build, "bin", "imgsearch")
    if not os.access(args.imgsearch, os.X_OK):
        sys.exit(f"no {args.imgsearch}; build first (cmake --build build) or pass --build DIR")
    if not os.access(TIME, os.X_OK):
        sys.exit("needs GNU time at /usr/bin/time (Debian package 'time')")
    os.makedirs(args.work, exist_ok=True)

    results = {"threads": args.threads, "machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    sections = args.only.split(",")
    for name, fn in (("extract", section_extract), ("busy", section_busy), ("index", section_index),
                     ("query", section_query)):
        if name in sections:
            fn(args, args.work, results)
    results["load_at_end"] = loadavg()
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"machine: {results['machine']}")
    print(report(results))
    print(f"\nraw figures: {os.path.join(args.work, 'results.json')}")


def machine():
    model = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    torch_version = subprocess.run([PY, "-c", "import torch; print(torch.__version__)"], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True).stdout.strip()
    flags = open("/proc/cpuinfo").read()
    bf16 = "amx_bf16" in flags or "avx512_bf16" in flags
    return (f"{model}, {os.cpu_count()} logical CPUs, native bf16: {'yes' if bf16 else 'no'}, "
            f"Python torch {torch_version}")


if __name__ == "__main__":
    main()
