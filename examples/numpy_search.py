#!/usr/bin/env python3
"""Use imgsearch's vectors from Python: `imgsearch extract --format npy` writes an
[N, D] float32 .npy of L2-normalised embeddings and a .txt with one path per line.

    imgsearch extract photos/ --format npy -o photos.npy
    python3 examples/numpy_search.py photos.npy photos/cat.jpg

prints the 5 images most similar to one that was extracted (cosine = dot product).
The same matrix can go straight into FAISS (faiss.IndexFlatIP) or scikit-learn.
"""
import sys

import numpy as np


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    npy, query = sys.argv[1], sys.argv[2]
    vectors = np.load(npy)
    paths = open(npy[: -len(".npy")] + ".txt", encoding="utf-8").read().splitlines()
    matches = [i for i, p in enumerate(paths) if p.endswith(query.lstrip("./"))]
    if not matches:
        print(f"{query}: not among the {len(paths)} extracted images", file=sys.stderr)
        return 1
    scores = vectors @ vectors[matches[0]]
    for rank, i in enumerate(np.argsort(-scores)[:5], start=1):
        print(f"{rank}\t{scores[i]:.4f}\t{paths[i]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
