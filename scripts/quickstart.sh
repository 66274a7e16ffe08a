#!/usr/bin/env bash
# The main job, on a fresh machine and without a network: installs what building and
# running need (Debian packages), builds imgsearch, indexes examples/images with the
# built-in model (the real ImageNet MobileNetV2, shipped in models/builtin/) and asks
# which example photos look most like the dahlia.
#
#   scripts/quickstart.sh                  # the built-in model
#   scripts/quickstart.sh -m MODEL.pt ...  # any other model, e.g. ResNet50 exported with
#                                          # models/export.py resnet50 --weights imagenet
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
IMGSEARCH=build/bin/imgsearch
INDEX=build/examples.index
echo "quickstart: indexing examples/images into $INDEX" >&2
"$IMGSEARCH" index examples/images -i "$INDEX" "$@"
echo "quickstart: the images most like examples/images/flowers/dahlia.jpg:" >&2
"$IMGSEARCH" query examples/images/flowers/dahlia.jpg -i "$INDEX" -k 5
