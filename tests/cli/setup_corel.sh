# Builds the Corel-1k index with the real MobileNetV2, shared by the tests that need it.
set -euo pipefail
mkdir -p "$TEST_DATA"
COREL="$SHARED/datasets/corel1k/images"
MOBILENET="$SHARED/models/mobilenet_v2/mobilenet_v2_imagenet_embed.pt"
# Incremental: a rerun of the suite re-extracts nothing.
"$IMGSEARCH" index "$COREL" -i "$TEST_DATA/corel.index" -m "$MOBILENET" --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5
