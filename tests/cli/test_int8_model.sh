# int8 CNN inference: models/export.py --quantize int8 --calibrate DIR quantises the real
# MobileNetV2 (torchvision layout, ../shared/models) on a handful of the user's images;
# imgsearch runs it in int8 with --precision auto, its embeddings agree with the fp32
# export of the same weights, it retrieves the same neighbours on a Corel subset, and
# precision/model mismatches are refused with clear messages. On a CPU without VNNI the
# int8 model is refused instead (its kernels there give wrong embeddings).
source "$(dirname "$0")/lib.sh"
STATE_DICT="$SHARED/models/mobilenet_v2/mobilenet_v2_torchvision_state_dict.pth"
EXPORT=("$PYTHON" "$SOURCE_DIR/models/export.py" mobilenet_v2 --weights "$STATE_DICT" --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5)

# Calibration images (one per class) and the evaluation subset (5 others per class).
mkdir calib subset
for class in africans beaches buildings buses dinosaurs elephants flowers food horses mountains; do
  files=("$COREL/$class"/*.jpg)
  cp "${files[10]}" "calib/$class.jpg"
  for j in 20 31 42 53 64; do cp "${files[$j]}" "subset/$class-$j.jpg"; done
done
echo "not an image" > calib/broken.jpg   # one unreadable file is skipped, not fatal

expect_status 1 "${EXPORT[@]}" --quantize int8 -o q.pt
expect_in "$WORK/err" "needs --calibrate DIR"
expect_status 1 "${EXPORT[@]}" --quantize int8 --calibrate nowhere -o q.pt
expect_in "$WORK/err" "nowhere: not a directory"

expect_status 0 "${EXPORT[@]}" -o fp32.pt
expect_status 0 "${EXPORT[@]}" --quantize int8 --calibrate calib -o int8.pt
expect_in "$WORK/err" "calibrating mobilenet_v2 int8 \(onednn\) on 10 images from calib \(1 unreadable\)"
expect_in "$WORK/err" "broken.jpg: skipped for calibration"
"$PYTHON" "$SOURCE_DIR/models/export.py" info int8.pt > meta.json
"$PYTHON" -c "
import json; m = json.load(open('meta.json'))
assert m['quantized'] == 'int8' and m['quantized_engine'] == 'onednn' and m['calibration_images'] == 10, m
assert m['mean'] == [0.5, 0.5, 0.5] and m['std'] == [0.5, 0.5, 0.5] and m['output_dim'] == 1280, m"
[ "$(stat -c %s int8.pt)" -lt "$(( $(stat -c %s fp32.pt) / 2 ))" ] || fail "the int8 file is not smaller than half the fp32 one"

# Mismatches are refused, naming the file.
expect_status 1 "$IMGSEARCH" extract subset -m int8.pt --precision fp32 -o x.features
expect_in "$WORK/err" "int8.pt: the model is quantised to int8 and runs only in int8"
expect_status 1 "$IMGSEARCH" extract subset -m fp32.pt --precision int8 -o x.features
expect_in "$WORK/err" "fp32.pt: --precision int8 needs a quantised model file"

# Without VNNI, LibTorch's int8 kernels give wrong embeddings (cosine ~0.24 to fp32 on an
# AVX2-only AMD EPYC): imgsearch refuses the model there, naming it, instead of answering.
if ! grep -qwE 'avx512_vnni|avx_vnni|amx_int8' /proc/cpuinfo; then
  expect_status 1 "$IMGSEARCH" extract subset -m int8.pt --format npy -o int8.npy
  expect_in "$WORK/err" "int8.pt: int8 models need a CPU with VNNI"
  [ ! -e int8.npy ] || fail "a refused model wrote output"
  echo "ok (no VNNI on this CPU: int8 refused; quality checked on CPUs with it)"
  exit 0
fi

# auto picks int8 for the quantised file; the embeddings agree with fp32's.
expect_status 0 "$IMGSEARCH" extract subset -m int8.pt --format npy -o int8.npy
expect_status 0 "$IMGSEARCH" extract subset -m fp32.pt --precision fp32 --format npy -o fp32.npy
expect_status 0 "$IMGSEARCH" extract subset -m int8.pt --precision int8 --format npy -o int8b.npy
"$PYTHON" - <<'PY'
import numpy as np
a, b, c = np.load("int8.npy"), np.load("fp32.npy"), np.load("int8b.npy")
assert a.shape == b.shape == (50, 1280), a.shape
assert np.allclose(a, c), "--precision int8 and auto differ"
cos = (a * b).sum(1)
print("int8 vs fp32 cosine: mean %.4f min %.4f" % (cos.mean(), cos.min()))
assert cos.mean() >= 0.95 and cos.min() >= 0.85, (cos.mean(), cos.min())
# Retrieval: each image's 5 nearest neighbours mostly the same under int8 and fp32.
def top(x):
    s = x @ x.T
    np.fill_diagonal(s, -2)
    return np.argsort(-s, axis=1)[:, :5]
ta, tb = top(a), top(b)
overlap = np.mean([len(set(ta[i]) & set(tb[i])) / 5 for i in range(len(a))])
print("top-5 overlap %.3f" % overlap)
assert overlap >= 0.8, overlap
PY

# An index built with the int8 model reloads it for queries (auto = int8 again).
expect_status 0 "$IMGSEARCH" index subset -i q.index -m int8.pt
dinos=("$COREL/dinosaurs"/*.jpg)
expect_status 0 "$IMGSEARCH" query -i q.index "${dinos[99]}" -k 5 --format tsv
[ "$(grep -c dinosaurs- "$WORK/out")" -ge 4 ] || fail "int8 index: a dinosaur query should find dinosaurs"
echo ok
