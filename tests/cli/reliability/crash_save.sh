#!/usr/bin/env bash
# kill -9 of every rank at many points of a checkpoint save (a debug fault point SIGKILLs the whole job at
# once): before it, inside the model and the optimizer files, before and after the manifest, between the
# rename and `latest`, before pruning. Afterwards `--resume auto` must find the previous checkpoint (or the
# new one, once it is complete), resume, and end exactly where an uninterrupted run ends; `tsp eval` on the
# directory (through `latest`) must load.
# crash_save.sh TSP MPIEXEC NP LAYOUT...
source "$(dirname "$0")/lib.sh" "$@"
common=(train "${layout[@]}" --preset tiny --seq-len 128 --batch 2 --steps 6 --seq-len-warmup 0 --warmup 2
  --eval-batches 0 --no-progress --json --save-every 2 --keep-checkpoints 1 --checkpoint-dir)
run "$tsp" "${common[@]}" "$work/ref" >"$work/ref.json" 2>"$work/ref.err"
printf '1 2 3 4 5 6 7 8 9\n' >"$work/tokens.txt"
# point (phase,label,count) -> the step the resumed run must start from
points=(
  "label=save.begin:2" "label=checkpoint.save,count=3:2" "label=checkpoint.save,count=40:2"
  "label=save.files-written:2" "label=save.digested:2" "label=save.manifest-written:2"
  "label=save.renamed:4" "label=save.latest-written:4" "label=save.pruned:4")
for p in "${points[@]}"; do
  fault=${p%:*}; want=${p##*:}
  rm -rf "$work/ck"
  rc=0
  TSP_DEBUG_FAULT="action=killall,rank=0,step=4,$fault" run "$tsp" "${common[@]}" "$work/ck" \
    >"$work/a.json" 2>"$work/a.err" || rc=$?
  grep -q "TSP_DEBUG_FAULT: killall" "$work/a.err" || fail "$fault: the fault did not fire: $(tail -3 "$work/a.err")"
  [ "$rc" != 0 ] || fail "$fault: exit status 0 after kill -9"
  "$tsp" eval --checkpoint "$work/ck" --tokens "$work/tokens.txt" >/dev/null 2>"$work/e.err" ||
    fail "$fault: eval of $work/ck after the crash: $(cat "$work/e.err")"
  run "$tsp" "${common[@]}" "$work/ck" --resume auto >"$work/b.json" 2>"$work/b.err" ||
    fail "$fault: resume: $(tail -3 "$work/b.err")"
  grep -q "resumed at step $want" "$work/b.err" || fail "$fault: did not resume at step $want: $(head -3 "$work/b.err")"
  python3 - "$work/ref.json" "$work/b.json" "$want" <<'PY' || fail "$fault: resumed run differs"
import json, sys
ref = {e["step"]: e for e in json.load(open(sys.argv[1]))["log"]}
got = json.load(open(sys.argv[2]))["log"]
assert [e["step"] for e in got] == list(range(int(sys.argv[3]) + 1, 7)), [e["step"] for e in got]
for e in got:
    for k in ("loss", "grad_norm", "lr"):
        assert e[k] == ref[e["step"]][k], (e["step"], k, e[k], ref[e["step"]][k])
PY
  left=$(ls -A "$work/ck" | tr '\n' ' ')
  echo "killed at $fault: resumed from step $want, exact; directory after the resume: $left"
  [ "$left" = "latest step-000006 " ] || fail "$fault: left $left"
done
echo "crash_save.sh: ok"
