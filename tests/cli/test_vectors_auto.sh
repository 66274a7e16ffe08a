#!/usr/bin/env bash
# `index --vectors auto`, the default: an index keeps float32 rows until it holds
# $IMGSEARCH_INT8_FROM images (50,000 unless set; 6 here), then the next `index` run turns
# them into int8 codes, says so, and ranks as before. A new index that starts at the
# threshold is int8 from the start; one that shrinks stays int8. An encoding chosen with
# --vectors is kept as the index grows, until --vectors auto; `info` tells which is which.
# Shards merged with --from-features switch at the shard that crosses. A bad threshold is a
# one-line usage error before any work.
source "$(dirname "$0")/lib.sh"
mkdir photos more
for f in "$COREL"/horses/70[0-3].jpg; do cp "$f" "photos/horses-$(basename "$f")"; done
for f in "$COREL"/buses/30[0-3].jpg; do cp "$f" "more/buses-$(basename "$f")"; done
export IMGSEARCH_INT8_FROM=6
field() { "$IMGSEARCH" info -i "$1" --json | "$PYTHON" -c "import json,sys; j=json.load(sys.stdin); print(j['$2'])"; }
top() {  # top INDEX QUERY: the 8 best scores and paths
  expect_status 0 "$IMGSEARCH" query -i "$1" "$2" -k 8 --format tsv
  cut -f3,4 "$WORK/out"
}

# Below the threshold: float32, chosen by nobody.
expect_status 0 "$IMGSEARCH" index photos -i grows.index "${MOBILENET_ARGS[@]}"
expect_not_in "$WORK/out" "^vectors:"
[ "$(field grows.index vectors)" = f32 ] || fail "4 images: expected f32, got $(field grows.index vectors)"
[ "$(field grows.index vectors_chosen)" = False ] || fail "nobody chose this encoding"
expect_status 0 "$IMGSEARCH" info -i grows.index
expect_in "$WORK/out" "^vectors: +f32 \(auto: int8 from 6 images\)$"

# Growing past it: the run that adds the images re-links the graph over int8 first.
cp more/* photos/
expect_status 0 "$IMGSEARCH" index photos -i grows.index "${MOBILENET_ARGS[@]}"
expect_in "$WORK/out" "^vectors: f32 -> int8 \(--vectors auto: 8 images, int8 from 6; graph re-linked over 4 images\)$"
expect_in "$WORK/out" "^added 4, updated 0, removed 0, unchanged 4$"
[ "$(field grows.index vectors)" = int8 ] || fail "8 images: expected int8, got $(field grows.index vectors)"
expect_status 0 "$IMGSEARCH" info -i grows.index
expect_in "$WORK/out" "^vectors: +int8 codes in memory.* \(auto\)$"

# Chosen: f32 stays f32 past the threshold (same 8 images, no line about vectors).
expect_status 0 "$IMGSEARCH" index photos -i chosen.index --vectors f32 "${MOBILENET_ARGS[@]}"
expect_not_in "$WORK/out" "^vectors:"
[ "$(field chosen.index vectors)" = f32 ] || fail "--vectors f32 must be kept at 8 images"
[ "$(field chosen.index vectors_chosen)" = True ] || fail "--vectors f32 is a choice"
expect_status 0 "$IMGSEARCH" info -i chosen.index
expect_in "$WORK/out" "^vectors: +f32 \(chosen with --vectors\)$"
cp "$COREL/elephants/500.jpg" photos/elephants-500.jpg
expect_status 0 "$IMGSEARCH" index photos -i chosen.index "${MOBILENET_ARGS[@]}"
expect_in "$WORK/out" "^added 1, updated 0, removed 0, unchanged 8$"
[ "$(field chosen.index vectors)" = f32 ] || fail "a chosen encoding must survive an incremental run"
rm photos/elephants-500.jpg

# The int8 index ranks like the float32 one: codes pick the candidates, exact rows score them.
expect_status 0 "$IMGSEARCH" index photos -i chosen.index "${MOBILENET_ARGS[@]}"
for q in photos/horses-701.jpg photos/buses-302.jpg "$COREL/beaches/100.jpg"; do
  top chosen.index "$q" > want.tsv
  top grows.index "$q" > got.tsv
  diff want.tsv got.tsv > /dev/null || { paste want.tsv got.tsv; fail "auto int8 ranks $q unlike f32"; }
done

# --vectors auto gives a chosen encoding back to the rule.
expect_status 0 "$IMGSEARCH" index -i chosen.index --vectors auto
expect_in "$WORK/out" "^vectors: f32 -> int8 \(--vectors auto: 8 images, int8 from 6; graph re-linked over 8 images\)$"
[ "$(field chosen.index vectors_chosen)" = False ] || fail "--vectors auto: nobody's choice any more"

# A new index at the threshold is int8 from the start: nothing to re-link.
expect_status 0 "$IMGSEARCH" index photos -i new.index "${MOBILENET_ARGS[@]}"
expect_in "$WORK/out" "^vectors: int8 \(--vectors auto: 8 images, int8 from 6\)$"
[ "$(field new.index vectors)" = int8 ] || fail "a new index of 8 images: expected int8"

# It never goes back: shrunk below the threshold, it stays int8.
rm photos/buses-30[0-2].jpg
expect_status 0 "$IMGSEARCH" index photos -i new.index "${MOBILENET_ARGS[@]}"
expect_in "$WORK/out" "^added 0, updated 0, removed 3, unchanged 5$"
[ "$(field new.index vectors)" = int8 ] || fail "a shrinking index keeps int8"
cp more/* photos/

# Shards of 4: the merge switches at the second, which crosses 6.
for i in 0 1; do
  expect_status 0 "$IMGSEARCH" extract photos --shard "$i/2" -o "shard$i.features" "${MOBILENET_ARGS[@]}"
done
expect_status 0 "$IMGSEARCH" index --from-features shard0.features shard1.features -i merged.index
expect_in "$WORK/out" "^vectors: f32 -> int8 \(--vectors auto: 8 images, int8 from 6; graph re-linked over 4 images\)$"
[ "$(field merged.index vectors)" = int8 ] || fail "merged: expected int8"
top merged.index photos/horses-701.jpg > got.tsv
top chosen.index photos/horses-701.jpg > want.tsv
diff want.tsv got.tsv > /dev/null || { paste want.tsv got.tsv; fail "the merged index ranks unlike the others"; }

# A bad threshold: a usage error naming the variable, before any image is read.
for bad in abc 0 -5 12x; do
  IMGSEARCH_INT8_FROM=$bad expect_status 2 "$IMGSEARCH" index photos -i bad.index "${MOBILENET_ARGS[@]}"
  expect_in "$WORK/err" "IMGSEARCH_INT8_FROM: expected a number of images \(1 or more\), got '$bad'"
  [ "$(wc -l < "$WORK/err")" = 1 ] || { cat "$WORK/err"; fail "expected a one-line error"; }
  [ ! -e bad.index ] || fail "nothing should be written"
done
# A file with a "vectors_chosen" that is not a boolean is refused in one line.
cp grows.index chosen8.index
expect_status 0 "$IMGSEARCH" index -i chosen8.index --vectors int8
[ "$(field chosen8.index vectors_chosen)" = True ] || fail "--vectors int8 is a choice"
edit_meta chosen8.index odd.index '"vectors_chosen":true' '"vectors_chosen":"ye"'
expect_status 1 "$IMGSEARCH" info -i odd.index
expect_in "$WORK/err" "vectors_chosen"
[ "$(wc -l < "$WORK/err")" = 1 ] || { cat "$WORK/err"; fail "expected a one-line error"; }
echo ok
