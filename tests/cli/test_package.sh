# cpack -G DEB: the imgsearch package depends on Debian's runtime packages (not -dev ones),
# holds the binary, the built-in model and its licence, completion and man page; extracted
# into a scratch root it runs and answers a query with its own model. libimgsearch-dev holds
# the library, headers and CMake package.
source "$(dirname "$0")/lib.sh"
: "${BUILD_DIR:?}"
export HOME="$WORK/home"
cpack --config "$BUILD_DIR/CPackConfig.cmake" -G DEB -B "$WORK/pkg" > cpack.log 2>&1 || { cat cpack.log; fail "cpack"; }
DEB=$(ls "$WORK"/pkg/imgsearch_*_amd64.deb 2>/dev/null || ls "$WORK"/pkg/imgsearch_*.deb)
DEV=$(ls "$WORK"/pkg/libimgsearch-dev_*.deb)
[ -s "$DEB" ] && [ -s "$DEV" ] || fail "packages not made: $(ls "$WORK/pkg")"

dpkg-deb --info "$DEB" > info.txt
expect_in info.txt "^ Package: imgsearch$"
expect_in info.txt "^ Version: $("$IMGSEARCH" --version | cut -d' ' -f2)$"
expect_in info.txt "^ Depends: .*libtorch[0-9.]+ "
expect_in info.txt "^ Depends: .*libturbojpeg0"
expect_in info.txt "^ Depends: .*libwebp"
expect_not_in info.txt "^ Depends: .*-dev"
dpkg-deb --contents "$DEB" | awk '{print $6}' > files.txt
for f in ./usr/bin/imgsearch ./usr/share/imgsearch/models/mobilenet_v2_imagenet.pt \
         ./usr/share/imgsearch/models/LICENSE ./usr/share/bash-completion/completions/imgsearch \
         ./usr/share/man/man1/imgsearch.1; do
  grep -qx -- "$f" files.txt || fail "$f not in the package"
done
expect_not_in files.txt "\.a$|/include/"
dpkg-deb --contents "$DEV" | awk '{print $6}' > devfiles.txt
for f in ./usr/lib/libimgsearch.a ./usr/include/imgsearch/searcher.h ./usr/lib/cmake/imgsearch/imgsearchConfig.cmake; do
  grep -qx -- "$f" devfiles.txt || fail "$f not in the -dev package"
done
# Every dependency names a package apt knows (resolved offline against this machine's lists).
if apt-get -s install "$DEB" > apt.txt 2>&1; then
  expect_in apt.txt "Inst imgsearch|imgsearch is already"
else
  grep -q "Unable to locate\|has no installation candidate\|unmet dependencies" apt.txt &&
    { cat apt.txt; fail "the package's dependencies cannot be resolved"; }
fi

# Installed into a scratch root, it runs with its own built-in model.
dpkg-deb -x "$DEB" root
ROOT_BIN="$WORK/root/usr/bin/imgsearch"
expect_status 0 "$ROOT_BIN" --version
expect_in "$WORK/out" "^imgsearch [0-9]+\.[0-9]+\.[0-9]+$"
[ "$("$ROOT_BIN" --print-default-model)" = "$WORK/root/usr/share/imgsearch/models/mobilenet_v2_imagenet.pt" ] ||
  fail "packaged binary uses $("$ROOT_BIN" --print-default-model)"
cp -r "$SOURCE_DIR/examples/images" photos
"$ROOT_BIN" index photos -i ex.index >/dev/null
expect_status 0 "$ROOT_BIN" query photos/flowers/dahlia.jpg -i ex.index -k 5 --format tsv
[ "$(cut -f4 "$WORK/out" | grep -c '/photos/flowers/')" = 5 ] || fail "not five flowers"
head -1 "$WORK/out" | grep -q "/photos/flowers/dahlia.jpg$" || fail "dahlia not first"
# The package gone, an index it made still answers through the build's built-in model (same hash).
rm -r root
expect_status 0 "$IMGSEARCH" query photos/flowers/dahlia.jpg -i ex.index -k 1 --format tsv
expect_in "$WORK/out" "/photos/flowers/dahlia\.jpg$"
echo ok
