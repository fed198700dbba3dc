#!/usr/bin/env bash
# preempt_stress.sh TSP N SIGNAL [LAYOUT...]: N preempted runs of 2-rank training (tiny, as preempt.sh), each
# stopped by SIGNAL once step 6 is logged; prints how many exited with 128 + SIGNAL and keeps the log of every
# other one. Not in ctest (a rare failure needs many runs): docs/reliability.md quotes its counts.
tsp_arg=$1 n=$2 sig=$3; shift 3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
source "$(dirname "$0")/lib.sh" "$tsp_arg" mpirun 2 "$@"
want=$((128 + $(kill -l "$sig")))
keep=$(mktemp -d)
ok=0
for i in $(seq 1 "$n"); do
  rm -rf "$work/ck"
  run "$tsp" train "${layout[@]}" --preset tiny --seq-len 128 --batch 2 --steps 200 --seq-len-warmup 0 \
    --warmup 5 --eval-batches 0 --no-progress --json --checkpoint-dir "$work/ck" >"$work/a.json" 2>"$work/a.err" &
  mp=$!
  wait_for "$work/a.err" "^step +6/" 60
  kill -"$sig" $(ranks_of $mp)
  rc=0; wait $mp || rc=$?
  if [ "$rc" = "$want" ]; then ok=$((ok + 1)); else cp "$work/a.err" "$keep/run$i.err"; fi
done
if [ "$ok" = "$n" ]; then
  rmdir "$keep"
  echo "preempt_stress.sh: $ok of $n runs exited $want"
else
  echo "preempt_stress.sh: $ok of $n runs exited $want (logs of the others: $keep)"
  exit 1
fi
