#!/usr/bin/env bash
# Compact vectors (`index --vectors f16|int8`): an index whose graph searches f16 or int8
# codes, rescored with the file's rows (float32 for int8; f16 files store their rows in
# half precision, half the size), ranks a query like the float32 index;
# `info` names the encoding; incremental add and remove, eval, dedup and the post-processing
# keep working; changing the encoding re-links the graph; a file with an unknown "vectors"
# value is refused in one line.
source "$(dirname "$0")/lib.sh"
mkdir photos
for f in "$COREL"/horses/70[0-9].jpg "$COREL"/buses/30[0-9].jpg "$COREL"/dinosaurs/40[0-9].jpg; do
  cp "$f" "photos/$(basename "$(dirname "$f")")-$(basename "$f")"
done
cp "$COREL/beaches/100.jpg" beach.jpg
top() {  # top INDEX QUERY: the 10 best scores and paths
  expect_status 0 "$IMGSEARCH" query -i "$1" "$2" -k 10 --format tsv
  cut -f3,4 "$WORK/out"
}
field() { "$IMGSEARCH" info -i "$1" --json | "$PYTHON" -c "import json,sys; j=json.load(sys.stdin); print(j['$2'])"; }

# int8 from the images; f32 and f16 from it by --vectors alone (re-linked, no model needed).
expect_status 0 "$IMGSEARCH" index photos -i int8.index --vectors int8 "${MOBILENET_ARGS[@]}"
expect_in "$WORK/out" "^added 30, updated 0, removed 0, unchanged 0$"
cp int8.index f32.index
expect_status 0 "$IMGSEARCH" index -i f32.index --vectors f32
expect_in "$WORK/out" "^vectors: int8 -> f32 \(graph re-linked over 30 images\)$"
cp f32.index f16.index
expect_status 0 "$IMGSEARCH" index -i f16.index --vectors f16
expect_in "$WORK/out" "^vectors: f32 -> f16"
[ "$(field int8.index vectors)" = int8 ] || fail "info --json: $(field int8.index vectors)"
[ "$(field f16.index vectors)" = f16 ] || fail "info --json: $(field f16.index vectors)"
[ "$(field f32.index vectors)" = f32 ] || fail "info --json: $(field f32.index vectors)"
expect_status 0 "$IMGSEARCH" info -i int8.index
expect_in "$WORK/out" "^vectors: +int8 codes in memory"
expect_status 0 "$IMGSEARCH" info -i f16.index
expect_in "$WORK/out" "^vectors: +f16 codes in memory, stored as the file's rows \(binary16\)"
# int8 holds the same 30 x 1280 float32 rows as f32, plus its codes (CODES: 30 x 1284 bytes)
# and a checksum a row (ROWSUMS: 30 x 8), which searchers load instead of checking the rows.
# The files may also differ by a few link lists (GRAPH is variable-length, and int8
# distances can prune a neighbour that f32 keeps: at most 30 x 32 links x 4 bytes at level
# 0) and two sections' alignment. f16 stores its rows as binary16: the file is 30 x 1280 x
# 2 bytes smaller, give or take those link lists.
diff_bytes=$(( $(field int8.index file_size) - $(field f32.index file_size) - 30 * (1284 + 8) ))
[ "${diff_bytes#-}" -lt 8192 ] || fail "int8 should store its codes and row sums (file is off by $diff_bytes bytes)"
diff_bytes=$(( $(field f32.index file_size) - $(field f16.index file_size) - 30 * 1280 * 2 ))
[ "${diff_bytes#-}" -lt 8192 ] || fail "f16 rows should take 2 bytes a value (off by $diff_bytes bytes)"

# Same ranking as float32, for a member and an outsider; int8's scores are exact (float32
# rows), f16's those of its half-precision rows (within 0.002).
for q in photos/horses-703.jpg photos/buses-305.jpg beach.jpg; do
  top f32.index "$q" > want.tsv
  top int8.index "$q" > got.tsv
  diff want.tsv got.tsv > /dev/null || { paste want.tsv got.tsv; fail "int8 ranks $q unlike f32"; }
  top f16.index "$q" > got.tsv
  paste want.tsv got.tsv | "$PYTHON" -c '
import sys
for line in sys.stdin:
    want_score, want_path, got_score, got_path = line.rstrip("\n").split("\t")
    assert want_path == got_path and abs(float(want_score) - float(got_score)) <= 0.002, line
' || fail "f16 ranks $q unlike f32"
done
head -1 want.tsv | grep -q "beach.jpg" && fail "beach is not indexed"
top int8.index photos/horses-703.jpg > got.tsv
cut -f2 got.tsv | grep -c horses- | grep -qx 10 || fail "the 10 horses should come first"

# Incremental on int8: the encoding is kept; add 2, remove 1 (a tombstone), update 1.
cp "$COREL/elephants/500.jpg" photos/elephants-500.jpg; cp "$COREL/elephants/501.jpg" photos/elephants-501.jpg
rm photos/horses-709.jpg
cp "$COREL/dinosaurs/450.jpg" photos/buses-300.jpg
touch -d '2001-01-01' photos/buses-300.jpg
expect_status 0 "$IMGSEARCH" index photos -i int8.index "${MOBILENET_ARGS[@]}"
expect_in "$WORK/out" "^added 2, updated 1, removed 1, unchanged 28$"
[ "$(field int8.index vectors)" = int8 ] || fail "the encoding should be kept on an incremental run"
[ "$(field int8.index tombstones)" = 2 ] || fail "expected 2 tombstones, got $(field int8.index tombstones)"
expect_status 0 "$IMGSEARCH" query -i int8.index "$COREL/dinosaurs/450.jpg" -k 31 --format tsv
head -1 "$WORK/out" | grep -q "buses-300.jpg" || fail "the updated file should be found by its new image"
expect_not_in "$WORK/out" "horses-709.jpg"
[ "$(wc -l < "$WORK/out")" = 31 ] || fail "expected all 31 images"
expect_status 0 "$IMGSEARCH" query -i int8.index "$COREL/elephants/501.jpg" -k 1 --format tsv
expect_in "$WORK/out" "elephants-501.jpg"

# Post-processing on a compact index: augmentation and query expansion, then removal.
expect_status 0 "$IMGSEARCH" index -i f16.index --dba 3 --qe 2
expect_status 0 "$IMGSEARCH" query -i f16.index photos/dinosaurs-404.jpg -k 5 --format tsv
cut -f4 "$WORK/out" | grep -c dinosaurs- | grep -qx 5 || fail "augmented f16: 5 dinosaurs expected"
rm photos/elephants-50?.jpg
expect_status 0 "$IMGSEARCH" index photos -i f16.index "${MOBILENET_ARGS[@]}"
[ "$(field f16.index vectors)" = f16 ] || fail "f16 kept with augmentation"
expect_status 0 "$IMGSEARCH" dedup -i int8.index
expect_status 0 "$IMGSEARCH" query -i f16.index photos/dinosaurs-404.jpg -k 5 --format tsv

# Unknown or corrupt "vectors" values (checksums made right, so the value itself is read).
set_vectors() {  # set_vectors IN OUT NEW: META "vectors" replaced by NEW (same length)
  edit_meta "$1" "$2" '"vectors":"int8"' "\"vectors\":$3"
}
set_vectors int8.index int4.index '"int4"'
expect_status 1 "$IMGSEARCH" query -i int4.index beach.jpg
expect_in "$WORK/err" "unknown vector encoding \"int4\""
[ "$(wc -l < "$WORK/err")" = 1 ] || { cat "$WORK/err"; fail "expected a one-line error"; }
set_vectors int8.index num.index '123456'
expect_status 1 "$IMGSEARCH" info -i num.index
expect_in "$WORK/err" "unknown vector encoding \"123456\""
[ "$(wc -l < "$WORK/err")" = 1 ] || { cat "$WORK/err"; fail "expected a one-line error"; }
# An unknown --vectors is a usage error.
expect_status 2 "$IMGSEARCH" index photos -i int8.index --vectors int4
echo ok
