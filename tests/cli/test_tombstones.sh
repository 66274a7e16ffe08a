#!/usr/bin/env bash
# Removing files from an index does not rebuild it: `info` counts the removed images left in
# the graph as tombstones, queries never return them (and still give k results), the index
# reloads with them, and past 20 % of the graph the next removal compacts it (tombstones
# back to 0). With database-side augmentation the same holds, and the file names both
# features in META "requires".
source "$(dirname "$0")/lib.sh"
mkdir photos
for f in "$COREL"/horses/70[0-9].jpg "$COREL"/buses/30[0-9].jpg; do cp "$f" "photos/$(basename "$(dirname "$f")")-$(basename "$f")"; done
cp photos/horses-703.jpg query.jpg
idx() { "$IMGSEARCH" index photos -i t.index "${MOBILENET_ARGS[@]}"; }
tombstones() { "$IMGSEARCH" info -i t.index --json | "$PYTHON" -c "import json,sys; j=json.load(sys.stdin); print(j['tombstones'], j['count'])"; }
requires() { "$PYTHON" - t.index <<'PY'
import json, struct, sys
data = open(sys.argv[1], "rb").read()
version, nsec = struct.unpack_from("<II", data, 8)
for i in range(nsec):
    tag, off, size, _ = struct.unpack_from("<8sQQQ", data, 16 + 32 * i)
    if tag.rstrip(b"\0") == b"META":
        print(version, ",".join(json.loads(data[off:off + size]).get("requires", [])) or "-")
PY
}

expect_status 0 idx
expect_in "$WORK/out" "^added 20, updated 0, removed 0, unchanged 0$"
[ "$(tombstones)" = "0 20" ] || fail "fresh index: $(tombstones)"
[ "$(requires)" = "1 -" ] || fail "fresh index: version and requires $(requires)"

# 1 of 20 (5 %): a tombstone, no rebuild.
rm photos/horses-703.jpg
expect_status 0 idx
expect_in "$WORK/out" "^added 0, updated 0, removed 1, unchanged 19$"
[ "$(tombstones)" = "1 19" ] || fail "after removing 1: $(tombstones)"
[ "$(requires)" = "2 tombstones" ] || fail "with a tombstone: version and requires $(requires)"
expect_status 0 "$IMGSEARCH" info -i t.index
expect_in "$WORK/out" "^deleted: +1 removed images still in the graph \(5.0 % of its nodes; compacted past 20 %\)$"
# The removed image's own vector finds the other horses, never itself.
expect_status 0 "$IMGSEARCH" query -i t.index query.jpg -k 19 --format tsv
expect_not_in "$WORK/out" "horses-703.jpg"
[ "$(wc -l < "$WORK/out")" = 19 ] || fail "expected all 19 remaining images"
head -9 "$WORK/out" | grep -c horses- | grep -qx 9 || fail "the 9 other horses should come first"
# An update (a changed file) is a removal plus an add: another tombstone.
cp "$COREL/buses/350.jpg" photos/buses-300.jpg
touch -d '2001-01-01' photos/buses-300.jpg
expect_status 0 idx
expect_in "$WORK/out" "^added 0, updated 1, removed 0, unchanged 18$"
[ "$(tombstones)" = "2 19" ] || fail "after an update: $(tombstones)"
expect_status 0 "$IMGSEARCH" query -i t.index "$COREL/buses/350.jpg" -k 1 --format tsv
expect_in "$WORK/out" "buses-300.jpg"

# 3 more removed: 5 of 21 graph nodes would be tombstones (> 20 %): compacted.
rm photos/horses-70[0-2].jpg
expect_status 0 idx
expect_in "$WORK/out" "^added 0, updated 0, removed 3, unchanged 16$"
[ "$(tombstones)" = "0 16" ] || fail "after passing the threshold: $(tombstones)"
[ "$(requires)" = "1 -" ] || fail "after compaction: version and requires $(requires)"
expect_status 0 "$IMGSEARCH" query -i t.index query.jpg -k 16 --format tsv
expect_not_in "$WORK/out" "horses-70[0-3].jpg"
[ "$(wc -l < "$WORK/out")" = 16 ] || fail "expected all 16 remaining images"

# With augmentation: a removal is a tombstone too, and never comes back in a query.
expect_status 0 "$IMGSEARCH" index -i t.index --dba 3
rm photos/horses-704.jpg
expect_status 0 idx
expect_in "$WORK/out" "^added 0, updated 0, removed 1, unchanged 15$"
[ "$(tombstones)" = "1 15" ] || fail "augmented, after removing 1: $(tombstones)"
[ "$(requires)" = "2 augmentation,tombstones" ] || fail "augmented with a tombstone: $(requires)"
expect_status 0 "$IMGSEARCH" query -i t.index "$COREL/horses/704.jpg" -k 15 --format tsv
expect_not_in "$WORK/out" "horses-704.jpg"
[ "$(wc -l < "$WORK/out")" = 15 ] || fail "expected all 15 remaining images"
echo ok
