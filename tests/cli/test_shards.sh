# Shards: `extract --shard I/N` splits the sorted input list into N disjoint runs that
# together are the whole list; `index --from-features` merges them into an index with the
# same paths and the same query results as indexing directly; features of another model
# are refused with a message naming both.
source "$(dirname "$0")/lib.sh"
mkdir -p photos/a photos/b
cp "$COREL"/buses/30{0,1,2,3,4}.jpg photos/a/
cp "$COREL"/horses/70{0,1,2,3}.jpg photos/b/
cp "$COREL"/flowers/60{0,1,2}.jpg photos/b/

for i in 0 1 2; do
  expect_status 0 "$IMGSEARCH" extract photos --shard "$i/3" -o "shard$i.features" --format imgsearch "${MOBILENET_ARGS[@]}"
  expect_in "$WORK/err" "shard $i/3: 4 of 12 images"
  expect_status 0 "$IMGSEARCH" extract photos --shard "$i/3" -o "shard$i.npy" --format npy "${MOBILENET_ARGS[@]}"
done
# Disjoint, complete, and in sorted order when concatenated.
cat shard0.txt shard1.txt shard2.txt > all.txt
find "$WORK/photos" -name '*.jpg' | LC_ALL=C sort > expected.txt
diff all.txt expected.txt || fail "the shards are not the sorted list split in order"

expect_status 0 "$IMGSEARCH" index --from-features shard0.features shard1.features shard2.features -i merged.index
expect_in "$WORK/out" "^added 12, updated 0, removed 0, unchanged 0$"
expect_status 0 "$IMGSEARCH" index photos -i direct.index "${MOBILENET_ARGS[@]}"

expect_status 0 "$IMGSEARCH" info -i merged.index --json
"$PYTHON" -c "import json; j = json.load(open('$WORK/out')); assert j['count'] == 12, j"
# Same query results (paths, order, scores to 4 decimals) for a few queries.
for q in "$COREL/buses/310.jpg" "$COREL/horses/750.jpg" "$COREL/flowers/650.jpg"; do
  expect_status 0 "$IMGSEARCH" query -i merged.index "$q" -k 12 --format tsv
  cp "$WORK/out" merged.tsv
  expect_status 0 "$IMGSEARCH" query -i direct.index "$q" -k 12 --format tsv
  diff merged.tsv "$WORK/out" || fail "merged and direct index differ for $q"
  [ "$(wc -l < merged.tsv)" = 12 ] || fail "expected 12 hits for $q"
done

# Re-merging a shard into the existing index updates, not duplicates.
expect_status 0 "$IMGSEARCH" index --from-features shard1.features -i merged.index
expect_in "$WORK/out" "^added 0, updated 4, removed 0, unchanged 8$"
# The same shard twice in one run: the later file wins, with a warning.
expect_status 0 "$IMGSEARCH" index --from-features shard0.features shard0.features -i twice.index
expect_in "$WORK/err" "4 images were in more than one features file"
expect_in "$WORK/out" "^added 4, updated 0, removed 0, unchanged 0$"

# A shard from another model is refused, naming both files; nothing is written.
expect_status 0 "$IMGSEARCH" extract photos --shard 1/3 -o other.features -m "$RANDOM_MOBILENET"
expect_status 1 "$IMGSEARCH" index --from-features shard0.features other.features -i mixed.index
expect_in "$WORK/err" "other.features: holds features of model .*mobilenet_v2-random.pt.*but .*shard0.features has model .*features from different models cannot be mixed"
[ ! -e mixed.index ] || fail "a refused merge wrote an index"

# Bad --shard values are usage errors; more shards than images is not an error.
for bad in 3/3 1 a/2 -1/2 1/0; do
  expect_status 2 "$IMGSEARCH" extract photos --shard "$bad" -o x.features "${MOBILENET_ARGS[@]}"
done
mkdir few && cp "$COREL/buses/300.jpg" few/
expect_status 0 "$IMGSEARCH" extract few --shard 0/2 -o few0.features "${MOBILENET_ARGS[@]}"
expect_in "$WORK/err" "shard 0/2 has no images"
expect_status 0 "$IMGSEARCH" extract few --shard 1/2 -o few1.features "${MOBILENET_ARGS[@]}"
[ ! -e few0.features ] && [ -e few1.features ] || fail "expected only the non-empty shard to be written"
echo "ok"
