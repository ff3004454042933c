#!/bin/bash
# Fetch every id of $SHARED/ids.txt into $SHARED/audio with a Slurm job array: 8 array
# tasks, 0 to 7, each one shard. `--shard auto --shards 8` takes SLURM_ARRAY_TASK_ID as the
# shard, so a task that failed is run again alone, and still takes its own shard, with
#   sbatch --array=4 examples/slurm-array.sh
# Each task keeps its own record, $SHARED/audio/aiotts.shard-K-of-8.db, and `--resume`
# skips what it already holds.
#   sbatch examples/slurm-array.sh
#   aiotts report "$SHARED"/audio/aiotts.shard-*-of-8.db     # afterwards
#SBATCH --job-name=aiotts-fetch
#SBATCH --array=0-7
#SBATCH --cpus-per-task=1
#SBATCH --mem=512M
#SBATCH --time=04:00:00
#SBATCH --output=aiotts-%A_%a.log
set -euo pipefail
SHARED="${SHARED:-/shared}"   # a file system every node mounts
# Credentials come from the environment sbatch passes on (ASPOSE_CLIENT_ID and
# ASPOSE_CLIENT_SECRET), or from ~/.config/aiotts/credentials on the shared home.
exec aiotts fetch \
    --ids-file "$SHARED/ids.txt" \
    --out "$SHARED/audio" \
    --shard auto \
    --shards 8 \
    --resume \
    --rate 20 \
    --quiet
