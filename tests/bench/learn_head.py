#!/usr/bin/python3
"""What a learned head could gain over `imgsearch learn`'s LDA (issue 12), measured in Python
on an index's own model vectors; nothing here is shipped.

Reads VECS and ENTRIES of an imgsearch index (docs/formats.md), joins the file names to a
labels CSV, splits the labelled images in two seeded halves, fits on one and evaluates on
the other (5,000 seeded queries against the held-out half, the query itself excluded, exact
cosine ranking): raw vectors, LDA with shrinkage (what `learn` does), and heads trained with
a normalised proxy softmax (linear, and an MLP 1280-1024-D with BatchNorm, ReLU, dropout).

    learn_head.py --index fashion.index --labels labels.csv [--label-column article_type] [--sweep]

Prints one line per setting: mAP, P@10, seconds. Needs Debian's torch (/usr/bin/python3).
--sweep instead trains the MLP 1280-1024-128 the way `learn --method head` does (a one-cycle
learning rate peaking at 0.002, batches of 256), 6 epochs unless said, over the settings that
chose its defaults (docs/eval.md): the cosine scale, weight decay, dropout, label smoothing.
"""
import argparse
import csv
import json
import os
import struct
import time

import numpy as np
import torch


def read_index(path):
    b = open(path, "rb").read()
    n = struct.unpack_from("<I", b, 12)[0]
    secs = {}
    for i in range(n):
        tag, off, size, _ = struct.unpack_from("<8sQQQ", b, 16 + 32 * i)
        secs[tag.rstrip(b"\0").decode()] = (off, size)
    off, size = secs["META"]
    meta = json.loads(b[off:off + size])
    count, dim = meta["count"], meta["dim"]
    vecs = np.frombuffer(b, np.float32, count * dim, secs["VECS"][0]).reshape(count, dim).copy()
    p, paths = secs["ENTRIES"][0], []
    for _ in range(count):
        length = struct.unpack_from("<I", b, p)[0]
        paths.append(b[p + 4:p + 4 + length].decode("utf-8", "replace"))
        p += 4 + length + 16  # path, u64 size, i64 mtime
    return vecs, paths


def evaluate(Z, y, test, queries=5000):
    Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    Zt, yt = Z[test], y[test]
    q = np.random.default_rng(2).choice(len(test), min(queries, len(test)), replace=False)
    S = torch.from_numpy(Zt[q] @ Zt.T)
    S[torch.arange(len(q)), torch.from_numpy(q)] = -9
    order = torch.argsort(S, dim=1, descending=True)[:, :-1].numpy()
    rel = yt[order] == yt[q][:, None]
    cs = np.cumsum(rel, 1)
    nrel = rel.sum(1)
    ap = (cs * rel / np.arange(1, rel.shape[1] + 1)).sum(1) / np.maximum(nrel, 1)
    return ap[nrel > 0].mean(), rel[:, :10].mean()


def lda(X, y, dim=64, shrink=0.1):
    X = torch.from_numpy(X).double()
    mu = X.mean(0)
    Sw = torch.zeros(X.shape[1], X.shape[1], dtype=torch.float64)
    Sb = torch.zeros_like(Sw)
    for c in np.unique(y):
        Xc = X[torch.from_numpy(y == c)]
        mc = Xc.mean(0)
        D = Xc - mc
        Sw += D.T @ D
        d = (mc - mu)[:, None]
        Sb += len(Xc) * d @ d.T
    Sw /= len(X)
    Sb /= len(X)
    Sw = Sw * (1 - shrink) + torch.eye(len(Sw), dtype=torch.float64) * shrink * Sw.diagonal().mean()
    Li = torch.linalg.inv(torch.linalg.cholesky(Sw))
    _, U = torch.linalg.eigh(Li @ Sb @ Li.T)
    W = Li.T @ U[:, -dim:].flip(1)
    return W.float().numpy(), mu.float().numpy()


def train_head(V, y, train, classes, kind, dim=64, epochs=30, s=16.0, hidden=1024, lr=1e-3, wd=1e-4, onecycle=False,
               drop=0.2, indrop=0.0, ls=0.1):
    X, Y = torch.from_numpy(V[train]), torch.from_numpy(y[train])
    if kind == "linear":
        net = torch.nn.Linear(V.shape[1], dim)
    else:
        net = torch.nn.Sequential(*([torch.nn.Dropout(indrop)] if indrop else []),
                                  torch.nn.Linear(V.shape[1], hidden), torch.nn.BatchNorm1d(hidden), torch.nn.ReLU(),
                                  torch.nn.Dropout(drop), torch.nn.Linear(hidden, dim))
    proxies = torch.nn.Parameter(torch.randn(classes, dim) * 0.01)
    opt = torch.optim.AdamW(list(net.parameters()) + [proxies], lr=lr, weight_decay=wd)
    if onecycle:  # stepped per batch, as `learn --method head`
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * ((len(X) + 255) // 256))
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 256):
            b = perm[i:i + 256]
            z = torch.nn.functional.normalize(net(X[b]), dim=1)
            logits = s * z @ torch.nn.functional.normalize(proxies, dim=1).T
            loss = torch.nn.functional.cross_entropy(logits, Y[b], label_smoothing=ls)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if onecycle:
                sched.step()
        if not onecycle:
            sched.step()
    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(V)).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--id-column", default="id")
    ap.add_argument("--label-column", default="article_type", help="COL or COL+COL")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sweep", action="store_true", help="the one-cycle MLP settings behind learn --method head")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    V, paths = read_index(args.index)
    labels = {r[args.id_column]: "+".join(r[c] for c in args.label_column.split("+"))
              for r in csv.DictReader(open(args.labels))}
    ids = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    keep = [i for i, x in enumerate(ids) if x in labels]
    V = V[keep]
    names = sorted({labels[ids[i]] for i in keep})
    index_of = {n: k for k, n in enumerate(names)}
    y = np.array([index_of[labels[ids[i]]] for i in keep])
    perm = np.random.default_rng(1).permutation(len(y))
    train, test = perm[:len(y) // 2], perm[len(y) // 2:]
    print("labels %d, fitted on %d, evaluated on %d" % (len(names), len(train), len(test)), flush=True)
    print("raw: mAP %.3f P@10 %.3f" % evaluate(V, y, test), flush=True)
    t = time.time()
    W, mu = lda(V[train], y[train])
    print("LDA 64-d, shrinkage 0.1: mAP %.3f P@10 %.3f (%.0f s)" % (*evaluate((V - mu) @ W, y, test), time.time() - t),
          flush=True)
    settings = [dict(kind="linear"), dict(kind="linear", s=32.0), dict(kind="mlp"), dict(kind="mlp", dim=128),
                dict(kind="mlp", s=32.0)]
    if args.sweep:
        base = dict(kind="mlp", dim=128, epochs=6, lr=2e-3, onecycle=True)
        settings = [dict(base, **change) for change in
                    [{}, dict(wd=0.05), dict(indrop=0.2), dict(ls=0.2), dict(s=24.0), dict(drop=0.5), dict(s=10.0),
                     dict(lr=4e-3), dict(s=8.0), dict(s=6.0), dict(s=4.0), dict(s=8.0, epochs=10), dict(s=8.0, ls=0.0),
                     dict(s=8.0, dim=256)]]
    for setting in settings:
        if args.sweep:
            torch.manual_seed(0)
        t = time.time()
        Z = train_head(V, y, train, len(names), **setting)
        print("%s: mAP %.3f P@10 %.3f (%.0f s)" % (setting, *evaluate(Z, y, test), time.time() - t), flush=True)


if __name__ == "__main__":
    main()
