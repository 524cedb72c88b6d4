#!/bin/bash
# A bnlab sweep as a Slurm job array (docs/batch.md).
#
#   sbatch examples/slurm_sweep.sh                 # 4 array tasks share the grid
#   sbatch --dependency=afterany:<jobid> --wrap 'bnlab merge results/sweep-activations --out results/sweep-activations.csv'
#
# Each array task runs `bnlab sweep` with the same grid and --out: bnlab reads
# SLURM_ARRAY_TASK_ID / _COUNT / _MIN / _STEP and runs only its shard
# (configurations k with (k-1) % COUNT == task index). Resubmitting the same
# script resumes: configurations whose status.json says ok or diverged are
# skipped; failed and cut-off ones run again. Words given to this script go
# to `bnlab sweep` (try: SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_TASK_COUNT=4
# bash examples/slurm_sweep.sh --dry-run).
#
#SBATCH --job-name=bnlab-sweep
#SBATCH --array=0-3
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=01:00:00
#SBATCH --output=slurm-%x-%A_%a.out
# Slurm sends SIGTERM at the time limit or on scancel: bnlab sweep passes it
# on, keeps what finished, and exits 143; the next submission resumes.

set -euo pipefail

BNLAB=${BNLAB:-bnlab}                       # or the path of your build: ./bnlab
OUT=${OUT:-results/sweep-activations}
THREADS=${SLURM_CPUS_PER_TASK:-1}

exec "$BNLAB" sweep experiments/activations.lua \
  --grid depth=8,14,20 --grid norm=bn,none --seeds 2 \
  -j 1 --threads "$THREADS" --out "$OUT" "$@" \
  -- --scale tiny
