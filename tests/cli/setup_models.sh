# Exports the random-weight models the tests need (random weights: for shape and speed
# tests only; the quality tests use the real MobileNetV2 in ../shared/models).
set -euo pipefail
mkdir -p "$TEST_DATA/models"
cd "$TEST_DATA/models"
if [ ! -s mobilenet_v2-random.pt ]; then
  "$PYTHON" "$SOURCE_DIR/models/export.py" mobilenet_v2 --weights random -o mobilenet_v2-random.pt
fi
