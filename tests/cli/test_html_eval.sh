#!/usr/bin/env bash
# `imgsearch eval --html`: one self-contained page with the figures, the per-label table,
# the score histogram and the precision-recall curve as inline SVG, and the worst queries
# with their top 10 results as embedded thumbnails.
# fixture: corel
source "$(dirname "$0")/lib.sh"

expect_status 0 "$IMGSEARCH" eval -i "$COREL_INDEX" --queries 200 --seed 3 --html eval.html --json
[ -s eval.html ] || fail "no eval.html"
# 12 worst queries, each with itself and 10 results; 2 figures; 10 labels + a header row;
# 4 P@k + mAP + R-precision + ANN recall + latency + a header row.
"$PYTHON" "$SOURCE_DIR/tests/cli/check_html.py" eval.html --imgs 132 --figures 2 --rows per-label=11 \
  --rows figures=9 --text "P@10" --text "mAP" --text "Worst queries (12)" --text "200 queries" \
  --text "relevant = same label" --text "africans"
grep -q 'id="histogram"' eval.html || fail "no histogram"
grep -q 'id="pr-curve"' eval.html || fail "no precision-recall curve"
# The figures on the page are the ones --json printed.
p10=$("$PYTHON" -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["P@10"])' "$WORK/out")
grep -q "<td class=\"l\">P@10</td><td>$p10</td>" eval.html || fail "P@10 $p10 not on the page"

# The page needs nothing beside it: moved elsewhere, it is the same page.
mkdir elsewhere && mv eval.html elsewhere/
"$PYTHON" "$SOURCE_DIR/tests/cli/check_html.py" elsewhere/eval.html --imgs 132

# An unwritable destination is a clear error, not a crash.
expect_status 1 "$IMGSEARCH" eval -i "$COREL_INDEX" --queries 10 --html "$WORK/no/such/dir/eval.html"
expect_in "$WORK/err" "no/such/dir/eval.html: cannot create"
echo "ok"
