# Two writers on one index: the second fails at once with "index is locked by another
# imgsearch" (or, with --wait-lock, waits its turn); the index is never corrupt.
source "$(dirname "$0")/lib.sh"
ARGS=(-m "$RANDOM_MOBILENET" --threads 1)
mkdir photos
for f in "$COREL"/beaches/1[0-5]?.jpg; do ln -s "$f" photos/; done   # 60 images

# Deterministic: another process holds the advisory lock (util-linux flock, same flock(2)).
touch shared.index.lock
flock shared.index.lock sleep 30 &
holder=$!
for _ in $(seq 100); do flock -n shared.index.lock true 2>/dev/null || break; sleep 0.1; done
start=$(date +%s)
expect_status 1 "$IMGSEARCH" index photos -i shared.index "${ARGS[@]}"
expect_in "$WORK/err" "^imgsearch: shared.index: index is locked by another imgsearch"
[ $(($(date +%s) - start)) -lt 20 ] || fail "the second writer did not fail at once"
[ ! -e shared.index ] || fail "a locked-out writer wrote the index"
# With --wait-lock it gives up after the given time, naming it.
expect_status 1 "$IMGSEARCH" index photos -i shared.index --wait-lock 0.5 "${ARGS[@]}"
expect_in "$WORK/err" "index is locked by another imgsearch.*gave up after 0.5 s"
# ... and succeeds once the holder is gone.
( sleep 1; kill $holder ) &
expect_status 0 "$IMGSEARCH" index photos -i shared.index --wait-lock 60 "${ARGS[@]}"
expect_in "$WORK/out" "^added 60, "
wait $holder 2>/dev/null || true

# Two real imgsearch writers at once, started together, several times: each one either
# succeeds or is refused with the lock message; the index always loads afterwards.
for round in 1 2 3; do
  "$IMGSEARCH" index photos -i race.index --rebuild "${ARGS[@]}" >"$WORK/a.out" 2>"$WORK/a.err" &
  a=$!
  "$IMGSEARCH" index photos -i race.index --rebuild "${ARGS[@]}" >"$WORK/b.out" 2>"$WORK/b.err" &
  b=$!
  set +e
  wait $a; ra=$?
  wait $b; rb=$?
  set -e
  echo "round $round: statuses $ra $rb"
  for w in a b; do
    r=$([ $w = a ] && echo $ra || echo $rb)
    if [ "$r" != 0 ]; then
      [ "$r" = 1 ] || fail "writer $w exited $r"
      expect_in "$WORK/$w.err" "index is locked by another imgsearch"
    fi
  done
  [ "$ra" = 0 ] || [ "$rb" = 0 ] || fail "neither writer succeeded"
  expect_status 0 "$IMGSEARCH" info -i race.index --json
  "$PYTHON" -c "import json; assert json.load(open('$WORK/out'))['count'] == 60"
done

# A writer waiting with --wait-lock runs after the first one and finds everything indexed.
# The first writer waits too: the probe below holds the lock for an instant, and a writer
# without --wait-lock that tried at that instant would (rightly) be refused.
"$IMGSEARCH" index photos -i wait.index --wait-lock 60 "${ARGS[@]}" >"$WORK/a.out" 2>"$WORK/a.err" &
a=$!
for _ in $(seq 100); do flock -n wait.index.lock true 2>/dev/null || break; sleep 0.05; done
expect_status 0 "$IMGSEARCH" index photos -i wait.index --wait-lock 600 "${ARGS[@]}"
wait $a || fail "first writer failed: $(cat "$WORK/a.err")"
expect_in "$WORK/a.out" "^added 60, "
expect_in "$WORK/out" "^added 0, updated 0, removed 0, unchanged 60$"

# Readers take no lock: query works while a writer holds it.
flock race.index.lock sleep 10 &
holder=$!
sleep 0.3
expect_status 0 "$IMGSEARCH" query -i race.index photos/"$(ls photos | sed -n 1p)" -k 2 --format tsv
kill $holder; wait $holder 2>/dev/null || true
