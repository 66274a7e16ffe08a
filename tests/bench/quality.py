#!/usr/bin/python3
"""Retrieval quality of imgsearch's post-processing settings on the four shared datasets and
the edited-copy check, measured by `imgsearch eval` (docs/eval.md, "Post-processing").

    tests/bench/quality.py --work DIR [--build build] [--only corel,ukbench,holidays,fashion,edits]
        [--settings none,qe=1,dba=1+qe=1,pca=256,...] [--fashion-index FILE --fashion-queries 5000]
        [--descriptor rmac]

Indexes are built once under --work (never in the repository) with the real MobileNetV2
from ../shared and reused; every setting is applied by `eval --dba K --qe K` in memory, so
the indexes themselves are never changed, except `pca=N`: a copy of the index beside it
(INDEX.pcaN, reused) gets `learn --pca --dim N` (fitted on that index's own images, no
labels). The edited copies are generated here with PIL.

Edited-copy check: 150 Corel-1k and 150 Holidays photos, each with seven edits (resize to
half, centre crop of 70 %, JPEG quality 20, Gaussian blur radius 2, greyscale, mirror,
brightness x1.5). For each edit one index holds the 300 originals and their 300 edited
copies; every copy is a query and only its own original counts as relevant (the other 598
images are distractors): the figure is P@1, the rate at which the copy's top hit (itself
left out) is its original, averaged over the seven edits (the worst edit is named).
(With all seven edits in one index the near-identical sibling copies, not the original,
win the top rank, which says nothing about finding the original.)
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
DATA = os.path.join(SHARED, "datasets")
MODEL = os.path.join(SHARED, "models", "mobilenet_v2", "mobilenet_v2_imagenet_embed.pt")
MODEL_ARGS = ["-m", MODEL, "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"]
DESCRIPTOR_ARGS = []  # --descriptor: passed to every index build (use a --work of its own)
EDITS = ["resize", "crop", "jpeg", "blur", "grey", "mirror", "bright"]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, **kw).stdout


def make_edits(folder):
    """Originals and their edits under folder/images; returns (labels csv, {edit: query list})."""
    from PIL import Image, ImageEnhance, ImageFilter, ImageOps
    done = os.path.join(folder, "done")
    originals = []
    corel = sorted(os.listdir(os.path.join(DATA, "corel1k", "images")))
    for c in corel:  # 15 per class
        files = sorted(os.listdir(os.path.join(DATA, "corel1k", "images", c)))[:15]
        originals += [(os.path.join(DATA, "corel1k", "images", c, f), "corel" + os.path.splitext(f)[0]) for f in files]
    with open(os.path.join(DATA, "holidays300", "queries.txt")) as f:
        hol = [l.strip() for l in f if l.strip()][:150]
    originals += [(os.path.join(DATA, "holidays300", p), "hol" + os.path.splitext(os.path.basename(p))[0]) for p in hol]
    if not os.path.exists(done):
        for sub in ["orig"] + EDITS:
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
        for path, stem in originals:
            im = Image.open(path).convert("RGB")
            im.save(os.path.join(folder, "orig", stem + ".jpg"), quality=95)
            w, h = im.size
            edits = {
                "resize": im.resize((max(1, w // 2), max(1, h // 2)), Image.BILINEAR),
                "crop": im.crop((int(w * 0.15), int(h * 0.15), int(w * 0.85), int(h * 0.85))),
                "jpeg": im,
                "blur": im.filter(ImageFilter.GaussianBlur(2)),
                "grey": ImageOps.grayscale(im).convert("RGB"),
                "mirror": ImageOps.mirror(im),
                "bright": ImageEnhance.Brightness(im).enhance(1.5),
            }
            for name, e in edits.items():
                e.save(os.path.join(folder, name, "%s__%s.jpg" % (stem, name)), quality=20 if name == "jpeg" else 90)
        open(done, "w").close()
    lists = {}
    for edit in EDITS:
        csv = os.path.join(folder, "labels_%s.csv" % edit)
        qlist = os.path.join(folder, "queries_%s.txt" % edit)
        with open(csv, "w") as f:
            f.write("id,group\n")
            for _, stem in originals:
                f.write("%s,%s\n%s__%s,%s\n" % (stem, stem, stem, edit, stem))
        with open(qlist, "w") as f:
            for _, stem in originals:
                f.write("%s/%s__%s.jpg\n" % (edit, stem, edit))
        lists[edit] = (csv, qlist)
    return lists


def ensure_index(imgsearch, index, folders):
    if os.path.exists(index):
        return
    t = time.time()
    run([imgsearch, "index", *folders, "-i", index, *MODEL_ARGS, *DESCRIPTOR_ARGS])
    print("built %s in %.0f s" % (index, time.time() - t), file=sys.stderr)


def setting_args(setting):
    args = []
    if setting == "none":
        return ["--dba", "0", "--qe", "0"]
    parts = dict(p.split("=") for p in setting.split("+"))
    parts.pop("pca", None)
    args += ["--dba", parts.get("dba", "0"), "--qe", parts.get("qe", "0")]
    if "dbaa" in parts:
        args += ["--dba-alpha", parts["dbaa"]]
    if "qea" in parts:
        args += ["--qe-alpha", parts["qea"]]
    return args


def pca_copy(imgsearch, index, setting):
    """The index to evaluate: itself, or for pca=N its copy with the PCA projection."""
    parts = dict(p.split("=") for p in setting.split("+")) if setting != "none" else {}
    if "pca" not in parts:
        return index
    copy = "%s.pca%s" % (index, parts["pca"])
    if not os.path.exists(copy):
        tmp = copy + ".tmp"
        subprocess.run(["cp", index, tmp], check=True)
        run([imgsearch, "learn", "-i", tmp, "--pca", "--dim", parts["pca"]])
        os.rename(tmp, copy)
    return copy


def evaluate(imgsearch, index, extra, setting):
    index = pca_copy(imgsearch, index, setting)
    out = run([imgsearch, "eval", "-i", index, "--json", "-k", "1,10", *extra, *setting_args(setting)])
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--only", default="corel,ukbench,holidays,fashion,edits")
    # The rows of docs/eval.md's table (fashion44k runs take minutes per augmented setting).
    ap.add_argument("--settings", default="none,qe=1,qe=2,qe=5,qe=10,dba=1,dba=2,dba=1+qe=1,dba=1+qe=2,dba=2+qe=2,"
                                          "dba=3+qe=3,dba=5+qe=5,dba=10+qe=10,dba=10+qe=10+dbaa=1+qea=1,"
                                          "dba=15+qe=15,dba=20+qe=20")
    ap.add_argument("--descriptor", default="", help="e.g. rmac: indexes are built with it (a --work of its own)")
    ap.add_argument("--fashion-index", default="")
    ap.add_argument("--fashion-queries", default="5000")
    a = ap.parse_args()
    imgsearch = os.path.join(a.build, "bin", "imgsearch")
    os.makedirs(a.work, exist_ok=True)
    if a.descriptor:
        DESCRIPTOR_ARGS[:] = ["--descriptor", a.descriptor]
    only = a.only.split(",")
    settings = a.settings.split(",")
    rows = {s: {} for s in settings}
    if "corel" in only:
        idx = os.path.join(a.work, "corel.index")
        ensure_index(imgsearch, idx, [os.path.join(DATA, "corel1k", "images")])
        for s in settings:
            j = evaluate(imgsearch, idx, [], s)
            rows[s]["corel"] = "%.3f / %.3f" % (j["mAP"], j["P@10"])
            print(s, "corel", rows[s]["corel"], "latency p50 %.3f ms" % j["latency_ms"]["p50"], flush=True)
    if "ukbench" in only:
        idx = os.path.join(a.work, "ukbench.index")
        ensure_index(imgsearch, idx, [os.path.join(DATA, "ukbench1000", "images")])
        lab = ["--labels", os.path.join(DATA, "ukbench1000", "labels.csv"), "--label-column", "object"]
        for s in settings:
            j = evaluate(imgsearch, idx, lab, s)
            rows[s]["ukbench"] = "%.3f" % j["N-S"]
            print(s, "ukbench N-S", rows[s]["ukbench"], flush=True)
    if "holidays" in only:
        idx = os.path.join(a.work, "holidays.index")
        ensure_index(imgsearch, idx, [os.path.join(DATA, "holidays300", "images")])
        lab = ["--labels", os.path.join(DATA, "holidays300", "labels.csv"), "--label-column", "scene",
               "--query-list", os.path.join(DATA, "holidays300", "queries.txt")]
        for s in settings:
            j = evaluate(imgsearch, idx, lab, s)
            rows[s]["holidays"] = "%.3f" % j["mAP"]
            print(s, "holidays mAP", rows[s]["holidays"], flush=True)
    if "fashion" in only and a.fashion_index:
        lab = ["--labels", os.path.join(DATA, "fashion44k", "labels.csv"), "--label-column", "article_type",
               "--queries", a.fashion_queries]
        for s in settings:
            t = time.time()
            j = evaluate(imgsearch, a.fashion_index, lab, s)
            rows[s]["fashion"] = "%.3f / %.3f" % (j["mAP"], j["P@10"])
            print(s, "fashion", rows[s]["fashion"], "(%.0f s)" % (time.time() - t), flush=True)
    if "edits" in only:
        folder = os.path.join(a.work, "edits")
        lists = make_edits(folder)
        for edit in EDITS:
            ensure_index(imgsearch, os.path.join(a.work, "edits-%s.index" % edit),
                         [os.path.join(folder, "orig"), os.path.join(folder, edit)])
        for s in settings:
            hits = []
            for edit in EDITS:
                csv, qlist = lists[edit]
                idx = os.path.join(a.work, "edits-%s.index" % edit)
                j = evaluate(imgsearch, idx, ["--labels", csv, "--label-column", "group", "--query-list", qlist], s)
                hits.append(j["P@1"])
            rows[s]["edits"] = "%.3f (min %.2f %s)" % (sum(hits) / len(hits), min(hits), EDITS[hits.index(min(hits))])
            print(s, "edited copies top-1", rows[s]["edits"], flush=True)
    cols = [c for c in ["corel", "ukbench", "holidays", "fashion", "edits"] if any(c in r for r in rows.values())]
    print("| setting | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for s in settings:
        print("| %s | %s |" % (s, " | ".join(rows[s].get(c, "") for c in cols)))


if __name__ == "__main__":
    main()
