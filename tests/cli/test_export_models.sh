# models/export.py: resnet50, vgg16 (fc7) and mobilenet_v2 with random weights load in
# C++ with the right dimension and preprocessing metadata; import makes a foreign
# TorchScript file self-describing.
source "$(dirname "$0")/lib.sh"
mkdir imgs && cp "$COREL"/beaches/10{0,1,2}.jpg imgs/

check_dim() {  # check_dim MODEL DIM
  expect_status 0 "$IMGSEARCH" extract imgs -m "$1" --format npy -o feats.npy --precision fp32
  "$PYTHON" -c "
import numpy as np
a = np.load('feats.npy'); assert a.shape == (3, $2), a.shape
assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-4)
paths = open('feats.txt').read().split()
assert [p.rsplit('/',1)[1] for p in paths] == ['100.jpg','101.jpg','102.jpg'], paths"
}

for spec in resnet50:2048 mobilenet_v2:1280 vgg16:4096; do
  arch=${spec%%:*}; dim=${spec##*:}
  expect_status 0 "$PYTHON" "$SOURCE_DIR/models/export.py" "$arch" --weights random -o "$arch.pt"
  expect_in "$WORK/err" "random"
  check_dim "$arch.pt" "$dim"
  "$PYTHON" "$SOURCE_DIR/models/export.py" info "$arch.pt" > meta.json
  "$PYTHON" -c "
import json; m = json.load(open('meta.json'))
assert m['name'] == '$arch' and m['output_dim'] == $dim and m['weights'] == 'random', m
assert m['mean'] == [0.485, 0.456, 0.406] and m['input_size'] == 224 and m['resize'] == 256, m"
  rm -f "$arch.pt"   # vgg16 is 537 MB
done

# ImageNet weights need a network: without one, a clear message and exit 1 (no traceback).
# With a network this would download; only run it where the download cannot work.
if ! timeout 5 "$PYTHON" -c "import urllib.request; urllib.request.urlopen('https://download.pytorch.org', timeout=3)" 2>/dev/null; then
  expect_status 1 timeout 120 "$PYTHON" "$SOURCE_DIR/models/export.py" resnet50 --weights imagenet -o r.pt
  expect_in "$WORK/err" "pass --weights /"
  expect_not_in "$WORK/err" "Traceback"
fi

# import: the shared MobileNetV2 made self-describing gives the same vectors as passing
# --mean/--std by hand.
expect_status 0 "$PYTHON" "$SOURCE_DIR/models/export.py" import "$MOBILENET" --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 -o mnv2.pt
expect_status 0 "$IMGSEARCH" extract imgs -m mnv2.pt --format npy -o a.npy
expect_status 0 "$IMGSEARCH" extract imgs "${MOBILENET_ARGS[@]}" --format npy -o b.npy
"$PYTHON" -c "
import numpy as np
a, b = np.load('a.npy'), np.load('b.npy')
assert a.shape == b.shape == (3, 1280) and np.allclose(a, b, atol=1e-5)"
# Without metadata or --mean/--std, imgsearch warns that it assumes ImageNet values.
expect_status 0 "$IMGSEARCH" extract imgs -m "$MOBILENET" -o c.features
expect_in "$WORK/err" "no preprocessing metadata"
