#!/usr/bin/env bash
# The query and eval pages render in headless Chromium (scripts/render_html.sh) without a
# network request, and the screenshot shows the thumbnails (many colours, not a blank
# page). Needs Debian's chromium, which scripts/install-deps.sh installs.
# fixture: corel
source "$(dirname "$0")/lib.sh"

command -v chromium >/dev/null || fail "chromium is not installed: run scripts/install-deps.sh (apt-get install chromium)"
expect_status 0 "$IMGSEARCH" query "$COREL/horses/700.jpg" "$COREL/buses/300.jpg" -i "$COREL_INDEX" -k 8 --html query.html
expect_status 0 "$IMGSEARCH" eval -i "$COREL_INDEX" --queries 100 --html eval.html
# The eval page's thumbnails (worst queries) sit below the figures: a taller window.
for page in query:900 eval:2600; do
  height=${page#*:}; page=${page%:*}
  "$SOURCE_DIR/scripts/render_html.sh" "$page.html" "$page.png" "1200,$height" >/dev/null 2>"$WORK/render.err" ||
    { cat "$WORK/render.err"; fail "$page.html did not render"; }
  "$PYTHON" - "$page.png" "$height" <<'PY'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
assert im.size == (1200, int(sys.argv[2])), im.size
colours = len(set(im.getdata()))
print(sys.argv[1], im.size, colours, "colours")
assert colours > 2000, "the page looks blank: %d colours" % colours
PY
done
echo "ok"
