#!/usr/bin/env bash
# Page faults between batches (docs/benchmarks.md): `imgsearch extract` over Corel-1k with
# the top pad imgsearch sets at start-up (256 MiB) and with glibc's default (128 KiB, by
# MALLOC_TOP_PAD_, which imgsearch leaves to glibc when set), interleaved, --runs times
# each. Prints one line a run: wall, user, system CPU, minor faults, peak RSS, img/s.
#   tests/bench/page_faults.sh [--build build] [--runs 3] [--images DIR] [--threads 2]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
runs=3
images=$root/../shared/datasets/corel1k/images
threads=2
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "page_faults.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
n=$(find "$images" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | wc -l)
grep "model name" /proc/cpuinfo | head -1
echo "load: $(cat /proc/loadavg); $n images; $("$build/bin/imgsearch" --version)"
printf '%-22s %8s %8s %8s %12s %10s %8s\n' setting wall_s user_s sys_s minor_faults peak_MiB img_s
one() {  # one LABEL [ENV=VALUE]
  local label=$1; shift
  env "$@" /usr/bin/time -f "%e %U %S %R %M" -o "$out/t" "$build/bin/imgsearch" extract "$images" \
    -o "$out/f.feat" --threads "$threads" 2> /dev/null > /dev/null
  read -r wall user sys faults rss < "$out/t"
  printf '%-22s %8.2f %8.2f %8.2f %12d %10.0f %8.1f\n' "$label" "$wall" "$user" "$sys" "$faults" \
    "$(awk "BEGIN{print $rss / 1024}")" "$(awk "BEGIN{print $n / $wall}")"
}
for r in $(seq "$runs"); do
  one "top pad 256 MiB" OMP_WAIT_POLICY=PASSIVE
  one "glibc default 128 KiB" OMP_WAIT_POLICY=PASSIVE MALLOC_TOP_PAD_=131072
done
