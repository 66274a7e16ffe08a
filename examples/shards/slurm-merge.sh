#!/usr/bin/env bash
# Merges the shards written by slurm-extract.sh into one index (no model, no GPU needed;
# memory: the index plus one shard). Run it after the array job: --dependency=afterok:JOBID.
#SBATCH --job-name=imgsearch-merge
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=02:00:00
#SBATCH --output=imgsearch-merge-%j.log
set -euo pipefail
: "${OUT:?set OUT to the folder the extract tasks wrote to}"
shopt -s nullglob
shards=("$OUT"/shard-*-of-*.features)
[ ${#shards[@]} -gt 0 ] || { echo "no shards in $OUT" >&2; exit 1; }
imgsearch index --from-features "${shards[@]}" -i "$OUT/photos.index" --rebuild --threads "${SLURM_CPUS_PER_TASK:-0}"
imgsearch info -i "$OUT/photos.index"
