#!/usr/bin/env bash
# Extract a large photo collection on N nodes with a Slurm array job, then merge the
# shards into one index with a dependent job. Every task scans the same folder and takes
# its own part of the sorted file list (`extract --shard I/N`), so nothing needs to be
# split by hand, and a failed task can simply be resubmitted (`sbatch --array=7 ...`).
#
#   PHOTOS=/data/photos OUT=/scratch/imgsearch MODEL=/models/mobilenet_v2-int8.pt \
#     sbatch --array=0-15 examples/shards/slurm-extract.sh
#   sbatch --dependency=afterok:<JOBID> --export=ALL,OUT=/scratch/imgsearch examples/shards/slurm-merge.sh
#
# PHOTOS, OUT and MODEL must be on a file system all nodes share; the index stores the
# paths the tasks saw, so query from a machine that mounts the photos at the same place.
#SBATCH --job-name=imgsearch-extract
#SBATCH --cpus-per-task=8
#SBATCH --mem=4G
#SBATCH --time=04:00:00
#SBATCH --output=imgsearch-extract-%A_%a.log
set -euo pipefail
: "${PHOTOS:?set PHOTOS to the photo folder}" "${OUT:?set OUT to a shared output folder}" "${MODEL:?set MODEL}"
: "${SLURM_ARRAY_TASK_ID:?submit with sbatch --array=0-(N-1)}" "${SLURM_ARRAY_TASK_COUNT:?}"
mkdir -p "$OUT"
# Slurm arrays may start at any index; --shard wants 0..N-1.
I=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))
N=$SLURM_ARRAY_TASK_COUNT
# Write to a temporary name: a merge never picks up a half-written shard.
set +e
imgsearch extract "$PHOTOS" --shard "$I/$N" -m "$MODEL" --threads "${SLURM_CPUS_PER_TASK:-0}" \
  -o "$OUT/shard-$I-of-$N.features.part"
status=$?
set -e
# 0: all extracted; 3: written, some unreadable images skipped (named in the log).
if [ "$status" = 0 ] || [ "$status" = 3 ]; then
  [ -e "$OUT/shard-$I-of-$N.features.part" ] && mv "$OUT/shard-$I-of-$N.features.part" "$OUT/shard-$I-of-$N.features"
  exit 0
fi
exit "$status"
