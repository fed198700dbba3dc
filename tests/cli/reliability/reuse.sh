#!/usr/bin/env bash
# A --checkpoint-dir that already holds checkpoints (issue 10, item 7), and the data a run was trained on
# (item 6): refused before any step unless --resume / --overwrite, and a resume that would switch data is
# refused; without --data it reuses the checkpoint's own file.
# reuse.sh TSP MPIEXEC NP LAYOUT...
source "$(dirname "$0")/lib.sh" "$@"
common=(train "${layout[@]}" --preset tiny --seq-len 128 --batch 2 --seq-len-warmup 0 --eval-batches 0 --no-progress)
refused() {  # refused REGEX COMMAND...: rc 2 on every rank before any step, message matching REGEX
  local re=$1 rc=0; shift
  "$@" >"$work/o" 2>&1 || rc=$?
  [ "$rc" = 2 ] || fail "exit status $rc, wanted 2: $(tail -3 "$work/o")"
  grep -Eq -- "\[rank 1\] error: $re" "$work/o" && grep -Eq -- "\[rank 0\] error: $re" "$work/o" ||
    fail "no /$re/ on every rank: $(grep error "$work/o")"
  ! grep -q "^step " "$work/o" || fail "trained before refusing"
  grep -m1 "rank 0\] error" "$work/o"
}
run "$tsp" "${common[@]}" --steps 4 --save-every 2 --checkpoint-dir "$work/ck" >/dev/null 2>&1
refused "--checkpoint-dir .*/ck already holds checkpoints \(the newest is step 4\): pass --resume auto" \
  run "$tsp" "${common[@]}" --steps 4 --checkpoint-dir "$work/ck"
refused "--checkpoint-dir .*/ck holds checkpoints newer than the resumed step 2 \(the newest is step 4\)" \
  run "$tsp" "${common[@]}" --steps 6 --checkpoint-dir "$work/ck" --resume "$work/ck/step-000002"
# --overwrite: the old run's checkpoints go once the new run's first checkpoint is complete.
run "$tsp" "${common[@]}" --steps 3 --checkpoint-dir "$work/ck" --overwrite >/dev/null 2>&1 || fail "--overwrite"
[ "$(ls -A "$work/ck" | tr '\n' ' ')" = "latest step-000003 " ] || fail "after --overwrite: $(ls -A "$work/ck")"

# Data: trained on a text file; resuming without --data reuses it, another file is refused.
python3 -c "print('the quick brown fox jumps over the lazy dog. ' * 200)" >"$work/a.txt"
python3 -c "print('pack my box with five dozen liquor jugs! ' * 200)" >"$work/b.txt"
run "$tsp" "${common[@]}" --steps 2 --data "$work/a.txt" --checkpoint-dir "$work/d" >/dev/null 2>&1
run "$tsp" "${common[@]}" --steps 4 --checkpoint-dir "$work/d" --resume auto >"$work/o" 2>&1 || fail "resume: $(tail -3 "$work/o")"
grep -q "resuming on the checkpoint's training data: --data .*a.txt" "$work/o" || fail "did not reuse the data"
grep -q "byte-level text .*a.txt\|a.txt" <(head -1 "$work/o") || fail "header does not name a.txt: $(head -1 "$work/o")"
refused ".*step-000004 was trained on --data .*a.txt \([0-9]+ bytes, CRC-32 0x[0-9a-f]{8}\), but --data .*b.txt has" \
  run "$tsp" "${common[@]}" --steps 6 --checkpoint-dir "$work/d" --resume auto --data "$work/b.txt"
run "$tsp" "${common[@]}" --steps 2 --checkpoint-dir "$work/r" >/dev/null 2>&1
refused ".*was trained on the built-in recall task, but this run gives --data .*a.txt" \
  run "$tsp" "${common[@]}" --steps 4 --checkpoint-dir "$work/r" --resume auto --data "$work/a.txt"
refused ".*was trained on the recall task with pairs 16 .*but this run asks for 12: resume with --recall-pairs 16" \
  run "$tsp" "${common[@]}" --steps 4 --checkpoint-dir "$work/r" --resume auto --recall-pairs 12
echo "reuse.sh: ok"
