#!/usr/bin/env bash
# preempt_auto.sh TSP MPIEXEC NP LAYOUT...: --matmul-precision auto chooses each product's path by timing it,
# so two fresh runs may choose differently; a run pinned to a table (--matmul-paths) may not. A first short
# run measures the table and checkpoints it (trainer_state.json); preempt.sh then runs the uninterrupted and
# the interrupted run pinned to it, and the resumed run restores it from its own checkpoint: every step's
# loss, grad norm and lr must be equal.
set -euo pipefail
tsp=$1; mpiexec=$2; np=$3; shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_MCA_rmaps_base_oversubscribe=1
"$mpiexec" --oversubscribe -np "$np" "$tsp" train "$@" --matmul-precision auto --preset tiny --seq-len 128 --batch 2 \
  --steps 2 --seq-len-warmup 0 --eval-batches 0 --no-progress --checkpoint-dir "$work/measure" >"$work/m.out" 2>&1 ||
  { tail -5 "$work/m.out"; echo "FAIL: the measuring run failed"; exit 1; }
table="$work/measure/step-000002/trainer_state.json"
python3 -c "import json, sys; t = json.load(open('$table'))['product_paths']; assert t['products'], t" ||
  { echo "FAIL: $table holds no product paths"; exit 1; }
"$(dirname "$0")/preempt.sh" "$tsp" "$mpiexec" "$np" SIGTERM resume "$@" --matmul-precision auto --matmul-paths "$table"
