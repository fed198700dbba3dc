#!/usr/bin/env bash
# Preemption for real: SIGTERM (or SIGINT) delivered to every rank, as srun and schedulers do, in the middle
# of training. The job must stop at a step boundary all ranks agree on, write a checkpoint, say where, exit
# 128 + signal; `--resume auto` must then continue bit for bit (loss, grad norm and lr of every step equal to
# an uninterrupted run). Then a second signal during a save must abort at once, leaving the previous
# checkpoint to resume from.
# preempt.sh TSP MPIEXEC NP SIGNAL MODE LAYOUT...: MODE "resume" or "resume+second" (also the second signal).
tsp_arg=$1; mpi_arg=$2; np_arg=$3; sig=$4; mode=$5; shift 5
source "$(dirname "$0")/lib.sh" "$tsp_arg" "$mpi_arg" "$np_arg" "$@"
# Enough steps that the run is still going when the signal arrives (a step of this model takes a few ms).
steps=200
common=(train "${layout[@]}" --preset tiny --seq-len 128 --batch 2 --steps $steps --seq-len-warmup 0 --warmup 5
  --eval-batches 0 --no-progress --json --checkpoint-dir)
want_rc=$((128 + $(kill -l "$sig")))

run "$tsp" "${common[@]}" "$work/ref" >"$work/ref.json" 2>"$work/ref.err" ||
  fail "uninterrupted run: $(grep -v '^step ' "$work/ref.err" | tail -5)"

run "$tsp" "${common[@]}" "$work/ck" --save-every 100 >"$work/a.json" 2>"$work/a.err" &
mp=$!
wait_for "$work/a.err" "^step +6/" 60
kill -"$sig" $(ranks_of $mp)
t0=$(date +%s.%N)
rc=0; wait $mp || rc=$?
echo "exit status $rc after $(python3 -c "import time; print(f'{time.time() - $t0:.2f}')") s"
grep -v '^step ' "$work/a.err" | head -20
[ "$rc" = "$want_rc" ] || fail "exit status $rc, wanted $want_rc"
stop=$(python3 -c "import json; print(json.load(open('$work/a.json'))['stopped']['step'])")
grep -Eq "^$sig: stopped after step $stop of $steps; checkpoint written to $work/ck/step-0*$stop " "$work/a.err" ||
  fail "no message naming the checkpoint"
[ "$(cat "$work/ck/latest")" = "$(printf 'step-%06d' "$stop")" ] || fail "latest is $(cat "$work/ck/latest")"

run "$tsp" "${common[@]}" "$work/ck" --resume auto >"$work/b.json" 2>"$work/b.err" || fail "resume: $(tail "$work/b.err")"
grep -q "resumed at step $stop" "$work/b.err" || fail "did not resume at step $stop"
steps_equal "$work/ref.json" "$work/a.json" "$work/b.json"

[ "$mode" = resume+second ] || { echo "preempt.sh: ok"; exit 0; }
# A second signal while the checkpoint is being written (held there by a debug fault point) aborts at once.
rm -rf "$work/ck2"
TSP_DEBUG_FAULT=action=hang,rank=0,phase=save,label=save.files-written,count=2 \
  run "$tsp" "${common[@]}" "$work/ck2" --save-every 3 >"$work/c.json" 2>"$work/c.err" &
mp=$!
wait_for "$work/c.err" "TSP_DEBUG_FAULT: hang" 60
kill -"$sig" $(ranks_of $mp); sleep 0.5
kill -"$sig" $(ranks_of $mp)
t0=$(date +%s.%N)
rc=0; wait $mp || rc=$?
dt=$(python3 -c "import time; print(f'{time.time() - $t0:.2f}')")
echo "second $sig: exit status $rc after $dt s"
grep -q "second signal ($sig): aborting at once" "$work/c.err" || fail "no second-signal message"
[ "$rc" = "$want_rc" ] || fail "exit status $rc, wanted $want_rc"
python3 -c "import sys; sys.exit(0 if $dt < 5 else 1)" || fail "took $dt s to exit"
[ "$(cat "$work/ck2/latest")" = "step-000003" ] || fail "latest is $(cat "$work/ck2/latest"), wanted step-000003"
run "$tsp" "${common[@]}" "$work/ck2" --resume auto >/dev/null 2>"$work/d.err" || fail "resume after abort"
grep -q "resumed at step 3" "$work/d.err" || fail "did not resume from the previous checkpoint"
echo "preempt.sh: ok"
