#!/usr/bin/env bash
# Installs imgsearch's build and test dependencies from Debian's packages (bookworm or
# later; Ubuntu 23.04+ has the same names). Runs apt-get as root, or through sudo.
set -euo pipefail
PACKAGES=(
  build-essential cmake pkg-config
  libtorch-dev libopenblas0-pthread   # LibTorch; without OpenBLAS torch uses the slow reference BLAS
  libhnswlib-dev libstb-dev libturbojpeg0-dev libwebp-dev libxxhash-dev
  libcli11-dev libfmt-dev nlohmann-json3-dev catch2
  python3-torch python3-torchvision python3-pil python3-numpy   # models/export.py, benchmarks
  libblas-dev                   # cblas.h: eval's exact rankings (runs on OpenBLAS where installed)
  chromium                      # tests: HTML pages render in headless Chromium (scripts/render_html.sh)
  chromium-driver python3-selenium   # tests: the serve page driven in a real browser
  libcpp-httplib-dev            # imgsearch serve: the HTTP server
  python3-flask wrk             # tests/bench: the seed-style Python server and the load generator
  clang-14 libclang-rt-14-dev   # scripts/fuzz.sh: libFuzzer with ASan/UBSan
)
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
