#!/usr/bin/env bash
# imgsearch(1) from the CLI reference: docs/cli.md -> roff, with pandoc.
#   scripts/make_manpage.sh docs/cli.md VERSION OUT.1
set -euo pipefail
src=$1 version=$2 out=$3
{
  echo '# NAME'
  echo
  echo 'imgsearch - find the images that look like a query image (content-based image search)'
  echo
  echo '# DESCRIPTION'
  echo
  echo 'A pretrained CNN turns each image into a vector; an HNSW index over cosine similarity'
  echo 'answers queries. Full documentation: /usr/share/doc/imgsearch and the project README.'
  echo
  # Drop the document title; every "## X" section becomes a top-level man section.
  sed -e '1{/^# /d}' -e 's/^## /# /' -e 's/^### /## /' "$src"
} | pandoc -f gfm -t man -s \
    -M title=IMGSEARCH -M section=1 -M "header=imgsearch manual" -M "footer=imgsearch $version" \
    -M "date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(stat -c %Y "$src")}" +%Y-%m-%d)" -o "$out.tmp"
mv "$out.tmp" "$out"
