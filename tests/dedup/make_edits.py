#!/usr/bin/python3
"""Makes an edited-copy set for measuring `imgsearch dedup`, with its ground truth.

From each chosen original (Corel-1k by default: 100 photos per class, so near-identical
non-duplicates such as two renders of one dinosaur are in the set) it writes edited
copies: resize, crops, JPEG quality, blur, brightness/contrast/gamma, grey, mirror,
90-degree rotation in pixels and by EXIF tag, small rotation, aspect change, border and
letterbox, text and logo overlays, PNG/WebP conversion, a screenshot-like rescale and
pairs of these. Distractor originals (no copies) are copied in as they are.

    make_edits.py --source ../shared/datasets/corel1k/images --out DIR
                  [--per-class 10] [--distractors-per-class 0] [--edits all|NAME,...] [--seed 1]

Writes DIR/originals/<class>_<id>.jpg, DIR/edits/<class>_<id>__<edit>.<ext> and
DIR/ground_truth.csv with one row per image: group,path,edit (group = the original's
name; distractors get their own name as group and edit "distractor").
"""
import argparse
import csv
import io
import os
import random
import shutil
import sys

from PIL import Image, ImageDraw, ImageFilter, ImageEnhance, ImageOps


def jpeg(img, q):
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=q)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def crop(img, frac, rnd):
    w, h = img.size
    cw, ch = int(w * frac), int(h * frac)
    x, y = rnd.randint(0, w - cw), rnd.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch))


def resize(img, frac):
    w, h = img.size
    return img.resize((max(1, int(w * frac)), max(1, int(h * frac))), Image.LANCZOS)


def gamma(img, g):
    lut = [min(255, int(255 * (i / 255) ** g + 0.5)) for i in range(256)] * 3
    return img.point(lut)


def text_overlay(img, rnd):
    out = img.copy()
    d = ImageDraw.Draw(out)
    w, h = out.size
    y = rnd.randint(h // 2, h - 20)
    d.rectangle((0, y - 2, w, y + 14), fill=(0, 0, 0))
    d.text((6, y), "(c) imgsearch test %d" % rnd.randint(1000, 9999), fill=(255, 255, 255))
    return out


def logo_overlay(img, rnd):
    out = img.copy()
    d = ImageDraw.Draw(out)
    w, h = out.size
    s = max(12, min(w, h) // 6)
    x, y = w - s - 6, 6
    d.ellipse((x, y, x + s, y + s), fill=(220, 30, 30), outline=(255, 255, 255), width=2)
    d.text((x + s // 4, y + s // 3), "LOGO", fill=(255, 255, 255))
    return out


def border(img, frac, colour):
    w, h = img.size
    b = max(2, int(min(w, h) * frac))
    return ImageOps.expand(img, border=b, fill=colour)


def letterbox(img):
    w, h = img.size
    target_w = int(h * 16 / 9)
    if target_w <= w:  # already wide: bars above and below instead
        target_h = int(w * 9 / 16) if w * 9 // 16 > h else int(h * 1.3)
        out = Image.new("RGB", (w, target_h), (0, 0, 0))
        out.paste(img, (0, (target_h - h) // 2))
        return out
    out = Image.new("RGB", (target_w, h), (0, 0, 0))
    out.paste(img, ((target_w - w) // 2, 0))
    return out


def screenshot(img):
    # A browser window at an odd zoom: bilinear upscale, grey chrome around, saved as PNG.
    w, h = img.size
    z = resize(img, 1.37)
    zw, zh = z.size
    out = Image.new("RGB", (zw + 40, zh + 90), (235, 235, 238))
    d = ImageDraw.Draw(out)
    d.rectangle((0, 0, zw + 40, 50), fill=(60, 64, 70))
    d.text((12, 18), "https://example.test/photo", fill=(230, 230, 230))
    out.paste(z, (20, 60))
    return out


# name -> (function(img, rnd) -> PIL image, file format, extra save args)
def edits():
    e = {}
    e["resize50"] = (lambda im, r: resize(im, 0.5), "JPEG", {})
    e["resize25"] = (lambda im, r: resize(im, r.uniform(0.25, 0.35)), "JPEG", {})
    for pct in (90, 80, 70, 60):
        e["crop%d" % pct] = (lambda im, r, p=pct: crop(im, p / 100 + r.uniform(-0.03, 0.03), r), "JPEG", {})
    e["jpeg_q10"] = (lambda im, r: im, "JPEG", {"quality": 10})
    e["jpeg_q20"] = (lambda im, r: im, "JPEG", {"quality": 20})
    e["jpeg_q30"] = (lambda im, r: im, "JPEG", {"quality": 30})
    e["blur"] = (lambda im, r: im.filter(ImageFilter.GaussianBlur(r.uniform(1.5, 3))), "JPEG", {})
    e["brightness"] = (lambda im, r: ImageEnhance.Brightness(im).enhance(r.choice([0.65, 1.35])), "JPEG", {})
    e["contrast"] = (lambda im, r: ImageEnhance.Contrast(im).enhance(r.choice([0.6, 1.5])), "JPEG", {})
    e["gamma"] = (lambda im, r: gamma(im, r.choice([0.6, 1.6])), "JPEG", {})
    e["grey"] = (lambda im, r: ImageOps.grayscale(im).convert("RGB"), "JPEG", {})
    e["mirror"] = (lambda im, r: ImageOps.mirror(im), "JPEG", {})
    e["rot90_pixels"] = (lambda im, r: im.transpose(Image.ROTATE_90), "JPEG", {})
    e["rot90_exif"] = (None, "JPEG", {})  # special-cased: pixels turned, EXIF tag turns them back
    e["rotate_small"] = (lambda im, r: im.rotate(r.choice([-1, 1]) * r.uniform(3, 10), Image.BICUBIC), "JPEG", {})
    e["aspect"] = (lambda im, r: im.resize((int(im.size[0] * r.choice([0.75, 1.33])), im.size[1]), Image.LANCZOS), "JPEG", {})
    e["border"] = (lambda im, r: border(im, 0.08, r.choice([(255, 255, 255), (0, 0, 0)])), "JPEG", {})
    e["letterbox"] = (lambda im, r: letterbox(im), "JPEG", {})
    e["text"] = (text_overlay, "JPEG", {})
    e["logo"] = (logo_overlay, "JPEG", {})
    e["to_png"] = (lambda im, r: im, "PNG", {})
    e["to_webp"] = (lambda im, r: im, "WEBP", {"quality": 75})
    e["screenshot"] = (lambda im, r: screenshot(im), "PNG", {})
    e["resize50+jpeg_q20"] = (lambda im, r: resize(im, 0.5), "JPEG", {"quality": 20})
    e["crop80+jpeg_q30"] = (lambda im, r: crop(im, 0.8, r), "JPEG", {"quality": 30})
    e["grey+resize50"] = (lambda im, r: resize(ImageOps.grayscale(im).convert("RGB"), 0.5), "JPEG", {})
    e["mirror+jpeg_q20"] = (lambda im, r: ImageOps.mirror(im), "JPEG", {"quality": 20})
    e["blur+brightness"] = (lambda im, r: ImageEnhance.Brightness(im.filter(ImageFilter.GaussianBlur(2))).enhance(1.3), "JPEG", {})
    e["text+to_webp"] = (text_overlay, "WEBP", {"quality": 75})
    return e


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, help="folder of class folders of images (Corel-1k layout)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-class", type=int, default=10, help="originals per class that get edited copies")
    ap.add_argument("--distractors-per-class", type=int, default=0, help="further originals per class, no copies")
    ap.add_argument("--classes", default="", help="comma-separated class names (default: all)")
    ap.add_argument("--edits", default="all", help="comma-separated edit names, or all")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    all_edits = edits()
    names = list(all_edits) if a.edits == "all" else a.edits.split(",")
    for n in names:
        if n not in all_edits:
            sys.exit("make_edits.py: unknown edit '%s' (known: %s)" % (n, ", ".join(all_edits)))
    rnd = random.Random(a.seed)
    classes = sorted(os.listdir(a.source)) if not a.classes else a.classes.split(",")
    os.makedirs(os.path.join(a.out, "originals"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "edits"), exist_ok=True)
    rows = []
    for cls in classes:
        files = sorted(f for f in os.listdir(os.path.join(a.source, cls)) if f.lower().endswith((".jpg", ".jpeg", ".png")))
        chosen = rnd.sample(files, min(len(files), a.per_class + a.distractors_per_class))
        for k, f in enumerate(chosen):
            stem = "%s_%s" % (cls, os.path.splitext(f)[0])
            src = os.path.join(a.source, cls, f)
            dst = os.path.join(a.out, "originals", stem + ".jpg")
            shutil.copyfile(src, dst)
            if k >= a.per_class:
                rows.append((stem, dst, "distractor"))
                continue
            rows.append((stem, dst, "original"))
            img = Image.open(src).convert("RGB")
            for name in names:
                fn, fmt, extra = all_edits[name]
                ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[fmt]
                out = os.path.join(a.out, "edits", "%s__%s.%s" % (stem, name.replace("+", "-"), ext))
                if name == "rot90_exif":
                    # Orientation 6: the stored pixels are turned counter-clockwise; viewers turn them back.
                    turned = img.transpose(Image.ROTATE_90)
                    exif = Image.Exif()
                    exif[0x0112] = 6
                    turned.save(out, "JPEG", quality=90, exif=exif.tobytes())
                else:
                    edited = fn(img, rnd)
                    if fmt == "JPEG":
                        edited.convert("RGB").save(out, "JPEG", quality=extra.get("quality", 90))
                    else:
                        edited.save(out, fmt, **extra)
                rows.append((stem, out, name))
    with open(os.path.join(a.out, "ground_truth.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["group", "path", "edit"])
        for r in rows:
            w.writerow([r[0], os.path.abspath(r[1]), r[2]])
    print("%d images, %d with copies" % (len(rows), sum(1 for r in rows if r[2] == "original")))


if __name__ == "__main__":
    main()
