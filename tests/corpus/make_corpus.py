#!/usr/bin/python3
"""Writes the image corpus the tests run imgsearch on: good images in every supported
flavour, bad and hostile files, and EXIF-oriented copies of one photo.

    /usr/bin/python3 tests/corpus/make_corpus.py OUT --photos DIR

DIR is a folder of real JPEG photos (the tests use Corel-1k). Nothing here is committed:
the corpus is generated into a scratch directory at test time, in about a second.

OUT/images/     good and bad files mixed, as a real photo folder is
OUT/ref/        NAME.ppm: PIL's decoding of each good image to 8-bit RGB (the reference
                the unit tests compare imgsearch's decoder with)
OUT/exif/       orient1.jpg .. orient8.jpg: one photo stored rotated/flipped so that,
                with its EXIF orientation tag applied, it shows upright; upright.ppm
OUT/manifest.tsv
                good<TAB>PATH                 (relative to OUT/images)
                bad<TAB>PATH<TAB>REGEX         (REGEX: the reason imgsearch must give)
                special<TAB>PATH<TAB>WHAT      (unreadable, symlink loop, ...: set up by
                                               the caller's permissions; see --no-special)
"""
import argparse
import io
import os
import random
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps

EXIF_ORIENTATION = 0x0112


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png_raw(path, width, height, bit_depth, color_type, rows):
    """A PNG written by hand (PIL cannot write 16-bit RGB): rows are the filtered-free
    scanline bytes, filter type 0 is prepended here."""
    raw = b"".join(b"\x00" + r for r in rows)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)))
        f.write(png_chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(png_chunk(b"IEND", b""))


def save_ppm(path, rgb):
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h))
        f.write(rgb.tobytes())


def pil_rgb(path):
    with Image.open(path) as im:
        im.seek(0)
        return np.asarray(im.convert("RGB"))


def truncated(data, fraction):
    return data[: max(1, int(len(data) * fraction))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--photos", required=True, help="folder of real JPEG photos (searched recursively)")
    ap.add_argument("--no-special", action="store_true",
                    help="leave out the unreadable file and directory, the FIFO and the symlinks")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()

    photos = sorted(os.path.join(d, f) for d, _, fs in os.walk(args.photos) for f in fs if f.lower().endswith(".jpg"))
    if len(photos) < 60:
        sys.exit(f"make_corpus: need at least 60 JPEG photos under {args.photos}, found {len(photos)}")
    rng = random.Random(args.seed)
    # A different photo for every good image, so each one's nearest neighbour is itself.
    picks = iter(rng.sample(photos, 60))

    def photo():
        with Image.open(next(picks)) as im:
            return im.convert("RGB")

    out = args.out
    images = os.path.join(out, "images")
    ref = os.path.join(out, "ref")
    exif_dir = os.path.join(out, "exif")
    for d in (images, ref, exif_dir):
        os.makedirs(d, exist_ok=True)
    manifest = []

    def good(name, reference=None):
        path = os.path.join(images, name)
        if reference is None:
            reference = pil_rgb(path)
        save_ppm(os.path.join(ref, name.replace("/", "__") + ".ppm"), reference)
        manifest.append(("good", name))

    def bad(name, data, reason):
        with open(os.path.join(images, name), "wb") as f:
            f.write(data)
        manifest.append(("bad", name, reason))

    # ---- good images -------------------------------------------------------------
    src = next(picks)
    with open(src, "rb") as f:
        baseline_jpeg = f.read()
    with open(os.path.join(images, "plain.jpg"), "wb") as f:
        f.write(baseline_jpeg)
    good("plain.jpg")

    photo().save(os.path.join(images, "progressive.jpg"), quality=90, progressive=True)
    good("progressive.jpg")
    photo().convert("CMYK").save(os.path.join(images, "cmyk.jpg"), quality=95)
    good("cmyk.jpg")
    photo().convert("L").save(os.path.join(images, "gray.jpg"), quality=90)
    good("gray.jpg")

    photo().convert("L").save(os.path.join(images, "gray.png"))
    good("gray.png")
    im = photo()
    alpha = Image.linear_gradient("L").resize(im.size)
    la = im.convert("L")
    la.putalpha(alpha)
    la.save(os.path.join(images, "gray_alpha.png"))
    good("gray_alpha.png")
    rgba = photo()
    rgba.putalpha(alpha)
    rgba.save(os.path.join(images, "rgba.png"))
    good("rgba.png")
    photo().quantize(colors=64).save(os.path.join(images, "palette.png"))
    good("palette.png")
    pal = photo().quantize(colors=32)
    pal.save(os.path.join(images, "palette_trns.png"), transparency=0)
    good("palette_trns.png")
    photo().save(os.path.join(images, "rgb.png"))
    good("rgb.png")

    # 16-bit: the sensible 8-bit value is the high byte.
    arr = np.asarray(photo()).astype(np.uint16)
    arr16 = arr * 257 + np.asarray(rng.choices(range(256), k=arr.size), dtype=np.uint16).reshape(arr.shape) % 257
    h, w, _ = arr16.shape
    write_png_raw(os.path.join(images, "rgb16.png"), w, h, 16, 2, [arr16[y].astype(">u2").tobytes() for y in range(h)])
    good("rgb16.png", (arr16 >> 8).astype(np.uint8))
    g16 = (np.asarray(photo().convert("L")).astype(np.uint16) * 257)
    write_png_raw(os.path.join(images, "gray16.png"), g16.shape[1], g16.shape[0], 16, 0,
                  [g16[y].astype(">u2").tobytes() for y in range(g16.shape[0])])
    good("gray16.png", np.repeat((g16 >> 8).astype(np.uint8)[:, :, None], 3, axis=2))

    Image.new("RGB", (1, 1), (200, 40, 90)).save(os.path.join(images, "tiny_1x1.png"))
    good("tiny_1x1.png")
    photo().resize((10000, 10), Image.BILINEAR).save(os.path.join(images, "wide_10000x10.png"))
    good("wide_10000x10.png")
    photo().resize((10, 10000), Image.BILINEAR).save(os.path.join(images, "tall_10x10000.jpg"), quality=90)
    good("tall_10x10000.jpg")

    frames = [photo().quantize(colors=128) for _ in range(3)]
    frames[0].save(os.path.join(images, "animated.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)
    good("animated.gif")
    photo().quantize(colors=200).save(os.path.join(images, "still.gif"))
    good("still.gif")
    photo().save(os.path.join(images, "photo.bmp"))
    good("photo.bmp")
    photo().convert("L").save(os.path.join(images, "gray8.bmp"))
    good("gray8.bmp")
    photo().save(os.path.join(images, "photo.tga"))
    good("photo.tga")
    photo().save(os.path.join(images, "rle.tga"), rle=True)
    good("rle.tga")
    photo().save(os.path.join(images, "photo.ppm"))
    good("photo.ppm")
    photo().convert("L").save(os.path.join(images, "gray.pgm"))
    good("gray.pgm")
    photo().save(os.path.join(images, "lossy.webp"), quality=85)
    good("lossy.webp")
    photo().save(os.path.join(images, "lossless.webp"), lossless=True)
    good("lossless.webp")
    rgba = photo()
    rgba.putalpha(alpha)
    rgba.save(os.path.join(images, "alpha.webp"), quality=85)
    good("alpha.webp")
    frames = [photo() for _ in range(3)]
    frames[0].save(os.path.join(images, "animated.webp"), save_all=True, append_images=frames[1:], duration=100,
                   loop=0, lossless=True)
    good("animated.webp")

    # Awkward names.
    for name in ("with space.jpg", "ünïcødé 写真.jpg", "-leading-dash.jpg", "UPPER.JPG"):
        photo().save(os.path.join(images, name), quality=90)
        good(name)
    # A directory named like an image is a directory: it is searched, not decoded.
    os.makedirs(os.path.join(images, "x.jpg"), exist_ok=True)
    photo().save(os.path.join(images, "x.jpg", "inside.jpg"), quality=90)
    good("x.jpg/inside.jpg")
    # An EXIF-rotated photo among the others.
    im = photo()
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    im.transpose(Image.ROTATE_90).save(os.path.join(images, "exif6.jpg"), quality=92, exif=exif.tobytes())
    good("exif6.jpg", np.asarray(ImageOps.exif_transpose(Image.open(os.path.join(images, "exif6.jpg"))).convert("RGB")))

    # ---- bad images --------------------------------------------------------------
    bad("empty.jpg", b"", "empty file")
    bad("empty.png", b"", "empty file")
    png_bytes = open(os.path.join(images, "rgb.png"), "rb").read()
    progressive = open(os.path.join(images, "progressive.jpg"), "rb").read()
    for pct in (10, 50, 99):
        bad(f"trunc{pct}.jpg", truncated(baseline_jpeg, pct / 100), "truncated JPEG|not a valid JPEG|cannot decode JPEG")
        bad(f"trunc{pct}.png", truncated(png_bytes, pct / 100), "truncated PNG")
    # Two stray bytes before the scan: libjpeg warns "extraneous bytes before marker",
    # which PIL and imgsearch accept. Cut, the same file must still count as truncated,
    # although the first warning libjpeg reports is the harmless one.
    buf = io.BytesIO()
    photo().save(buf, format="JPEG", quality=90)
    other_jpeg = buf.getvalue()
    sos = next(i for i in range(2, len(other_jpeg) - 1) if other_jpeg[i] == 0xFF and other_jpeg[i + 1] == 0xDA)
    extraneous = other_jpeg[:sos] + b"\x00\x00" + other_jpeg[sos:]
    with open(os.path.join(images, "extraneous.jpg"), "wb") as f:
        f.write(extraneous)
    good("extraneous.jpg")
    bad("trunc50_extraneous.jpg", truncated(extraneous, 0.5), "truncated JPEG")
    bad("no_eoi.jpg", baseline_jpeg[:-2], "truncated JPEG")  # PIL: "image file is truncated" too
    bad("trunc50_progressive.jpg", truncated(progressive, 0.5), "truncated JPEG")
    bad("trunc99_progressive.jpg", truncated(progressive, 0.99), "truncated JPEG")
    # Only the 12-byte IEND chunk missing: the pixels are all there, but the file is cut.
    bad("no_iend.png", png_bytes[:-12], "truncated PNG")
    # (An animated GIF cut after its first frame still decodes: only that frame is used.)
    for name in ("still.gif", "photo.bmp", "photo.tga", "rle.tga", "photo.ppm", "lossy.webp", "lossless.webp",
                 "animated.webp"):
        data = open(os.path.join(images, name), "rb").read()
        stem, ext = os.path.splitext(name)
        for pct in (50, 99):
            bad(f"trunc{pct}_{stem}{ext}", truncated(data, pct / 100), "truncated|cannot decode|not a supported image")
    bad("random.jpg", bytes(rng.getrandbits(8) for _ in range(5000)), "not a supported image")
    bad("random_magic.jpg", b"\xff\xd8\xff" + bytes(rng.getrandbits(8) for _ in range(5000)), "JPEG")
    bad("text.png", b"This is not a PNG, it is a text file.\n" * 20, "not a supported image")
    bad("html.webp", b"<html><body>404 not found</body></html>\n", "not a supported image")

    # Decompression bombs: a few hundred bytes declaring billions of pixels.
    rows = zlib.compress(b"\x00" * (1 + 30000 * 3) * 4, 9)  # a few rows; the rest is missing anyway
    bomb = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)) +
            png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b""))
    bad("bomb_30000x30000.png", bomb, r"30000x30000 pixels exceeds the limit")
    jpeg_bomb = bytearray(baseline_jpeg)
    sof = next(i for i in range(2, len(jpeg_bomb) - 9)
               if jpeg_bomb[i] == 0xFF and jpeg_bomb[i + 1] in (0xC0, 0xC1, 0xC2))
    jpeg_bomb[sof + 5:sof + 9] = struct.pack(">HH", 30000, 30000)
    bad("bomb_30000x30000.jpg", bytes(jpeg_bomb), r"30000x30000 pixels exceeds the limit")
    # VP8L: signature 0x2f, then 14 bits width-1 and 14 bits height-1, little-endian bits.
    webp = bytearray(open(os.path.join(images, "lossless.webp"), "rb").read())
    vp8l = webp.index(b"VP8L") + 8
    assert webp[vp8l] == 0x2F
    bits = struct.unpack("<I", webp[vp8l + 1:vp8l + 5])[0]
    bits = (bits & ~((1 << 28) - 1)) | (16383 << 14) | 16383
    webp[vp8l + 1:vp8l + 5] = struct.pack("<I", bits)
    bad("bomb_16384x16384.webp", bytes(webp), r"16384x16384 pixels exceeds the limit")

    # ---- files that need the file system's help ------------------------------------
    if not args.no_special:
        photo().save(os.path.join(images, "unreadable.jpg"), quality=90)
        os.chmod(os.path.join(images, "unreadable.jpg"), 0)
        manifest.append(("special", "unreadable.jpg", "unreadable"))
        os.makedirs(os.path.join(images, "unreadable_dir"), exist_ok=True)
        photo().save(os.path.join(images, "unreadable_dir", "hidden_by_perms.jpg"), quality=90)
        os.chmod(os.path.join(images, "unreadable_dir"), 0)
        manifest.append(("special", "unreadable_dir", "unreadable"))
        os.symlink("loop.jpg", os.path.join(images, "loop.jpg"))
        manifest.append(("bad", "loop.jpg", "symbolic links"))
        os.symlink(".", os.path.join(images, "dirloop"))  # a directory cycle: not followed
        os.symlink("nowhere.jpg", os.path.join(images, "dangling.jpg"))
        manifest.append(("bad", "dangling.jpg", "No such file"))
        os.mkfifo(os.path.join(images, "fifo.jpg"))  # opening it for reading would block
        manifest.append(("bad", "fifo.jpg", "not a regular file"))

    # ---- EXIF orientations ---------------------------------------------------------
    # orientation k: the stored pixels are the upright photo transformed by the inverse
    # of what the tag says to do, so applying the tag gives the upright photo back.
    upright = photo()
    stored = {
        1: upright,
        2: upright.transpose(Image.FLIP_LEFT_RIGHT),
        3: upright.transpose(Image.ROTATE_180),
        4: upright.transpose(Image.FLIP_TOP_BOTTOM),
        5: upright.transpose(Image.TRANSPOSE),
        6: upright.transpose(Image.ROTATE_90),
        7: upright.transpose(Image.TRANSVERSE),
        8: upright.transpose(Image.ROTATE_270),
    }
    for k, im in stored.items():
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = k
        path = os.path.join(exif_dir, f"orient{k}.jpg")
        # Lossless-looking quality so the eight differ only by the transform.
        im.save(path, quality=98, subsampling=0, exif=exif.tobytes())
        with Image.open(path) as check:
            assert check.getexif().get(EXIF_ORIENTATION) == k
            shown = np.asarray(ImageOps.exif_transpose(check).convert("RGB"))
        save_ppm(os.path.join(exif_dir, f"orient{k}.ppm"), shown)
    save_ppm(os.path.join(exif_dir, "upright.ppm"), np.asarray(upright))

    with open(os.path.join(out, "manifest.tsv"), "w", encoding="utf-8") as f:
        for row in manifest:
            f.write("\t".join(row) + "\n")


if __name__ == "__main__":
    main()
