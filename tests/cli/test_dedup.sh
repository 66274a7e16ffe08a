#!/usr/bin/env bash
# imgsearch dedup on a small edited-copy set generated here from Corel-1k (two classes, so
# look-alike non-duplicates are present): groups found, JSON/TSV/HTML output, --query,
# every action with its manifest and --undo restoring every file byte for byte, a changed
# file refused, --delete without --yes refused, exit statuses.
source "$(dirname "$0")/lib.sh"

SET="$WORK/set"
"$PYTHON" "$SOURCE_DIR/tests/dedup/make_edits.py" --source "$COREL" --out "$SET" --classes buses,dinosaurs \
  --per-class 2 --distractors-per-class 3 --seed 3 \
  --edits resize50,jpeg_q20,grey,mirror,rot90_pixels,to_png,blur,brightness,rot90_exif >/dev/null
# An exact copy (identical bytes) of one original.
first_original=$(awk -F, '$3=="original"{print $2; exit}' "$SET/ground_truth.csv")
cp -p "$first_original" "$SET/originals/exact-copy.jpg"
echo "$(basename "$first_original" .jpg),$SET/originals/exact-copy.jpg,exact" >>"$SET/ground_truth.csv"
count=$(($(wc -l <"$SET/ground_truth.csv") - 1))

# --- groups, given a folder: indexes it first, then reports.
expect_status 0 "$IMGSEARCH" dedup "$SET" -i set.index "${MOBILENET_ARGS[@]}" --format json
cp "$WORK/out" groups.jsonl
expect_in "$WORK/err" "^added $count, "
expect_in "$WORK/err" "groups, [0-9]+ duplicates"
"$PYTHON" - "$SET/ground_truth.csv" groups.jsonl <<'PY'
import csv, json, sys, itertools
truth = {r["path"]: r["group"] for r in csv.DictReader(open(sys.argv[1]))}
groups = [json.loads(line) for line in open(sys.argv[2])]
assert groups, "no groups"
found = set()
for n, g in enumerate(groups, 1):
    assert g["group"] == n, g
    members = g["members"]
    assert len(members) >= 2 and members[0]["keep"] is True, g
    assert sum(m["keep"] for m in members) == 1, g
    for m in members:
        assert set(m) == {"path", "keep", "score", "signal"}, m
        assert 0 < m["score"] <= 1, m
    # No group mixes two originals' copies (precision 1 on this set).
    labels = {truth[m["path"]] for m in members}
    assert len(labels) == 1, "mixed group %s" % g
    for a, b in itertools.combinations([m["path"] for m in members], 2):
        found.add(frozenset((a, b)))
by_group = {}
for p, grp in truth.items():
    by_group.setdefault(grp, []).append(p)
true_pairs = {frozenset(c) for ps in by_group.values() for c in itertools.combinations(ps, 2)}
recall = len(found & true_pairs) / len(true_pairs)
print("pairs found %d of %d (recall %.3f)" % (len(found & true_pairs), len(true_pairs), recall))
assert recall >= 0.9, recall
signals = {m["signal"] for g in groups for m in g["members"]}
assert "keeper" in signals, signals
assert any(s.startswith("phash-") for s in signals), signals  # mirrored/rotated copies matched as such
PY

# Up to date: the second run indexes nothing and gives the same groups, as TSV, table, HTML.
expect_status 0 "$IMGSEARCH" dedup "$SET" -i set.index "${MOBILENET_ARGS[@]}" --format tsv --html groups.html
expect_in "$WORK/err" "^added 0, updated 0, removed 0, unchanged $count"
head -1 "$WORK/out" | grep -qx $'group\tpath\tkeep\tscore\tsignal' || fail "TSV header"
[ "$(tail -n +2 "$WORK/out" | wc -l)" = "$(python3 -c "import json;print(sum(len(json.loads(l)['members']) for l in open('groups.jsonl')))")" ] \
  || fail "TSV rows differ from the JSON members"
expect_in groups.html "data:image/jpeg;base64,"
expect_in groups.html "class=\"card keep\""
expect_status 0 "$IMGSEARCH" dedup -i set.index --preset exact --format table
expect_in "$WORK/out" "^group 1 \(2 images\)"
expect_in "$WORK/out" "exact-copy.jpg|$(basename "$first_original")"
[ "$(grep -c '^group' "$WORK/out")" = 1 ] || fail "exact preset: one group (the byte copy) expected"
expect_in "$WORK/out" "^  duplicate +1\.0000  content +.*(exact-copy.jpg|$(basename "$first_original"))$"

# --- eval --duplicates against the generated ground truth: the same groups as dedup gives
# (precision and recall of the default preset equal those measured above from its JSON),
# per-edit recall, each signal alone, a threshold sweep, an HTML page with the curve.
expect_status 0 "$IMGSEARCH" eval -i set.index --duplicates "$SET/ground_truth.csv" --json --html dupeval.html
cp "$WORK/out" dupeval.json
expect_in dupeval.html "<svg"
"$PYTHON" - dupeval.json groups.jsonl "$SET/ground_truth.csv" <<'PY'
import csv, itertools, json, sys
ev = json.load(open(sys.argv[1]))
groups = [json.loads(line) for line in open(sys.argv[2])]
truth = {r["path"]: r for r in csv.DictReader(open(sys.argv[3]))}
methods = {m["name"]: m for m in ev["methods"]}
assert {"preset exact", "preset near", "preset similar"} <= set(methods), sorted(methods)
near = methods["preset near"]
found = {frozenset(c) for g in groups for c in itertools.combinations([m["path"] for m in g["members"]], 2)}
true_pairs = {frozenset((a, b)) for a, b in itertools.combinations(truth, 2) if truth[a]["group"] == truth[b]["group"]}
assert near["predicted"] == len(found), (near["predicted"], len(found))
assert near["correct"] == len(found & true_pairs), (near["correct"], len(found & true_pairs))
assert abs(near["precision"] - len(found & true_pairs) / len(found)) < 1e-9, near["precision"]
assert abs(near["recall"] - len(found & true_pairs) / len(true_pairs)) < 1e-9, near["recall"]
# The exact preset finds only the byte copy: one correct pair.
assert methods["preset exact"]["predicted"] == 1 and methods["preset exact"]["correct"] == 1, methods["preset exact"]
# Edits a luminance hash must catch, each pair counted once per edited copy.
per_edit = near["per_edit"]
for edit in ("jpeg_q20", "grey", "to_png", "resize50", "mirror"):
    n = sum(1 for r in truth.values() if r["edit"] == edit)
    assert per_edit[edit]["pairs"] == n and per_edit[edit]["recall"] == 1.0, (edit, per_edit[edit])
assert any(s["signal"] == "phash" for s in ev["sweep"]), ev["sweep"][:3]
assert all(0 <= s["precision"] <= 1 and 0 <= s["recall"] <= 1 for s in ev["sweep"])
PY
expect_status 1 "$IMGSEARCH" eval -i set.index --duplicates "$WORK/no-such-truth.csv"
expect_in "$WORK/err" "no-such-truth.csv: cannot open"

# --- an index without duplicate signals (built from a features file, as older imgsearch
# indexes are): dedup warns and uses embeddings only; the next `index` run fills them in.
expect_status 0 "$IMGSEARCH" extract "$SET" -o set.feat "${MOBILENET_ARGS[@]}"
expect_status 0 "$IMGSEARCH" index --from-features set.feat -i old.index
expect_status 0 "$IMGSEARCH" dedup -i old.index --format json
expect_in "$WORK/err" "$count of $count images have no duplicate signals"
expect_status 0 "$IMGSEARCH" index "$SET" -i old.index "${MOBILENET_ARGS[@]}"
expect_in "$WORK/out" "^added 0, updated 0, removed 0, unchanged $count, duplicate signals added to $count, colour histograms added to $count$"
expect_status 0 "$IMGSEARCH" dedup -i old.index --format json
expect_not_in "$WORK/err" "no duplicate signals"
cmp -s "$WORK/out" groups.jsonl || fail "groups from the filled-in index differ from a fresh index's"

# --- --query: a new resized copy of an original is found; an unrelated photo is not.
"$PYTHON" -c "
from PIL import Image; import sys
im = Image.open(sys.argv[1]); im.resize((im.width * 6 // 10, im.height * 6 // 10)).save('query-copy.jpg', quality=70)
" "$first_original"
other=$COREL/elephants/512.jpg
expect_status 0 "$IMGSEARCH" dedup -i set.index --query query-copy.jpg "$other"
[ "$(wc -l <"$WORK/out")" = 2 ] || fail "one line per query"
group=$(basename "$first_original" .jpg)
expect_in "$WORK/out" "^query-copy.jpg	[^	]*$group[^	]*	[0-9.]+	(phash|cnn)"
expect_in "$WORK/out" "^$other	-	"
expect_status 3 "$IMGSEARCH" dedup -i set.index --query query-copy.jpg missing.jpg --format json
expect_in "$WORK/err" "missing.jpg"
"$PYTHON" -c "import json,sys; [json.loads(l) for l in open(sys.argv[1])]" "$WORK/out"

# --- actions, on a copy of the set with its own index.
cp -a "$SET" "$WORK/act"
expect_status 0 "$IMGSEARCH" index "$WORK/act" -i act.index "${MOBILENET_ARGS[@]}"
snapshot() { (cd "$WORK/act" && find . -type f -printf '%p %s %T@ %l\n' | sort && find . -type f -exec sha256sum {} + | sort); }
snapshot >before.txt
links() { find "$WORK/act" -type l | wc -l; }

# --delete without --yes: refused, nothing touched, no manifest.
expect_status 2 "$IMGSEARCH" dedup -i act.index --delete --manifest del.json
expect_in "$WORK/err" "--yes"
[ ! -e del.json ] || fail "a refused --delete wrote a manifest"
snapshot | cmp -s - before.txt || fail "a refused --delete changed files"
expect_status 2 "$IMGSEARCH" dedup -i act.index --hardlink --symlink
expect_status 2 "$IMGSEARCH" dedup -i act.index --preset fuzzy
expect_status 2 "$IMGSEARCH" dedup -i act.index --threshold phash=40
expect_status 1 "$IMGSEARCH" dedup -i missing.index
expect_status 1 "$IMGSEARCH" dedup --undo missing-manifest.json

# --move-to: keeps the layout; the manifest lists every move; --undo puts all back.
expect_status 0 "$IMGSEARCH" dedup -i act.index --move-to "$WORK/moved" --manifest move.json
expect_in "$WORK/err" "manifest: move.json"
moved=$(find "$WORK/moved" -type f | wc -l)
[ "$moved" -ge 10 ] || fail "only $moved files moved"
"$PYTHON" - move.json "$WORK/moved" <<'PY'
import json, os, sys
m = json.load(open(sys.argv[1]))
assert m["action"] == "move" and m["imgsearch_dedup_manifest"] == 1
for e in m["entries"]:
    assert not os.path.exists(e["path"]), e
    assert os.path.exists(e["target"]) and e["target"].startswith(sys.argv[2] + "/"), e
    # the layout below the common folder is kept: .../originals/x or .../edits/x
    assert e["target"].endswith(os.sep.join(e["path"].split(os.sep)[-2:])), e
    assert os.path.exists(e["keeper"]), e
PY
expect_status 0 "$IMGSEARCH" dedup --undo move.json
expect_in "$WORK/err" "restored"
snapshot | cmp -s - before.txt || fail "--undo of --move-to did not restore every file byte for byte"
[ "$(find "$WORK/moved" -type f | wc -l)" = 0 ] || fail "files left in the move folder"
expect_status 0 "$IMGSEARCH" dedup --undo move.json  # twice: everything already in place
expect_in "$WORK/err" "already in place"

# --hardlink and --symlink: only the byte-identical copy is linked; undo restores it.
expect_status 0 "$IMGSEARCH" dedup -i act.index --hardlink --manifest hard.json
expect_in "$WORK/err" "hardlink: 1 of 1 files done, 0 left alone, [0-9]+ not byte-identical"
[ "$(find "$WORK/act" -type f -links 2 | wc -l)" = 2 ] || fail "hardlink: expected one linked pair"
expect_status 0 "$IMGSEARCH" dedup --undo hard.json
snapshot | cmp -s - before.txt || fail "--undo of --hardlink did not restore byte for byte"
[ "$(find "$WORK/act" -type f -links 2 | wc -l)" = 0 ] || fail "hardlink still there after undo"
expect_status 0 "$IMGSEARCH" dedup -i act.index --symlink --manifest sym.json
[ "$(links)" = 1 ] || fail "symlink: expected one link"
expect_status 0 "$IMGSEARCH" dedup --undo sym.json
[ "$(links)" = 0 ] || fail "symlink still there after undo"
snapshot | cmp -s - before.txt || fail "--undo of --symlink did not restore byte for byte"

# --delete --yes on the exact preset: the byte copy goes; undo brings it back from its keeper.
expect_status 0 "$IMGSEARCH" dedup -i act.index --preset exact --delete --yes --manifest del.json
[ "$(find "$WORK/act" -type f | wc -l)" = "$count" ] || fail "delete: one file should be gone"
expect_status 0 "$IMGSEARCH" dedup --undo del.json
snapshot | cmp -s - before.txt || fail "--undo of --delete did not restore the exact copy byte for byte"

# A file changed since indexing is never touched: the others are moved, it stays, exit 3.
victim=$(awk -F, '$3=="jpeg_q20"{print $2; exit}' "$WORK/act/ground_truth.csv")
victim=${victim/$SET/$WORK/act}
printf 'x' >>"$victim"
expect_status 3 "$IMGSEARCH" dedup -i act.index --move-to "$WORK/moved2" --manifest move2.json
expect_in "$WORK/err" "$(basename "$victim"): changed since it was indexed"
[ -f "$victim" ] || fail "a changed file was moved"
expect_status 0 "$IMGSEARCH" dedup --undo move2.json
expect_in "$WORK/err" ", 1 already in place, 0 not restored"
[ "$(find "$WORK/moved2" -type f | wc -l)" = 0 ] || fail "undo left files in moved2"
[ "$(tail -c 1 "$victim")" = x ] || fail "undo touched the changed file"
