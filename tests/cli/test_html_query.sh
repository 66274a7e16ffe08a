#!/usr/bin/env bash
# `imgsearch query --html`: each query image beside its top-k results, each with rank,
# score and path, thumbnails embedded so the page works anywhere.
# fixture: corel
source "$(dirname "$0")/lib.sh"

q1="$COREL/horses/700.jpg"; q2="$COREL/beaches/100.jpg"; q3="$COREL/food/950.jpg"
expect_status 0 "$IMGSEARCH" query "$q1" "$q2" "$q3" -i "$COREL_INDEX" -k 6 --json --html query.html
"$PYTHON" "$SOURCE_DIR/tests/cli/check_html.py" query.html --imgs 21 --figures 0 --text "#6"
# Every result of the --json output is on the page: its path, rank and score.
"$PYTHON" - "$WORK/out" query.html <<'PY'
import html, json, sys
page = html.unescape(open(sys.argv[2], encoding="utf-8").read())
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 3
assert page.count('<section class="query">') == 3
for q in lines:
    assert q["query"] in page, q["query"]
    for r in q["results"]:
        assert r["path"] in page, r["path"]
        assert '#%d</span> <span class="score">%.4f' % (r["rank"], r["score"]) in page, r
PY
# --exact pages too; a query that cannot be read is reported and left off the page.
printf 'not an image' > broken.jpg
expect_status 3 "$IMGSEARCH" query "$q1" broken.jpg -i "$COREL_INDEX" -k 4 --exact --html exact.html
expect_in "$WORK/err" "broken.jpg"
"$PYTHON" "$SOURCE_DIR/tests/cli/check_html.py" exact.html --imgs 5 --text "exact"
echo "ok"
