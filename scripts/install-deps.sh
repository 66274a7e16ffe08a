#!/usr/bin/env bash
# Installs what imgsearch needs from Debian's packages (bookworm or later; Ubuntu 23.04+
# has the same names). Runs apt-get as root, or through sudo. Installs only what is missing.
#   scripts/install-deps.sh          building and running imgsearch (scripts/quickstart.sh)
#   scripts/install-deps.sh --test   also the test suite, fuzzers, man page and packages
set -euo pipefail
PACKAGES=(
  build-essential cmake pkg-config
  libtorch-dev libopenblas0-pthread   # LibTorch; without OpenBLAS torch uses the slow reference BLAS
  libhnswlib-dev libstb-dev libturbojpeg0-dev libwebp-dev libxxhash-dev
  libcli11-dev libfmt-dev nlohmann-json3-dev
  libblas-dev                   # cblas.h: eval's exact rankings (runs on OpenBLAS where installed)
  libcpp-httplib-dev            # imgsearch serve: the HTTP server (header-only)
)
TEST_PACKAGES=(
  catch2
  python3-torch python3-torchvision python3-pil python3-numpy   # models/export.py, test data, benchmarks
  chromium                      # HTML pages render in headless Chromium (scripts/render_html.sh)
  clang-14 libclang-rt-14-dev   # scripts/fuzz.sh: libFuzzer with ASan/UBSan
  pandoc                        # the man page, generated from docs/cli.md
  dpkg-dev file                 # cpack -G DEB: dpkg-shlibdeps finds the package's dependencies
  chromium-driver python3-selenium   # the serve page driven in a real browser
  python3-flask wrk             # tests/bench: the seed-style Python server and the load generator
  ccache                        # the quickstart test rebuilds imgsearch in a copy: from the cache
)
if [ "${1:-}" = "--test" ]; then
  PACKAGES+=("${TEST_PACKAGES[@]}")
elif [ -n "${1:-}" ]; then
  echo "usage: $0 [--test]" >&2
  exit 2
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
