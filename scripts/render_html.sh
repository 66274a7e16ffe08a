#!/usr/bin/env bash
# Renders an imgsearch HTML page (query --html, eval --html) in headless Chromium and saves
# a PNG screenshot, to check that a page displays without a network or a display.
#   scripts/render_html.sh PAGE.html OUT.png [WIDTH,HEIGHT]   (default 1200,900)
# Needs Debian's `chromium` (scripts/install-deps.sh installs it). Fails, naming the reason,
# when Chromium is missing, exits with an error, reports a load error, or writes no PNG.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 PAGE.html OUT.png [WIDTH,HEIGHT]" >&2
  exit 2
fi
page=$(realpath "$1")
out=$(realpath -m "$2")
size=${3:-1200,900}
[ -f "$page" ] || { echo "render_html: $1: no such file" >&2; exit 1; }
browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null; then browser=$b; break; fi
done
[ -n "$browser" ] || { echo "render_html: Chromium is not installed (apt-get install chromium, or scripts/install-deps.sh)" >&2; exit 1; }
profile=$(mktemp -d "${TMPDIR:-/tmp}/render_html.XXXXXX")
log="$profile.log"
trap 'rm -rf "$profile" "$log"' EXIT
rm -f "$out"
# No network, no GPU, no first-run or background services; a throwaway profile.
set +e
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --disable-extensions \
  --user-data-dir="$profile" --window-size="$size" --hide-scrollbars --log-net-log="$profile/net.json" \
  --screenshot="$out" "file://$page" >"$log" 2>&1
rc=$?
set -e
if [ $rc -ne 0 ] || [ ! -s "$out" ]; then
  cat "$log" >&2
  echo "render_html: $browser failed (exit $rc) or wrote no screenshot for $page" >&2
  exit 1
fi
# A self-contained page makes no network request: every URL in the network log must be
# Chromium's own housekeeping (Google update, time and account services), never the page's.
requests=$(grep -o '"url":"[^"]*"' "$profile/net.json" 2>/dev/null | sed 's/^"url":"//; s/"$//' | sort -u |
  grep -Ev '^https?://([a-z0-9-]+\.)*(google\.com|googleapis\.com|gstatic\.com|gvt1\.com)(/|:|$)' || true)
if [ -n "$requests" ]; then
  echo "$requests" >&2
  echo "render_html: $page made network requests (above); a page must embed everything it shows" >&2
  exit 1
fi
echo "$out"
