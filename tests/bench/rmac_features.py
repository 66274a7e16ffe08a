#!/usr/bin/python3
"""Multi-scale R-MAC descriptors in an imgsearch features file, to measure them with
imgsearch's own `eval`, `--dba` and `--qe` (issue 12); nothing here is shipped.

Takes a features file that `imgsearch extract` wrote with the shared MobileNetV2 (its
paths and model info are kept) and writes a copy whose vectors are, for each image, the
sum over the scales of the L2-normalised R-MAC of the `features` map with the whole image
resized to that longer side (regions and resize as tests/bench/holidays_descriptors.py),
L2-normalised. Then `imgsearch index --from-features OUT -i INDEX` and `imgsearch eval`.

    rmac_features.py BASE.feat OUT.feat [448,640,800]

Needs Debian's torch and PIL (/usr/bin/python3) and libxxhash (the container's checksums,
docs/formats.md).
"""
import ctypes
import json
import os
import struct
import sys

import numpy as np
import torch
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
src, dst = sys.argv[1], sys.argv[2]
scales = [int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "448,640,800").split(",")]
xx = ctypes.CDLL("libxxhash.so.0")
xx.XXH3_64bits.restype = ctypes.c_uint64
xx.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]

b = open(src, "rb").read()
n = struct.unpack_from("<I", b, 12)[0]
sections = []
for i in range(n):
    e = 16 + 32 * i
    tag = b[e:e + 8].rstrip(b"\0").decode()
    off, size = struct.unpack_from("<QQ", b, e + 8)
    sections.append([tag, bytes(b[off:off + size])])
by_tag = dict(sections)
meta = json.loads(by_tag["META"])
count, dim = meta["count"], meta["dim"]
paths, p, raw = [], 0, by_tag["PATHS"]
for _ in range(count):
    length = struct.unpack_from("<I", raw, p)[0]
    paths.append(raw[p + 4:p + 4 + length].decode())
    p += 4 + length

# The resize and the regions of holidays_descriptors.py, without running its experiment.
code = open(os.path.join(here, "holidays_descriptors.py")).read()
helpers = {}
exec("import numpy as np\nimport torch\nfrom PIL import Image\n" + code[code.index("def tensor"):code.index("descs = {}")], helpers)
torch.set_num_threads(2)
model = torch.jit.load(os.path.join(here, "..", "..", "..", "shared", "models", "mobilenet_v2",
                                    "mobilenet_v2_imagenet_embed.pt")).eval()
out = np.zeros((count, dim), np.float32)
with torch.no_grad():
    for i, path in enumerate(paths):
        img = Image.open(path).convert("RGB")
        total = np.zeros(dim)
        for s in scales:
            f = model.features(helpers["tensor"](img, s, False))[0].numpy()
            r = np.zeros(f.shape[0])
            for (y, x, w) in helpers["rmac_regions"](f.shape[1], f.shape[2]):
                v = f[:, y:y + w, x:x + w].max((1, 2))
                r += v / (np.linalg.norm(v) + 1e-12)
            total += r / np.linalg.norm(r)
        out[i] = total / np.linalg.norm(total)
sections = [[t, out.tobytes() if t == "VECS" else d] for t, d in sections]


def align(v):
    return (v + 63) // 64 * 64


header = 16 + 32 * n + 8
o = bytearray(align(header))
o[0:12] = b[0:12]
struct.pack_into("<I", o, 12, n)
for i, (tag, data) in enumerate(sections):
    o += bytes(align(len(o)) - len(o))
    off = len(o)
    o += data
    e = 16 + 32 * i
    o[e:e + 8] = tag.encode().ljust(8, b"\0")
    struct.pack_into("<QQQ", o, e + 8, off, len(data), xx.XXH3_64bits(data, len(data)))
struct.pack_into("<Q", o, header - 8, xx.XXH3_64bits(bytes(o[:header - 8]), header - 8))
open(dst, "wb").write(o)
print("wrote %s: %d images, %d-d, scales %s" % (dst, count, dim, scales))
