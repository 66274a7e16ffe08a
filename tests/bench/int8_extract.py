#!/usr/bin/python3
"""int8 extraction against bf16, fp32 and the Python pipelines, same run (issue 13).

    tests/bench/run_scale.sh --only extract [--images 200] [--models resnet50,vgg16,mobilenet_v2]

Corel images end to end with ResNet50 and VGG16 (random weights: speed only) and MobileNetV2
(the real weights, from the shared torchvision-layout state_dict): imgsearch with the int8
file (exported here with `--quantize int8 --calibrate` on 4 other Corel photos a class),
with the unquantised file in bf16 and in fp32, and the seed-style (fp32) and tuned (bf16)
Python pipelines. img/s, peak RSS, the worst int8-against-fp32 cosine, and for MobileNetV2
the Corel protocol's mAP of each precision within the timed images. imgsearch is timed as a
whole process; Python is credited with its inner loop only (bench.py says why).
Prints Markdown tables; raw figures in WORK/int8-extract.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (timed, corel_list, run_imgsearch_extract, run_python, corel_quality)

STATE_DICT = os.path.join(bench.SHARED, "models", "mobilenet_v2", "mobilenet_v2_torchvision_state_dict.pth")
log = bench.log


def export(args, arch, weights, norm):
    """The unquantised and the int8 file of `arch`, calibrated on images the runs do not time."""
    calib = os.path.join(args.work, "calibration")
    if not os.path.isdir(calib):
        os.makedirs(calib)
        for c in sorted(os.listdir(bench.COREL)):
            files = sorted(os.listdir(os.path.join(bench.COREL, c)), key=lambda n: int(os.path.splitext(n)[0]))
            for f in files[-4:]:  # corel_list takes each class's first images
                os.symlink(os.path.join(bench.COREL, c, f), os.path.join(calib, f"{c}-{f}"))
    outs = {}
    for q in ("none", "int8"):
        out = os.path.join(args.work, f"{arch}-{q}.pt")
        if not os.path.exists(out):
            log(f"exporting {arch} ({q})")
            cmd = [bench.PY, os.path.join(bench.ROOT, "models", "export.py"), arch, "--weights", weights, "-o", out]
            cmd += bench.MOBILENET_NORM if norm else []
            if q == "int8":
                cmd += ["--quantize", "int8", "--calibrate", calib, "--calibrate-count", str(args.calibrate_count)]
            subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL, env=bench.env_with(OMP_WAIT_POLICY="PASSIVE"))
        outs[q] = out
    return outs


def run(args):
    listfile, n = bench.corel_list(args.work, args.images)
    rows, cosines = [], {}
    for arch in args.models:
        weights, norm = (STATE_DICT, True) if arch == "mobilenet_v2" else ("random", False)
        files = export(args, arch, weights, norm)
        for precision, model in (("int8", files["int8"]), ("bf16", files["none"]), ("fp32", files["none"])):
            out = os.path.join(args.work, f"{arch}-{precision}.npy")
            log(f"imgsearch extract {arch} {precision} on {n} Corel images")
            # The model files carry their normalisation: no --mean/--std.
            r = bench.run_imgsearch_extract(args, model, [], listfile, n, precision, out)
            if r["rc"] != 0:  # e.g. int8 on a CPU without VNNI, which imgsearch refuses
                r["img_s"] = float("nan")
                if os.path.exists(out):
                    os.remove(out)
            elif arch == "mobilenet_v2":
                r["p10"], r["map"] = bench.corel_quality(out, out[:-4] + ".txt")
            rows.append({"model": arch, "pipeline": "imgsearch", "precision": precision, **r})
        pair = [os.path.join(args.work, f"{arch}-{p}.npy") for p in ("int8", "fp32")]
        if all(os.path.exists(p) for p in pair):
            cosines[arch] = bench.max_abs_cosine_gap(*pair)
        if not args.no_python:
            for style, precision in (("seed", "fp32"), ("tuned", "bf16")):
                out = os.path.join(args.work, f"{arch}-{precision}-{style}.npy")
                log(f"python {style} {arch} {precision} on {n} Corel images")
                r = bench.run_python(args, style, files["none"], bench.MOBILENET_NORM if norm else [], listfile, n,
                                     precision, out)
                rows.append({"model": arch, "pipeline": f"python-{style}", "precision": precision, **r})
    return {"images": n, "rows": rows, "int8_vs_fp32_min_cosine": cosines}


def report(e):
    lines = [f"Extraction, {e['images']} Corel images, end to end", "",
             "| model | imgsearch int8 | imgsearch bf16 | imgsearch fp32 | Python seed (fp32) | Python tuned (bf16) "
             "| int8 ÷ bf16 | int8 ÷ seed |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    rate = {(r["model"], r["pipeline"], r["precision"]): r["img_s"] for r in e["rows"]}
    for m in dict.fromkeys(r["model"] for r in e["rows"]):
        i8, bf, fp = (rate.get((m, "imgsearch", p), float("nan")) for p in ("int8", "bf16", "fp32"))
        seed, tuned = rate.get((m, "python-seed", "fp32"), float("nan")), rate.get((m, "python-tuned", "bf16"), float("nan"))
        lines.append(f"| {m} | {i8:.1f} img/s | {bf:.1f} | {fp:.1f} | {seed:.1f} | {tuned:.1f} | {i8 / bf:.2f}x | "
                     f"{i8 / seed:.1f}x |")
    lines += ["", "| model | pipeline | precision | img/s | peak RSS MB | mAP (Corel, within the images) | load |",
              "|---|---|---|---:|---:|---:|---:|"]
    for r in e["rows"]:
        quality = f"{r['map']:.4f}" if "map" in r else ""
        lines.append(f"| {r['model']} | {r['pipeline']} | {r['precision']} | {r['img_s']:.1f} | {r['rss_mb']:.0f} | "
                     f"{quality} | {r['load']:.1f} |")
    lines += ["", "int8 against fp32, worst cosine over the images: " +
              (", ".join(f"{k} {v:.3f}" for k, v in e["int8_vs_fp32_min_cosine"].items()) or "no int8 run succeeded")]
    if any(r["rc"] != 0 for r in e["rows"]):
        lines.append("nan: the run failed (imgsearch refuses int8 models on CPUs without VNNI; its message is above)")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("IMGSEARCH_BUILD", os.path.join(bench.ROOT, "build")))
    ap.add_argument("--work", default=os.environ.get("IMGSEARCH_BENCH_DIR", "/tmp/imgsearch-int8-bench"))
    ap.add_argument("--models", default="resnet50,vgg16,mobilenet_v2")
    ap.add_argument("--images", type=int, default=200, help="Corel images per run (evenly per class)")
    ap.add_argument("--calibrate-count", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--py-workers", type=int, default=1)
    ap.add_argument("--no-python", action="store_true")
    args = ap.parse_args()
    args.imgsearch = os.path.join(args.build, "bin", "imgsearch")
    if not os.access(args.imgsearch, os.X_OK):
        sys.exit(f"no {args.imgsearch}; build first or pass --build DIR")
    args.models = args.models.split(",")
    os.makedirs(args.work, exist_ok=True)
    results = {"machine": bench.machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "threads": args.threads, "extract": run(args), "load_at_end": bench.loadavg()}
    with open(os.path.join(args.work, "int8-extract.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"machine: {results['machine']}\n")
    print(report(results["extract"]))


if __name__ == "__main__":
    main()
