# Shared helpers for the CLI tests. Each test runs in its own scratch directory.
set -euo pipefail
# A command that fails without a message of its own (set -e) still says where.
# (Only while set -e is on: expect_status turns it off to collect a status on purpose.)
trap 'rc=$?; [[ $- == *e* ]] && echo "FAIL: ${BASH_SOURCE[0]##*/}:$LINENO: exit status $rc from: $BASH_COMMAND" >&2' ERR
: "${IMGSEARCH:?}" "${SHARED:?}" "${SOURCE_DIR:?}" "${TEST_DATA:?}" "${PYTHON:?}"
COREL="$SHARED/datasets/corel1k/images"
MOBILENET="$SHARED/models/mobilenet_v2/mobilenet_v2_imagenet_embed.pt"
MOBILENET_ARGS=(-m "$MOBILENET" --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5)
COREL_INDEX="$TEST_DATA/corel.index"
RANDOM_MOBILENET="$TEST_DATA/models/mobilenet_v2-random.pt"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/imgsearch-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
unset IMGSEARCH_MODEL IMGSEARCH_INDEX

fail() { echo "FAIL: $*" >&2; exit 1; }
# at_dataset_scale WHAT: true, except under the sanitizers (scripts/sanitize.sh sets
# IMGSEARCH_TEST_SANITIZED=1), where it says so and is false. It guards the checks of ranking
# quality on whole datasets: hundreds of images through the (uninstrumented) model, on
# code paths the smaller cases of the same test already run instrumented. The Release run
# makes them.
at_dataset_scale() {
  [ "${IMGSEARCH_TEST_SANITIZED:-0}" = 1 ] || return 0
  echo "under the sanitizers, left to the Release run: $1"
  return 1
}
# expect_status N cmd...: runs cmd, fails unless it exits with N; output in $WORK/out, $WORK/err.
expect_status() {
  local want=$1; shift
  set +e
  "$@" >"$WORK/out" 2>"$WORK/err"
  local got=$?
  set -e
  if [ "$got" != "$want" ]; then
    echo "--- stdout"; cat "$WORK/out"; echo "--- stderr"; cat "$WORK/err"
    fail "expected exit status $want, got $got: $*"
  fi
}
expect_in() {  # expect_in FILE PATTERN (extended regex)
  grep -Eq -- "$2" "$1" || { echo "--- $1:"; cat "$1"; fail "'$2' not found in $1"; }
}
expect_not_in() {
  ! grep -Eq -- "$2" "$1" || { echo "--- $1:"; cat "$1"; fail "'$2' unexpectedly found in $1"; }
}
# start_serve ARGS...: `imgsearch serve --port 0 ARGS` in the background, waits for its URL.
# Sets SERVE_PID and SERVE_URL ("http://127.0.0.1:PORT/"); stderr goes to $WORK/serve.err.
start_serve() {
  # The parent must not read the previous server's URL before the child's redirection
  # truncates the file (it did once under ASan: connection refused on a stale port).
  rm -f "$WORK/serve.out" "$WORK/serve.err"
  "$IMGSEARCH" serve --port 0 "$@" >"$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVE_PID=$!
  SERVE_URL=""
  local i
  for i in $(seq 1 1200); do  # the model loads in ~1 s, far longer under ASan
    SERVE_URL=$(head -1 "$WORK/serve.out" 2>/dev/null || true)
    [ -n "$SERVE_URL" ] && return 0
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$WORK/serve.err"; fail "serve exited before printing its URL"; }
    sleep 0.1
  done
  fail "serve printed no URL within 120 s"
}
# stop_serve: SIGTERM, then the exit status must be 0.
stop_serve() {
  kill -TERM "$SERVE_PID"
  local rc=0
  wait "$SERVE_PID" || rc=$?
  [ "$rc" = 0 ] || { cat "$WORK/serve.err"; fail "serve exited with $rc after SIGTERM"; }
  SERVE_PID=""
}
kill_serve_on_exit() {
  trap '[ -n "${SERVE_PID:-}" ] && kill -KILL "$SERVE_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
}
# edit_meta IN OUT OLD NEW: a copy of index IN whose META section has the text OLD replaced
# by NEW (the same length, so no section moves), with the section's and the header's
# checksums made right: a loader then reads the edited value itself, not a checksum error.
edit_meta() {
  "$PYTHON" - "$@" <<'PY'
import ctypes, struct, sys
xxh = ctypes.CDLL("libxxhash.so.0")
xxh.XXH3_64bits.restype = ctypes.c_uint64
xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
h = lambda b: xxh.XXH3_64bits(bytes(b), len(b))
old, new = sys.argv[3].encode(), sys.argv[4].encode()
assert len(old) == len(new), "same length only"
data = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack_from("<I", data, 12)[0]
for i in range(n):
    e = 16 + 32 * i
    tag, off, size, _ = struct.unpack_from("<8sQQQ", data, e)
    if tag.rstrip(b"\0") == b"META":
        meta = bytes(data[off:off + size])
        assert old in meta, f"{sys.argv[3]} not in META"
        meta = meta.replace(old, new)
        data[off:off + size] = meta
        struct.pack_into("<Q", data, e + 24, h(meta))
hb = 16 + 32 * n + 8
struct.pack_into("<Q", data, hb - 8, h(data[:hb - 8]))
open(sys.argv[2], "wb").write(data)
PY
}
