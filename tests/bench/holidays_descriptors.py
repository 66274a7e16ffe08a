#!/usr/bin/python3
"""Descriptor changes for instance retrieval (issue 12), measured in Python on Holidays-300
with the shared MobileNetV2's `features` submodule; nothing here is shipped.

For each of the 811 images: the model as shipped (shorter side 256, centre crop 224,
average pooling), the whole image at 224..640 on its longer side (average pooling),
multi-scale sums of those, and regional pooling over the 448 and 640 feature maps (R-MAC's
regions, 3 levels, 40 % overlap: each region max- or average-pooled, L2-normalised,
summed; no whitening). Holidays protocol (the 300 listed queries against the other 810,
mAP), raw and with this script's own database-side augmentation + alpha query expansion
(k = 1, 2; alpha 3), which is close to but not the same as imgsearch's --dba/--qe.

    /usr/bin/python3 tests/bench/holidays_descriptors.py

Prints one line per descriptor. Needs Debian's torch and PIL; about 5 CPU-minutes.
"""
import os
import sys

import numpy as np
import torch
from PIL import Image
torch.set_num_threads(2)
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, '..', '..', '..', 'shared', 'datasets', 'holidays300')
m = torch.jit.load(os.path.join(here, '..', '..', '..', 'shared', 'models', 'mobilenet_v2', 'mobilenet_v2_imagenet_embed.pt')).eval()
feat = m.features
names = sorted(os.listdir(root + '/images'))
ids = [n.rsplit('.', 1)[0] for n in names]
group = np.array([int(i) // 100 for i in ids])
queries = [l.strip().split('/')[-1].rsplit('.', 1)[0] for l in open(root + '/queries.txt')]
qidx = [ids.index(q) for q in queries]

def tensor(img, size, crop):
    w, h = img.size
    s = size / min(w, h) if crop else size / max(w, h)
    img2 = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR, reducing_gap=None)
    a = np.asarray(img2, dtype=np.float32) / 255.0
    if crop:
        c = 224; H, W = a.shape[:2]; y = (H - c) // 2; x = (W - c) // 2
        a = a[y:y + c, x:x + c]
    a = (a - 0.5) / 0.5
    return torch.from_numpy(a.transpose(2, 0, 1).copy())[None]

def rmac_regions(H, W, L=3):
    regs = []
    ovr = 0.4
    steps = np.array([2, 3, 4, 5, 6, 7])
    w = min(W, H)
    b = (max(H, W) - w) / (steps - 1)
    idx = np.argmin(np.abs(((w ** 2 - w * b) / w ** 2) - ovr))
    Wd = Hd = 0
    if H < W: Wd = idx + 1
    elif H > W: Hd = idx + 1
    for l in range(1, L + 1):
        wl = int(np.floor(2 * w / (l + 1)))
        wl2 = int(np.floor(wl / 2 - 1))
        b = (W - wl) / (l + Wd - 1) if l + Wd > 1 else 0
        cenW = np.floor(wl2 + np.arange(l + Wd) * b) - wl2
        b = (H - wl) / (l + Hd - 1) if l + Hd > 1 else 0
        cenH = np.floor(wl2 + np.arange(l + Hd) * b) - wl2
        for i in cenH:
            for j in cenW:
                if wl == 0: continue
                regs.append((int(i), int(j), wl))
    return regs

descs = {}
def add(name, v):
    descs.setdefault(name, []).append(v / (np.linalg.norm(v) + 1e-12))

with torch.no_grad():
    for k, n in enumerate(names):
        img = Image.open(root + '/images/' + n).convert('RGB')
        fm = feat(tensor(img, 256, True))[0].numpy()
        add('crop224', fm.mean((1, 2)))
        ms = []
        for S in (224, 320, 448, 640):
            f = feat(tensor(img, S, False))[0].numpy()
            g = f.mean((1, 2)); add(f'whole{S}', g)
            ms.append(g / np.linalg.norm(g))
            if S in (448, 640):
                C, H, W = f.shape
                r = np.zeros(C)
                for (i, j, wl) in rmac_regions(H, W):
                    reg = f[:, i:i + wl, j:j + wl]
                    v = reg.mean((1, 2)); r += v / (np.linalg.norm(v) + 1e-12)
                add(f'ravg{S}', r)
                r = np.zeros(C)
                for (i, j, wl) in rmac_regions(H, W):
                    reg = f[:, i:i + wl, j:j + wl]
                    v = reg.max((1, 2)); r += v / (np.linalg.norm(v) + 1e-12)
                add(f'rmac{S}', r)
        add('ms224-448', sum(ms[:3]))
        add('ms320-640', sum(ms[1:]))
        add('ms224-640', sum(ms))
        if k % 100 == 0: print(k, file=sys.stderr)

def ap(ranked_rel, nrel):
    hits = 0; s = 0
    for r, rel in enumerate(ranked_rel):
        if rel: hits += 1; s += hits / (r + 1)
    return s / nrel

def dba(X, k, alpha=3.0):
    S = X @ X.T; np.fill_diagonal(S, -np.inf)
    out = X.copy()
    for i in range(len(X)):
        nb = np.argsort(-S[i])[:k]
        for j in nb: out[i] += max(S[i, j], 0) ** alpha * X[j]
    return out / np.linalg.norm(out, axis=1, keepdims=True)

def evaluate(X, k=0, alpha=3.0):
    D = dba(X, k, alpha) if k else X
    maps = []
    for q in qidx:
        qv = D[q]
        s = D @ qv; s[q] = -np.inf
        if k:
            order = np.argsort(-s)[:k]
            qv2 = qv + sum(max(s[j], 0) ** alpha * D[j] for j in order)
            qv2 /= np.linalg.norm(qv2)
            s = D @ qv2; s[q] = -np.inf
        order = np.argsort(-s)[:len(ids) - 1]
        rel = group[order] == group[q]
        maps.append(ap(rel, (group == group[q]).sum() - 1))
    return np.mean(maps)

for name, v in descs.items():
    X = np.array(v, dtype=np.float64)
    print(f'{name:12s} mAP {evaluate(X):.4f}  dba1/qe1 {evaluate(X, 1):.4f}  dba2/qe2 {evaluate(X, 2):.4f}')
