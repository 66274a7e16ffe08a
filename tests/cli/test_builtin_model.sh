# The built-in model: faithful to the float32 original (embeddings and Corel-1k mAP), and
# the default model order: -m, $IMGSEARCH_MODEL, the index's model (or the built-in one by
# hash when that file is gone), an exported default, the built-in model.
# fixture: corel
source "$(dirname "$0")/lib.sh"
export HOME="$WORK/home"  # no exported default model unless a case makes one
BUILTIN=$("$IMGSEARCH" --print-default-model)
case $BUILTIN in */share/imgsearch/models/mobilenet_v2_imagenet.pt) ;; *) fail "default model is $BUILTIN" ;; esac
[ -s "$BUILTIN" ] || fail "built-in model $BUILTIN missing"
size=$(stat -c %s "$BUILTIN")
[ "$size" -lt 10000000 ] || fail "built-in model is $size bytes, over 10 MB"
[ -s "$(dirname "$BUILTIN")/LICENSE" ] && grep -q "Apache License" "$(dirname "$BUILTIN")/LICENSE" || fail "licence missing beside the model"

# 1. Embeddings of real photos within cosine 0.999 of the float32 original's (fp32 inference
#    on both sides, so only the float16 storage differs).
sed "s|^|$COREL/|" "$SHARED/models/mobilenet_v2/reference_embeddings.txt" > refs.txt
"$IMGSEARCH" extract - --format npy -o builtin.npy --precision fp32 < refs.txt
"$IMGSEARCH" extract - --format npy -o original.npy --precision fp32 "${MOBILENET_ARGS[@]}" < refs.txt
"$PYTHON" - <<'PY'
import numpy as np
a, b = np.load("builtin.npy"), np.load("original.npy")
assert a.shape == b.shape == (20, 1280), (a.shape, b.shape)
cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
print(f"built-in vs original: min cosine {cos.min():.6f}")
assert cos.min() >= 0.999, cos.min()
PY

# 2. Corel-1k mAP within 0.002 of the original's (the fixture index), same precision (auto).
if at_dataset_scale "the built-in model's Corel-1k mAP (1,000 images embedded)"; then
"$IMGSEARCH" index "$COREL" -i builtin.index >/dev/null
"$IMGSEARCH" eval -i builtin.index --json > builtin.json
"$IMGSEARCH" eval -i "$COREL_INDEX" --json > original.json
"$PYTHON" - <<'PY'
import json
a, b = json.load(open("builtin.json")), json.load(open("original.json"))
ma, mb = a["exact"]["mAP"], b["exact"]["mAP"]
print(f"Corel-1k mAP: built-in {ma:.4f}, original {mb:.4f}")
assert abs(ma - mb) <= 0.002, (ma, mb)
assert ma > 0.88, ma
PY
else
"$IMGSEARCH" index - -i builtin.index < refs.txt >/dev/null  # the 20 reference photos, for `info` below
fi
"$IMGSEARCH" info -i builtin.index > info.txt
expect_in info.txt "model file: $BUILTIN"
expect_in info.txt "mobilenet_v2 \(imagenet weights\)"

# 3. The order of defaults.
mkdir -p photos && cp "$COREL/buses/300.jpg" "$COREL/flowers/600.jpg" photos/
"$IMGSEARCH" index photos -i plain.index >/dev/null
"$IMGSEARCH" info -i plain.index --json > plain.json
"$PYTHON" -c "import json,sys; m=json.load(open('plain.json'))['model']; assert m['path']==sys.argv[1], m" "$BUILTIN"
# an exported default beats the built-in model
mkdir -p "$HOME/.local/share/imgsearch/models"
cp "$RANDOM_MOBILENET" "$HOME/.local/share/imgsearch/models/default.pt"
[ "$("$IMGSEARCH" --print-default-model)" = "$HOME/.local/share/imgsearch/models/default.pt" ] || fail "exported default not preferred"
IMGSEARCH_HOME="$WORK/ihome" "$IMGSEARCH" --print-default-model > p.txt
expect_in p.txt "share/imgsearch/models/mobilenet_v2_imagenet.pt"
"$IMGSEARCH" index photos -i exported.index >/dev/null
"$IMGSEARCH" info -i exported.index > info.txt
expect_in info.txt "model file: $HOME/.local/share/imgsearch/models/default.pt"
# the index's own model beats the exported default: querying plain.index uses the built-in one
expect_status 0 "$IMGSEARCH" query photos/300.jpg -i plain.index -k 1 --format tsv
expect_in "$WORK/out" "	1	1\.0000..	.*/photos/300\.jpg$"
# $IMGSEARCH_MODEL beats the index's model (and is refused: another model)
expect_status 1 env IMGSEARCH_MODEL="$RANDOM_MOBILENET" "$IMGSEARCH" query photos/300.jpg -i plain.index
expect_in "$WORK/err" "the index was built with model .*mobilenet_v2_imagenet\.pt"
# -m beats $IMGSEARCH_MODEL
expect_status 0 env IMGSEARCH_MODEL="$RANDOM_MOBILENET" "$IMGSEARCH" query photos/300.jpg -i plain.index -m "$BUILTIN" -k 1
rm "$HOME/.local/share/imgsearch/models/default.pt"

# 4. An index made with a copy of the built-in model keeps working once that copy is gone:
#    the built-in model has the same content hash.
mkdir -p moved && cp "$BUILTIN" moved/m.pt
"$IMGSEARCH" index photos -i moved.index -m moved/m.pt >/dev/null
rm -r moved
expect_status 0 "$IMGSEARCH" query photos/600.jpg -i moved.index -k 2 --format tsv
expect_in "$WORK/out" "	1	1\.0000..	.*/photos/600\.jpg$"
# ... but a missing model that is not the built-in one is named
mkdir -p other && cp "$RANDOM_MOBILENET" other/r.pt
"$IMGSEARCH" index photos -i other.index -m other/r.pt >/dev/null
rm -r other
expect_status 1 "$IMGSEARCH" query photos/600.jpg -i other.index
expect_in "$WORK/err" "other/r\.pt: cannot open model"
echo "ok"
