# cmake --install: the binary, the library, its headers, the built-in model, the CMake
# package, completion and man page under a prefix; a program from examples/cpp builds
# against the installed package with find_package(imgsearch) and finds similar images; the
# installed binary finds its built-in model; bash completion completes from --help.
source "$(dirname "$0")/lib.sh"
: "${BUILD_DIR:?}"
export HOME="$WORK/home"
PREFIX="$WORK/prefix"
cmake --install "$BUILD_DIR" --prefix "$PREFIX" >/dev/null
for f in bin/imgsearch lib/libimgsearch.a lib/libimgsearch_core.a include/imgsearch/searcher.h \
         include/imgsearch/index_io.h lib/cmake/imgsearch/imgsearchConfig.cmake \
         lib/cmake/imgsearch/imgsearchConfigVersion.cmake lib/cmake/imgsearch/imgsearchTargets.cmake \
         share/imgsearch/models/mobilenet_v2_imagenet.pt share/imgsearch/models/LICENSE \
         share/bash-completion/completions/imgsearch share/man/man1/imgsearch.1; do
  [ -s "$PREFIX/$f" ] || fail "not installed: $f"
done

# The installed binary uses the installed built-in model.
[ "$("$PREFIX/bin/imgsearch" --print-default-model)" = "$PREFIX/share/imgsearch/models/mobilenet_v2_imagenet.pt" ] ||
  fail "installed binary does not find its model: $("$PREFIX/bin/imgsearch" --print-default-model)"
cp -r "$SOURCE_DIR/examples/images" photos
"$PREFIX/bin/imgsearch" index photos -i ex.index >/dev/null
"$PREFIX/bin/imgsearch" info -i ex.index > info.txt
expect_in info.txt "model file: $PREFIX/share/imgsearch/models/mobilenet_v2_imagenet.pt"

# A program of the user's own, built against the package.
cmake -S "$SOURCE_DIR/examples/cpp" -B example-build -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_BUILD_TYPE=Release \
  > cmake.log 2>&1 || { cat cmake.log; fail "configuring examples/cpp against the installed package"; }
cmake --build example-build -j2 > build.log 2>&1 || { cat build.log; fail "building examples/cpp"; }
expect_status 0 example-build/similar_images ex.index photos/flowers/dahlia.jpg 5
[ "$(wc -l < "$WORK/out")" = 5 ] || fail "expected 5 results"
head -1 "$WORK/out" | grep -Eq "^1	1\.0000	.*/photos/flowers/dahlia\.jpg$" || fail "dahlia is not its own best match"
[ "$(grep -c '/photos/flowers/' "$WORK/out")" = 5 ] || { cat "$WORK/out"; fail "not five flowers"; }
# ... and it gives the same ranking as the command line
"$PREFIX/bin/imgsearch" query photos/flowers/dahlia.jpg -i ex.index -k 5 --format tsv | cut -f2- > cli.tsv
diff <(cut -f1,3 "$WORK/out") <(cut -f1,3 cli.tsv) || fail "library example and CLI disagree"
expect_status 1 example-build/similar_images ex.index photos/missing.jpg
expect_in "$WORK/err" "similar_images: .*missing\.jpg: "

# Bash completion, as installed: subcommands, options and option values from --help.
cat > complete.sh <<SH
source "$PREFIX/share/bash-completion/completions/imgsearch"
PATH="$PREFIX/bin:\$PATH"
try() { COMP_WORDS=("\$@"); COMP_CWORD=\$(( \$# - 1 )); COMPREPLY=(); _imgsearch; echo "\${COMPREPLY[*]}"; }
try imgsearch ""
try imgsearch in
try imgsearch query --js
try imgsearch query -k 5 --format ""
try imgsearch index --prec
try imgsearch -v eval --htm
SH
bash complete.sh > completions.txt
sed -n 1p completions.txt | grep -Eq "(^| )extract( |$)" && sed -n 1p completions.txt | grep -Eq "(^| )eval( |$)" ||
  fail "subcommands not completed: $(sed -n 1p completions.txt)"
[ "$(sed -n 2p completions.txt)" = "index info" ] || fail "'in' completes to: $(sed -n 2p completions.txt)"
[ "$(sed -n 3p completions.txt)" = "--json" ] || fail "'--js' completes to: $(sed -n 3p completions.txt)"
[ "$(sed -n 4p completions.txt)" = "table tsv json" ] || fail "--format values: $(sed -n 4p completions.txt)"
[ "$(sed -n 5p completions.txt)" = "--precision" ] || fail "'--prec' completes to: $(sed -n 5p completions.txt)"
[ "$(sed -n 6p completions.txt)" = "--html" ] || fail "'eval --htm' completes to: $(sed -n 6p completions.txt)"

# The man page: roff with a section for each subcommand and the exit statuses.
MAN="$PREFIX/share/man/man1/imgsearch.1"
grep -q '^\.TH "IMGSEARCH" "1"' "$MAN" || fail "no .TH header in $MAN"
for section in NAME extract index query info eval "Exit status"; do
  grep -Eq "^\.SH \"?$section" "$MAN" || grep -Eq "^\.SH \"?\\\\f\[C\]$section" "$MAN" || fail "man page lacks section $section"
done
if command -v man >/dev/null; then
  MANWIDTH=80 man -l "$MAN" > man.txt 2>/dev/null
  expect_in man.txt "imgsearch - find the images that look like a query image"
fi
echo ok
