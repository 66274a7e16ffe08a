# Incremental indexing: added, changed and deleted files are counted, and the results
# follow the files.
source "$(dirname "$0")/lib.sh"
mkdir -p photos/a photos/b
cp "$COREL"/buses/30{0,1,2,3}.jpg photos/a/
cp "$COREL"/horses/70{0,1,2,3}.jpg photos/b/
idx() { "$IMGSEARCH" index photos -i my.index "${MOBILENET_ARGS[@]}"; }

expect_status 0 idx
expect_in "$WORK/out" "^added 8, updated 0, removed 0, unchanged 0$"

# Nothing changed: nothing extracted.
expect_status 0 idx
expect_in "$WORK/out" "^added 0, updated 0, removed 0, unchanged 8$"

# Add two, change one (a bus becomes a dinosaur), delete one.
cp "$COREL"/dinosaurs/40{0,1}.jpg photos/b/
cp "$COREL/dinosaurs/450.jpg" photos/a/301.jpg
touch -d '2001-01-01' photos/a/301.jpg
rm photos/b/703.jpg
expect_status 0 idx
expect_in "$WORK/out" "^added 2, updated 1, removed 1, unchanged 6$"

expect_status 0 "$IMGSEARCH" info -i my.index --json
"$PYTHON" -c "import json; assert json.load(open('$WORK/out'))['count'] == 9"

# The changed file is now found by the dinosaur it holds, and the deleted one is gone.
expect_status 0 "$IMGSEARCH" query -i my.index "$COREL/dinosaurs/450.jpg" -k 9 --format tsv
head -1 "$WORK/out" | grep -q "photos/a/301.jpg" || fail "changed file not re-extracted"
expect_not_in "$WORK/out" "703.jpg"
[ "$(wc -l < "$WORK/out")" = 9 ] || fail "expected all 9 images"

# --rebuild starts over; an existing index with another model is refused.
expect_status 0 "$IMGSEARCH" index photos -i my.index --rebuild "${MOBILENET_ARGS[@]}"
expect_in "$WORK/out" "^added 9, updated 0, removed 0, unchanged 0$"
expect_status 1 "$IMGSEARCH" index photos -i my.index -m "$RANDOM_MOBILENET"
expect_in "$WORK/err" "built with model"

# Growing well past the first capacity, then indexing a second folder into the same index.
cp "$COREL"/elephants/5[0-3]?.jpg photos/b/
expect_status 0 idx
expect_in "$WORK/out" "^added 40, updated 0, removed 0, unchanged 9$"
mkdir other && cp "$COREL"/food/90?.jpg other/
expect_status 0 "$IMGSEARCH" index other -i my.index
expect_in "$WORK/out" "^added 10, updated 0, removed 0, unchanged 0$"
expect_status 0 "$IMGSEARCH" info -i my.index --json
"$PYTHON" -c "import json; assert json.load(open('$WORK/out'))['count'] == 59"

# --from-features builds the same index from an extract output, without the model.
expect_status 0 "$IMGSEARCH" extract photos -o photos.features "${MOBILENET_ARGS[@]}"
expect_in "$WORK/err" "extracted 49 images \(1280-d"
expect_status 0 "$IMGSEARCH" index --from-features photos.features -i ff.index
expect_in "$WORK/out" "^added 49, updated 0, removed 0, unchanged 0$"
"$IMGSEARCH" query -i ff.index "$COREL/elephants/510.jpg" -k 5 --format tsv --exact | cut -f3,4 > a.tsv
"$IMGSEARCH" query -i my.index "$COREL/elephants/510.jpg" -k 5 --format tsv --exact | cut -f3,4 > b.tsv
cmp a.tsv b.tsv || fail "--from-features index ranks differently"
