#!/usr/bin/env bash
# For every image in a folder of queries, the 5 most similar images of a collection, as
# TSV (query, rank, score, path) - one imgsearch process, the model loaded once.
#
#   examples/query_folder.sh COLLECTION_DIR QUERY_DIR > matches.tsv
set -euo pipefail
IMGSEARCH=${IMGSEARCH:-imgsearch}
collection=${1:?collection folder}
queries=${2:?query folder}
index=${INDEX:-$collection/.imgsearch.index}

# Incremental: a second run only extracts new or changed images.
"$IMGSEARCH" index "$collection" -i "$index" >&2
find "$queries" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort |
  "$IMGSEARCH" query - -i "$index" -k 5 --format tsv
