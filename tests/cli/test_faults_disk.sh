# Out of disk space while writing the index: a clear error, exit 1, the previous index
# intact and no temporary file left. `ulimit -f` makes write() fail with EFBIG
# (imgsearch ignores SIGXFSZ); a small tmpfs gives a real ENOSPC where mounting works.
source "$(dirname "$0")/lib.sh"
ARGS=(-m "$RANDOM_MOBILENET" --threads 2)
mkdir photos
for f in "$COREL"/buses/3[0-1]?.jpg; do ln -s "$f" photos/; done   # 20 images
expect_status 0 "$IMGSEARCH" index photos -i my.index "${ARGS[@]}"
cp my.index before.index
size_kb=$(( $(stat -c %s my.index) / 1024 ))
for f in "$COREL"/buses/3[2-9]?.jpg; do ln -s "$f" photos/; done   # 80 more: the index grows 5x

# File size limit a little above the current index: the new one cannot be written.
set +e
( ulimit -f $((size_kb + 50)); exec "$IMGSEARCH" index photos -i my.index "${ARGS[@]}" ) >"$WORK/out" 2>"$WORK/err"
rc=$?
set -e
cat "$WORK/err"
[ $rc = 1 ] || fail "expected exit status 1 when the disk is full, got $rc"
expect_in "$WORK/err" "^imgsearch: my.index: write failed: File too large \(the previous file, if any, is unchanged\)$"
cmp my.index before.index || fail "the previous index changed"
ls my.index.tmp-* >/dev/null 2>&1 && fail "temporary file left behind"
expect_status 0 "$IMGSEARCH" info -i my.index --json
"$PYTHON" -c "import json; assert json.load(open('$WORK/out'))['count'] == 20"
# With room again, the same command finishes.
expect_status 0 "$IMGSEARCH" index photos -i my.index "${ARGS[@]}"
expect_in "$WORK/out" "^added 80, updated 0, removed 0, unchanged 20$"

# A real ENOSPC on a 1 MB tmpfs, where this environment lets us mount one.
mkdir small
if mount -t tmpfs -o size=1m tmpfs small 2>/dev/null; then
  trap 'umount "$WORK/small" 2>/dev/null || true; rm -rf "$WORK"' EXIT
  rm -f photos/*
  for f in "$COREL"/buses/30?.jpg; do ln -s "$f" photos/; done   # 10 images: ~60 KB
  expect_status 0 "$IMGSEARCH" index photos -i small/my.index "${ARGS[@]}"
  cp small/my.index before-small.index
  for f in "$COREL"/buses/3[1-9]?.jpg "$COREL"/dinosaurs/4??.jpg; do ln -s "$f" photos/; done   # 190 more: ~1 MB
  expect_status 1 "$IMGSEARCH" index photos -i small/my.index "${ARGS[@]}"
  expect_in "$WORK/err" "^imgsearch: small/my.index: (write|fsync|close) failed: No space left on device"
  cmp small/my.index before-small.index || fail "the previous index changed"
  ls small/my.index.tmp-* >/dev/null 2>&1 && fail "temporary file left behind"
  umount small
else
  echo "tmpfs mount not permitted here; ENOSPC case skipped (ulimit -f case ran)"
fi
