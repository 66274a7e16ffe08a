# The README's first command on a copy of the repository (its tracked and new files, not
# its build) with no ../shared beside it and, where the kernel lets us, no network at all:
# scripts/quickstart.sh installs nothing new here (the packages are there), builds, indexes
# examples/images with the built-in model and prints the five flowers most like the dahlia.
# timeout: 1800
source "$(dirname "$0")/lib.sh"
export HOME="$WORK/home"
mkdir -p copy/repo
git -C "$SOURCE_DIR" ls-files -z --cached --others --exclude-standard |
  (cd "$SOURCE_DIR" && xargs -0 tar cf - --ignore-failed-read 2>/dev/null) | tar xf - -C copy/repo
[ -f copy/repo/scripts/quickstart.sh ] || fail "repository copy incomplete"
[ ! -e copy/shared ] || fail "a ../shared beside the copy"
[ ! -e copy/repo/build ] || fail "the copy has a build"
# The suite's own build filled a compiler cache (scripts/build.sh, with ccache installed):
# the copy's build takes its objects from it, read-only, instead of compiling for minutes.
if [ -d "$BUILD_DIR/.ccache" ]; then export CCACHE_DIR="$BUILD_DIR/.ccache" CCACHE_READONLY=1; fi
offline=()
if unshare -n true 2>/dev/null; then offline=(unshare -n); else echo "note: unshare -n not permitted; running with the network"; fi
set +e
"${offline[@]}" bash copy/repo/scripts/quickstart.sh > out.txt 2> err.txt
rc=$?
set -e
[ $rc = 0 ] || { tail -30 err.txt; cat out.txt; fail "quickstart exited $rc"; }
cat out.txt
expect_in out.txt "^query: examples/images/flowers/dahlia\.jpg$"
results=$(grep -E '^ +[0-9]+ +[0-9.]+ +/' out.txt)
[ "$(wc -l <<<"$results")" = 5 ] || fail "expected 5 results"
[ "$(grep -c '/examples/images/flowers/' <<<"$results")" = 5 ] || fail "not five flowers"
head -1 <<<"$results" | grep -q "flowers/dahlia\.jpg$" || fail "the dahlia is not its own best match"
expect_in err.txt "indexing examples/images"
expect_not_in err.txt "export.py|network|download"
