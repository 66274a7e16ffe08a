#!/usr/bin/env bash
# Re-makes models/builtin/mobilenet_v2_imagenet.pt from the float32 original in
# ../shared/models (float16 weights, metadata embedded). Needs Debian's python3-torch.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-../shared/models/mobilenet_v2/mobilenet_v2_imagenet_embed.pt}
/usr/bin/python3 models/export.py import "$SRC" --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 \
  --name mobilenet_v2 --weights imagenet --fp16 -o models/builtin/mobilenet_v2_imagenet.pt
cp "$(dirname "$SRC")/LICENSE" models/builtin/LICENSE
