#!/usr/bin/env bash
# The main job, on a fresh machine: installs the dependencies, builds imgsearch,
# prepares the default model, indexes examples/images and runs a query.
#
#   scripts/quickstart.sh                      # default model: ResNet50, ImageNet weights
#   scripts/quickstart.sh -m MODEL.pt [--mean R,G,B --std R,G,B]   # any TorchScript model
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
IMGSEARCH=build/bin/imgsearch
MODEL_ARGS=("$@")

if [ ${#MODEL_ARGS[@]} -eq 0 ] && [ -z "${IMGSEARCH_MODEL:-}" ]; then
  DEFAULT_MODEL=$("$IMGSEARCH" --print-default-model)
  if [ ! -s "$DEFAULT_MODEL" ]; then
    echo "quickstart: exporting ResNet50 with ImageNet weights to $DEFAULT_MODEL" >&2
    if ! /usr/bin/python3 models/export.py resnet50 --weights imagenet -o "$DEFAULT_MODEL"; then
      cat >&2 <<MSG

quickstart: could not prepare the default model (no network to download torchvision's
ImageNet weights?). Supply a model in one of these ways, then run this script again:
  - download resnet50-0676ba61.pth elsewhere and run
      /usr/bin/python3 models/export.py resnet50 --weights resnet50-0676ba61.pth -o $DEFAULT_MODEL
  - make any TorchScript image model the default:
      /usr/bin/python3 models/export.py import MODEL.pt --mean R,G,B --std R,G,B -o $DEFAULT_MODEL
  - or pass one directly, e.g. the MobileNetV2 beside this checkout:
      scripts/quickstart.sh -m ../shared/models/mobilenet_v2/mobilenet_v2_imagenet_embed.pt --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5
MSG
      exit 1
    fi
  fi
fi

INDEX=build/examples.index
echo "quickstart: indexing examples/images into $INDEX" >&2
"$IMGSEARCH" index examples/images -i "$INDEX" "${MODEL_ARGS[@]}"
echo "quickstart: the images most like examples/images/flowers/dahlia.jpg:" >&2
"$IMGSEARCH" query examples/images/flowers/dahlia.jpg -i "$INDEX" -k 5
