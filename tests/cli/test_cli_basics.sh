# The command line as scripts use it: exit statuses, valid JSON and TSV, stdin input, and
# clear errors for a missing model or index.
# fixture: corel
source "$(dirname "$0")/lib.sh"
Q="$COREL/horses/700.jpg"

# No subcommand, unknown option: usage errors.
expect_status 2 "$IMGSEARCH"
expect_status 2 "$IMGSEARCH" query --no-such-option "$Q"
expect_status 0 "$IMGSEARCH" --version

# Missing index: names it, exit 1.
expect_status 1 "$IMGSEARCH" query -i "$WORK/nope.index" "$Q"
expect_in "$WORK/err" "nope.index: cannot open"
[ "$(wc -l < "$WORK/err")" = 1 ] || fail "expected a one-line error"

# Default index location and $IMGSEARCH_INDEX.
expect_status 1 "$IMGSEARCH" query "$Q"
expect_in "$WORK/err" "imgsearch.index: cannot open"
IMGSEARCH_INDEX="$COREL_INDEX" expect_status 0 "$IMGSEARCH" query "$Q" -k 3
expect_in "$WORK/out" "horses/700.jpg"

# Missing model: a clear message naming it.
expect_status 1 "$IMGSEARCH" extract "$Q" -m "$WORK/missing.pt" -o f.features
expect_in "$WORK/err" "missing.pt: cannot open model"
# No model given and none exported: the built-in MobileNetV2, no network needed.
IMGSEARCH_HOME="$WORK/home" expect_status 0 "$IMGSEARCH" extract "$Q" -o f.features
expect_in "$WORK/err" "extracted 1 images \(1280-d, mobilenet_v2\)"

# info, text and JSON.
expect_status 0 "$IMGSEARCH" info -i "$COREL_INDEX" --json
"$PYTHON" -c "
import json,sys; d=json.load(open('$WORK/out'))
assert d['count']==1000 and d['dim']==1280, d
assert d['model']['mean']==[0.5,0.5,0.5] and d['hnsw']['M']==16, d
"
expect_status 0 "$IMGSEARCH" info -i "$COREL_INDEX"
expect_in "$WORK/out" "images: +1000"

# Query output formats. JSON: one object per query per line.
expect_status 0 "$IMGSEARCH" query -i "$COREL_INDEX" "$Q" "$COREL/buses/300.jpg" -k 4 --json
[ "$(wc -l < "$WORK/out")" = 2 ] || fail "expected two JSON lines"
"$PYTHON" -c "
import json
lines=[json.loads(l) for l in open('$WORK/out')]
for l in lines:
    assert set(l)=={'query','results'} and len(l['results'])==4
    assert all(set(r)=={'rank','path','score'} for r in l['results'])
"
expect_status 0 "$IMGSEARCH" query -i "$COREL_INDEX" "$Q" -k 5 --format tsv
[ "$(wc -l < "$WORK/out")" = 5 ] || fail "expected five TSV lines"
[ "$(cut -f2 "$WORK/out" | tr '\n' ' ')" = "1 2 3 4 5 " ] || fail "TSV ranks"
[ "$(cut -f1 "$WORK/out" | sort -u)" = "$Q" ] || fail "TSV query column"

# A query image that is not in the index works (a flipped copy of a horse).
"$PYTHON" -c "
from PIL import Image, ImageOps
ImageOps.mirror(Image.open('$Q')).save('$WORK/flipped horse.jpg', quality=90)"
expect_status 0 "$IMGSEARCH" query -i "$COREL_INDEX" "$WORK/flipped horse.jpg" -k 1 --format tsv
expect_in "$WORK/out" "horses/700.jpg"

# One bad query among good ones: answered the good, named the bad, exit 3.
printf 'not an image' > bad.jpg
printf '%s\n' "$Q" "$WORK/bad.jpg" "$COREL/buses/300.jpg" | expect_status 3 "$IMGSEARCH" query -i "$COREL_INDEX" - -k 2 --json
[ "$(wc -l < "$WORK/out")" = 2 ] || fail "the two good queries should be answered"
expect_in "$WORK/err" "bad.jpg: "
# Only bad queries: exit 1.
expect_status 1 "$IMGSEARCH" query -i "$COREL_INDEX" "$WORK/bad.jpg"

# A different model than the index's is refused, naming both.
expect_status 1 "$IMGSEARCH" query -i "$COREL_INDEX" -m "$RANDOM_MOBILENET" "$Q"
expect_in "$WORK/err" "built with model .*mobilenet_v2_imagenet_embed.pt.*rebuild"

# extract: paths from stdin; progress only on a terminal; the summary on stderr.
printf '%s\n' "$COREL/food/900.jpg" "$COREL/food/901.jpg" | expect_status 0 "$IMGSEARCH" extract - -o s.features "${MOBILENET_ARGS[@]}"
expect_in "$WORK/err" "extracted 2 images"
expect_not_in "$WORK/err" "img/s"
[ ! -s "$WORK/out" ] || fail "extract printed on stdout"
script -qec "'$IMGSEARCH' extract '$COREL/food/902.jpg' -o t.features ${MOBILENET_ARGS[*]}" /dev/null > tty.txt
expect_in tty.txt "extracting .* 1/1 .*img/s"
