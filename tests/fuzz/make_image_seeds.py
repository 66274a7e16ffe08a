#!/usr/bin/env python3
"""Writes the small image seeds for fuzz_image_decode into tests/fuzz/corpus/image/:
one tiny file per container and pixel layout imgsearch decodes (a few hundred bytes each).
Usage: /usr/bin/python3 tests/fuzz/make_image_seeds.py [OUTPUT_DIR]"""
import io
import os
import sys

from PIL import Image

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "image")
os.makedirs(out, exist_ok=True)


def gradient(w, h, mode="RGB"):
    im = Image.new("RGB", (w, h))
    im.putdata([((x * 255) // max(w - 1, 1), (y * 255) // max(h - 1, 1), 128) for y in range(h) for x in range(w)])
    return im.convert(mode)


def save(name, im, **kw):
    im.save(os.path.join(out, name), **kw)


save("baseline.jpg", gradient(16, 12), quality=70)
save("progressive.jpg", gradient(24, 16), quality=70, progressive=True)
save("gray.jpg", gradient(16, 16, "L"), quality=70)
save("cmyk.jpg", gradient(16, 8, "CMYK"), quality=70)
save("subsampled-odd.jpg", gradient(17, 9), quality=60, subsampling=2)
exif = Image.Exif()
exif[0x0112] = 6  # orientation: rotate 90 CW
save("exif-orient6.jpg", gradient(16, 8), quality=70, exif=exif.tobytes())
save("rgb.png", gradient(12, 8))
save("rgba.png", gradient(8, 8, "RGBA"))
save("gray-alpha.png", gradient(8, 8, "LA"))
save("palette.png", gradient(8, 8).convert("P", palette=Image.ADAPTIVE, colors=8))
save("gray16.png", gradient(8, 8, "L").convert("I").point(lambda v: v * 257).convert("I;16"))
save("one-pixel.png", gradient(1, 1))
frames = [gradient(8, 8).convert("P"), gradient(8, 8).transpose(Image.FLIP_LEFT_RIGHT).convert("P")]
frames[0].save(os.path.join(out, "animated.gif"), save_all=True, append_images=frames[1:], duration=50, loop=0)
save("rgb.bmp", gradient(8, 6))
try:
    save("lossy.webp", gradient(16, 16), quality=50)
    save("lossless.webp", gradient(8, 8, "RGBA"), lossless=True)
except (KeyError, OSError):
    pass  # PIL without WebP support
print(out, sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)), "bytes")
