# Killed writers: `imgsearch index` on 300 Corel images (symlinks, no copies) is killed
# with SIGKILL at random moments; after each kill the index on disk loads and is either
# the old complete one (100 images) or the new complete one (300); a rerun finishes.
# Then SIGINT: a clean stop with status 130 that keeps what was extracted, and the next
# run extracts only the rest.
source "$(dirname "$0")/lib.sh"
ARGS=(-m "$RANDOM_MOBILENET" --threads 2)
count_of() {  # count_of INDEX: the entry count `imgsearch info` reports, or fails
  "$IMGSEARCH" info -i "$1" --json >"$WORK/info.json" 2>"$WORK/info.err" || { cat "$WORK/info.err"; fail "$1 does not load"; }
  "$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['count'])" "$WORK/info.json"
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

# 300 Corel images as symlinks; the old complete index holds the first 100.
mkdir photos
ls "$COREL"/*/*.jpg >every.txt
sed -n 1,300p every.txt >all.txt
[ "$(wc -l <all.txt)" = 300 ] || fail "expected 300 Corel images"
link_images() {  # link_images FIRST LAST (1-based lines of all.txt)
  sed -n "$1,$2p" all.txt | while read -r f; do
    ln -s "$f" "photos/$(basename "$(dirname "$f")")-$(basename "$f")"
  done
}
link_images 1 100
expect_status 0 "$IMGSEARCH" index photos -i kill.index "${ARGS[@]}"
expect_in "$WORK/out" "^added 100, updated 0, removed 0, unchanged 0$"
cp kill.index old.index
link_images 101 300

# How long the update to 300 takes here, to spread the kills over it.
cp old.index timing.index
start=$(now_ms)
expect_status 0 "$IMGSEARCH" index photos -i timing.index "${ARGS[@]}"
full_ms=$(($(now_ms) - start))
echo "a full update takes ${full_ms} ms"

saw_old=0 saw_new=0
for attempt in 1 2 3 4 5 6; do
  # Kill times spread over 10%..110% of a full run; every other one near the end, where
  # the index is being saved.
  if [ $((attempt % 2)) = 0 ]; then pct=$((85 + RANDOM % 25)); else pct=$((10 + RANDOM % 90)); fi
  delay_ms=$(( full_ms * pct / 100 ))
  "$IMGSEARCH" index photos -i kill.index "${ARGS[@]}" >/dev/null 2>&1 &
  pid=$!
  sleep_ms "$delay_ms"
  kill -KILL $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  c=$(count_of kill.index)
  echo "attempt $attempt: killed after ${delay_ms} ms, index holds $c"
  case $c in
    100) saw_old=$((saw_old + 1)) ;;
    300) saw_new=$((saw_new + 1)); cp old.index kill.index ;;  # start the next try from the old one
    *) fail "after SIGKILL the index holds $c entries: neither the old (100) nor the new (300)" ;;
  esac
  # A query on whatever is there works.
  expect_status 0 "$IMGSEARCH" query -i kill.index photos/"$(ls photos | sed -n 1p)" -k 3 --format tsv
done
echo "old complete: $saw_old, new complete: $saw_new"
# Leftover temporaries of killed writers are removed by the next writer.
expect_status 0 "$IMGSEARCH" index photos -i kill.index "${ARGS[@]}"
expect_in "$WORK/out" "^added 200, updated 0, removed 0, unchanged 100$"
[ "$(count_of kill.index)" = 300 ] || fail "the rerun did not finish"
ls kill.index.tmp-* >/dev/null 2>&1 && fail "stale temporary files left: $(ls kill.index.tmp-*)"

# SIGINT: stops cleanly (130), keeps the work done, and the next run extracts only the rest.
# The moment is a fraction of how long indexing all 300 from scratch takes here (start-up
# included), so the test catches the run mid-extraction on a fast machine and a slow one.
rm -f int.index
start=$(now_ms)
expect_status 0 "$IMGSEARCH" index photos -i int.index "${ARGS[@]}"
scratch_ms=$(($(now_ms) - start))
echo "indexing 300 from scratch takes ${scratch_ms} ms"
got_partial=0
for pct in 50 35 65 25 80 45; do
  rm -f int.index
  delay_ms=$(( scratch_ms * pct / 100 ))
  "$IMGSEARCH" index photos -i int.index "${ARGS[@]}" >"$WORK/int.out" 2>"$WORK/int.err" &
  pid=$!
  sleep_ms "$delay_ms"
  kill -INT $pid 2>/dev/null || true
  set +e
  wait $pid
  rc=$?
  set -e
  echo "SIGINT after ${delay_ms} ms: status $rc: $(cat "$WORK/int.out")"
  [ $rc = 0 ] || expect_in "$WORK/int.err" "interrupted"  # never a crash or a plain failure
  done_n=$(sed -nE 's/^added ([0-9]+), .*/\1/p' "$WORK/int.out")
  if [ $rc = 130 ] && [ -n "$done_n" ]; then
    [ -n "$done_n" ] && [ "$done_n" -gt 0 ] && [ "$done_n" -lt 300 ] || { cat "$WORK/int.err"; fail "interrupted run printed no partial count"; }
    [ "$(count_of int.index)" = "$done_n" ] || fail "the interrupted run did not keep its $done_n images"
    expect_status 0 "$IMGSEARCH" index photos -i int.index "${ARGS[@]}"
    expect_in "$WORK/out" "^added $((300 - done_n)), updated 0, removed 0, unchanged $done_n$"
    got_partial=1
    break
  fi
  # Too early (nothing extracted yet: status 130, no index written) or too late (all done
  # before the signal: status 0): try another moment.
  [ $rc = 130 ] || [ $rc = 0 ] || { cat "$WORK/int.err"; fail "SIGINT gave status $rc"; }
done
[ $got_partial = 1 ] || fail "never caught the run mid-extraction"
