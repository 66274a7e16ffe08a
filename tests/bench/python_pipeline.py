#!/usr/bin/python3
"""The Python pipelines imgsearch is measured against (tests/bench/bench.py runs them).

  seed   what the seed projects do: one image at a time, fp32, PIL + torchvision
         transforms, the model called once per image.
  tuned  what a careful PyTorch user does: a DataLoader with worker processes decoding
         and transforming in parallel, batches of 8, the module frozen and
         optimize_for_inference'd, channels_last input, and bf16 (the module converted to
         bfloat16, which on this CPU beats torch.autocast; see docs/benchmarks.md) or fp32.

Both read the same TorchScript file imgsearch runs, with the same preprocessing (taken
from the file's embedded imgsearch.json, or from --mean/--std), and write the
L2-normalised features as an .npy matrix plus a .txt of paths, like
`imgsearch extract --format npy`.

The time printed (JSON on stdout) runs from the first image read to the last feature
computed: interpreter start, `import torch` and model loading are NOT counted, which
favours Python (imgsearch is timed as a whole process).

Usage: python_pipeline.py seed|tuned MODEL.pt LIST.txt OUT.npy [--precision fp32|bf16]
       [--threads 2] [--batch-size 8] [--workers N] [--mean R,G,B --std R,G,B]
"""

import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("style", choices=["seed", "tuned"])
    ap.add_argument("model")
    ap.add_argument("list", help="text file, one image path a line")
    ap.add_argument("out", help="output .npy (a .txt of paths is written beside it)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1,
                    help="DataLoader worker processes (tuned)")
    ap.add_argument("--bf16-mode", choices=["convert", "autocast"], default="convert")
    ap.add_argument("--mean")
    ap.add_argument("--std")
    args = ap.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F
    import torchvision.transforms as T
    from PIL import Image

    torch.set_num_threads(args.threads)
    extra = {"imgsearch.json": ""}
    model = torch.jit.load(args.model, map_location="cpu", _extra_files=extra)
    model.eval()
    meta = json.loads(extra["imgsearch.json"]) if extra["imgsearch.json"] else {}
    mean = meta.get("mean", [0.485, 0.456, 0.406])
    std = meta.get("std", [0.229, 0.224, 0.225])
    if args.mean:
        mean = [float(v) for v in args.mean.split(",")]
    if args.std:
        std = [float(v) for v in args.std.split(",")]
    resize = meta.get("resize", 256)
    size = meta.get("input_size", 224)
    transform = T.Compose([
        T.Resize(resize),  # bilinear, antialiased on PIL images
        T.CenterCrop(size),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])
    with open(args.list) as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]

    feats = []
    if args.style == "seed":
        if args.precision != "fp32":
            sys.exit("the seed-style pipeline runs fp32 only")
        t0 = time.perf_counter()
        for p in paths:
            img = Image.open(p).convert("RGB")
            x = transform(img).unsqueeze(0)
            with torch.no_grad():
                y = model(x)
            feats.append(F.normalize(y.flatten(1), dim=1)[0].numpy())
        elapsed = time.perf_counter() - t0
    else:
        class Images(torch.utils.data.Dataset):
            def __len__(self):
                return len(paths)

            def __getitem__(self, i):
                return transform(Image.open(paths[i]).convert("RGB"))

        bf16 = args.precision == "bf16"
        with torch.no_grad():
            if bf16 and args.bf16_mode == "convert":
                model = model.to(torch.bfloat16)
            model = torch.jit.optimize_for_inference(torch.jit.freeze(model))
        loader = torch.utils.data.DataLoader(
            Images(), batch_size=args.batch_size, num_workers=args.workers,
            persistent_workers=False, prefetch_factor=4 if args.workers > 0 else 2)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for x in loader:
                x = x.contiguous(memory_format=torch.channels_last)
                if bf16 and args.bf16_mode == "convert":
                    y = model(x.to(torch.bfloat16))
                elif bf16:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        y = model(x)
                else:
                    y = model(x)
                feats.append(F.normalize(y.flatten(1).float(), dim=1).numpy())
        elapsed = time.perf_counter() - t0
        feats = [row for block in feats for row in block]

    matrix = np.stack(feats).astype(np.float32)
    np.save(args.out, matrix)
    with open(os.path.splitext(args.out)[0] + ".txt", "w") as f:
        f.write("\n".join(paths) + "\n")
    print(json.dumps({"style": args.style, "precision": args.precision, "images": len(paths),
                      "seconds": elapsed, "threads": args.threads,
                      "workers": args.workers if args.style == "tuned" else 0}))


if __name__ == "__main__":
    main()
