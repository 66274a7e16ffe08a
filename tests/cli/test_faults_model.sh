# Bad model files: missing, truncated, not TorchScript, or giving output of an unusable
# shape. Each is one clear line on stderr naming the file, exit status 1, and no index
# written. An index or features file built with another model is refused too.
source "$(dirname "$0")/lib.sh"
mkdir photos
for f in "$COREL"/horses/70?.jpg; do ln -s "$f" photos/; done   # 10 images
NORM=(--mean 0.5,0.5,0.5 --std 0.5,0.5,0.5)

expect_model_error() {  # expect_model_error MODEL PATTERN
  expect_status 1 "$IMGSEARCH" index photos -i bad.index -m "$1" "${NORM[@]}"
  expect_in "$WORK/err" "$2"
  grep -q "imgsearch: .*$(basename "$1")" "$WORK/err" || fail "the error does not name $1"
  [ "$(grep -vc "warning" "$WORK/err")" = 1 ] || { cat "$WORK/err"; fail "expected one error line"; }
  [ ! -e bad.index ] || fail "an index was written with a bad model"
}

expect_model_error "$WORK/nowhere.pt" "nowhere.pt: cannot open model: No such file or directory"
head -c 200000 "$RANDOM_MOBILENET" >truncated.pt
expect_model_error truncated.pt "truncated.pt: not a loadable TorchScript model"
head -c 100 "$RANDOM_MOBILENET" >tiny.pt
expect_model_error tiny.pt "tiny.pt: not a loadable TorchScript model"
: >empty.pt
expect_model_error empty.pt "empty.pt: not a loadable TorchScript model"
cp "$COREL/horses/700.jpg" photo.pt
expect_model_error photo.pt "photo.pt: not a loadable TorchScript model"
echo "print('hello')" >script.pt
expect_model_error script.pt "script.pt: not a loadable TorchScript model"
"$PYTHON" -c "import zipfile; zipfile.ZipFile('notscript.pt', 'w').writestr('archive/data.pkl', b'junk')"
expect_model_error notscript.pt "notscript.pt: not a loadable TorchScript model"
mkdir dir.pt
expect_model_error dir.pt "dir.pt: (cannot open model|not a loadable TorchScript model)"

# TorchScript modules whose output is not one pooled vector per image.
# (torch.jit.script needs the source in a file.)
cat >shapes.py <<'PY'
import torch

class FeatureMap(torch.nn.Module):   # [N, 3, 7, 7]: a feature map without pooling
    def forward(self, x):
        return x[:, :, ::32, ::32] * 1.0

class ThreeD(torch.nn.Module):       # [N, 3, 224]
    def forward(self, x):
        return x.mean(dim=2)

class Pair(torch.nn.Module):         # a tuple, not a tensor
    def forward(self, x):
        v = x.mean(dim=(2, 3))
        return (v, v)

class ZeroWidth(torch.nn.Module):    # [N, 0]
    def forward(self, x):
        return x[:, :0, 0, 0]

class NotANumber(torch.nn.Module):   # NaN everywhere
    def forward(self, x):
        return x.mean(dim=(2, 3)) * float("nan")

class ExtraRow(torch.nn.Module):     # one row more than images: [N + 1, 3]
    def forward(self, x):
        v = x.mean(dim=(2, 3)) + 1.0
        return torch.cat([v, v[:1]])

for name, cls in [("featmap", FeatureMap), ("threed", ThreeD), ("pair", Pair), ("zero", ZeroWidth),
                  ("nan", NotANumber), ("extrarow", ExtraRow)]:
    torch.jit.script(cls()).save(name + ".pt")
PY
"$PYTHON" shapes.py
expect_model_error featmap.pt "featmap.pt: model output has shape 1x3x7x7; expected \[1, D\]"
expect_model_error threed.pt "threed.pt: model output has shape 1x3x224; expected \[1, D\]"
expect_model_error pair.pt "pair.pt: the model returned Tuple, not a tensor"
expect_model_error zero.pt "zero.pt: model output has shape 1x0; expected \[1, D\]"
expect_model_error nan.pt "nan.pt: model produced NaN or infinity"
expect_model_error extrarow.pt "extrarow.pt: model output has shape 2x3; expected \[1, D\]"

# Query and update with a different model than the index was built with.
expect_status 0 "$IMGSEARCH" index photos -i good.index -m "$RANDOM_MOBILENET"
expect_status 1 "$IMGSEARCH" query -i good.index photos/700.jpg "${MOBILENET_ARGS[@]}"
expect_in "$WORK/err" "good.index: the index was built with model .*mobilenet_v2-random.pt"
expect_status 1 "$IMGSEARCH" index photos -i good.index "${MOBILENET_ARGS[@]}"
expect_in "$WORK/err" "good.index: the index was built with model"
# The index's own model file replaced by a truncated copy: refused by its hash.
cp "$RANDOM_MOBILENET" model-copy.pt
expect_status 0 "$IMGSEARCH" index photos -i copy.index -m model-copy.pt
head -c 300000 "$RANDOM_MOBILENET" >model-copy.pt
expect_status 1 "$IMGSEARCH" query -i copy.index photos/700.jpg
expect_in "$WORK/err" "copy.index: the index was built with model .*model-copy.pt"
# Features of another model are refused by --from-features.
expect_status 0 "$IMGSEARCH" extract photos -o other.feat "${MOBILENET_ARGS[@]}"
expect_status 1 "$IMGSEARCH" index --from-features other.feat -i good.index
expect_in "$WORK/err" "other.feat: holds features of model .* but good.index has model .*features from different models cannot be mixed"
# The good index is untouched by all of this.
expect_status 0 "$IMGSEARCH" info -i good.index --json
"$PYTHON" -c "import json; assert json.load(open('$WORK/out'))['count'] == 10"
