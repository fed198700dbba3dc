#!/usr/bin/env bash
# A rank that dies mid-step (SIGKILL, a segfault, abort) in the forward, the backward or the optimizer step:
# every other rank must be gone within 10 s, the job must exit non-zero, and the output must name the dead
# rank. Then a rank that stops progressing (sleeps forever at a step and label): the watchdog must abort the
# job after --comm-timeout with a message naming the label, phase, step and the ranks that had not arrived.
# dead_rank.sh TSP MPIEXEC NP MODE LAYOUT...: MODE "kills" (SIGKILL in each phase, plus a segfault and an
# abort) or "kills+watchdog" (SIGKILL in each phase, then the hung rank).
tsp_arg=$1; mpi_arg=$2; np_arg=$3; mode=$4; shift 4
source "$(dirname "$0")/lib.sh" "$tsp_arg" "$mpi_arg" "$np_arg" "$@"
victim=$((np - 1))
common=(train "${layout[@]}" --preset tiny --seq-len 128 --batch 2 --steps 200 --seq-len-warmup 0 --eval-batches 0
  --no-progress)
# Seconds from the fault (its announced time stamp) to now.
since_fault() {
  python3 -c "import re,sys,time; t=float(re.search(r'\(t=([0-9.]+)\)', open(sys.argv[1]).read()).group(1)); print(f'{time.time()-t:.2f}')" "$1"
}
faults=("sigkill:forward" "sigkill:backward" "sigkill:optimizer")
[ "$mode" = kills ] && faults+=("segv:backward" "abort:forward")
for fault in "${faults[@]}"; do
  action=${fault%:*}; phase=${fault#*:}
  rc=0
  TSP_DEBUG_FAULT="action=$action,rank=$victim,step=3,phase=$phase" run "$tsp" "${common[@]}" >"$work/o" 2>&1 || rc=$?
  dt=$(since_fault "$work/o")
  echo "$action of rank $victim in the $phase: exit status $rc, job gone $dt s after the fault"
  [ "$rc" != 0 ] || fail "exit status 0"
  grep -Eq "process rank $victim with PID .* exited on signal|Process name: \[\[[0-9]+,1\],$victim\]" "$work/o" ||
    fail "no message naming rank $victim: $(tail -8 "$work/o")"
  python3 -c "import sys; sys.exit(0 if $dt <= 10 else 1)" || fail "took $dt s"
done
[ "$mode" = kills+watchdog ] || { echo "dead_rank.sh: ok"; exit 0; }
# The watchdog.
rc=0
TSP_DEBUG_FAULT="action=hang,rank=$victim,step=3,phase=backward" run "$tsp" "${common[@]}" --comm-timeout 2 \
  >"$work/o" 2>&1 || rc=$?
dt=$(since_fault "$work/o")
grep "error: communication timeout" "$work/o" | head -2
echo "rank $victim hung in the backward: exit status $rc, job gone $dt s after the fault (--comm-timeout 2)"
[ "$rc" = 4 ] || fail "exit status $rc, wanted 4"
grep -Eq "\[rank [0-9]+\] error: communication timeout: '[a-z_.]+' \(phase backward, step 3\) has waited [0-9.]+ s \(--comm-timeout 2\); ranks not arrived: .*rank $victim \(step 3, outside communication" "$work/o" ||
  fail "watchdog message: $(grep error "$work/o")"
python3 -c "import sys; sys.exit(0 if $dt <= 10 else 1)" || fail "took $dt s"
echo "dead_rank.sh: ok"
