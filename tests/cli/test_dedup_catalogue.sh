#!/usr/bin/env bash
# dedup on a catalogue: 120 different shoes from fashion44k, one product each on a white
# background, which the presets before the crowded-signal rule put into one group (their
# 64-bit pHashes agree to within a few bits; docs/dedup.md, "Crowded signals"). Now no two
# different shoes may share a group, while real copies of three of them (a byte copy, a
# JPEG re-encode, a PNG conversion) still join their original.
source "$(dirname "$0")/lib.sh"

FASHION="$SHARED/datasets/fashion44k/images"
# Shoes the old near preset grouped together (its largest group on fashion44k), none of
# them a copy of another.
SHOES="1635 1729 1833 2367 2369 2370 2371 2372 2373 2374 2375 2378 2379 2380 2382 2384 2385 2387 2391 2399
2633 2637 2642 2805 2807 2809 2812 2817 2820 2822 2833 2987 3238 3255 3303 3311 3367 3371 3503 3549 3551 3560
3578 3592 3835 3837 3842 3843 4110 4180 4181 4183 4272 4281 4565 4568 4569 4570 4646 4965 5316 5525 5574 5606
5608 5675 5677 5678 5684 5690 5692 5697 5699 5702 5704 5901 6114 6144 6178 6201 6302 6326 6378 6390 6392 6393
6395 6396 6397 6398 6399 6412 6413 6445 6460 6462 6474 6490 6494 6499 6502 6649 6679 6805 6826 7037 7267 7327
7330 7363 7365 7372 7376 7377 7379 7381 7386 7388 7389 7395"
mkdir -p cat/products cat/copies
for id in $SHOES; do cp -p "$FASHION/$id.jpg" cat/products/; done
[ "$(ls cat/products | wc -l)" = 120 ] || fail "expected 120 shoes"
cp -p cat/products/2370.jpg cat/copies/2370-copy.jpg
"$PYTHON" -c "
from PIL import Image
Image.open('cat/products/4568.jpg').save('cat/copies/4568-q90.jpg', quality=90)
Image.open('cat/products/6397.jpg').save('cat/copies/6397.png')
"

expect_status 0 "$IMGSEARCH" -v dedup cat -i cat.index "${MOBILENET_ARGS[@]}" --format json
cp "$WORK/out" groups.jsonl
# The log says why: the pHash of (nearly) every shoe is crowded, so for all of them.
expect_in "$WORK/err" "crowded signals: the pHash of [0-9]+ images \(so: of all\)"
"$PYTHON" - groups.jsonl <<'PY'
import json, os, sys
groups = [json.loads(line) for line in open(sys.argv[1])]
def product(path):  # the shoe a file shows: copies are named after their original
    return os.path.basename(path).split("-")[0].split(".")[0]
for g in groups:
    shoes = {product(m["path"]) for m in g["members"]}
    assert len(shoes) == 1, "different shoes grouped: %s" % sorted(m["path"] for m in g["members"])
found = {product(m["path"]): sorted(os.path.basename(x["path"]) for x in g["members"]) for g in groups for m in g["members"]}
assert found.get("2370") == ["2370-copy.jpg", "2370.jpg"], found.get("2370")
assert found.get("4568") == ["4568-q90.jpg", "4568.jpg"], found.get("4568")
assert found.get("6397") == ["6397.jpg", "6397.png"], found.get("6397")
assert len(groups) == 3, groups
signals = {os.path.basename(m["path"]): m["signal"] for g in groups for m in g["members"]}
assert "content" in signals.values(), signals
assert "cnn+phash" in signals.values(), signals  # in a crowd, both signals must agree
PY

# Without the rule (the old behaviour, still available as overrides) the shoes chain into
# groups of different products: the test above is what the rule changes.
expect_status 0 "$IMGSEARCH" dedup -i cat.index --format json --threshold crowd-phash-limit=-1 --threshold crowd-cnn-limit=-1
"$PYTHON" -c "
import json, sys
groups = [json.loads(l) for l in open(sys.argv[1])]
assert max(len(g['members']) for g in groups) >= 20, [len(g['members']) for g in groups]
" "$WORK/out"

# --query: a fresh re-encode of a shoe finds it; another shoe of the catalogue that is not
# in the index is not reported as a duplicate of any of these.
"$PYTHON" -c "from PIL import Image; Image.open('cat/products/5606.jpg').save('query-5606.jpg', quality=85)"
expect_status 0 "$IMGSEARCH" dedup -i cat.index "${MOBILENET_ARGS[@]}" --query query-5606.jpg "$FASHION/10128.jpg"
expect_in "$WORK/out" "^query-5606.jpg	[^	]*/5606.jpg	"
expect_in "$WORK/out" "^$FASHION/10128.jpg	-	"
