#!/usr/bin/env bash
# Real damage to real checkpoint files: a truncated file, a flipped byte, a deleted file, a missing or broken
# manifest. `--resume DIR` must refuse, naming the file and what is wrong; `--resume auto` must skip the
# damaged newest checkpoint with a warning and resume from the previous one; eval of an HF-style directory
# (weights and config only, no manifest) and fine-tuning from it (--init-from) must still work.
# corrupt.sh TSP MPIEXEC NP LAYOUT...
source "$(dirname "$0")/lib.sh" "$@"
common=(train "${layout[@]}" --preset tiny --seq-len 128 --batch 2 --seq-len-warmup 0 --warmup 2 --eval-batches 0
  --no-progress)
run "$tsp" "${common[@]}" --steps 4 --save-every 2 --checkpoint-dir "$work/ck" >/dev/null 2>&1
printf '1 2 3 4 5 6 7 8 9\n' >"$work/tokens.txt"
fresh() { rm -rf "$work/c"; cp -r "$work/ck" "$work/c"; }
refuse() {  # refuse REGEX: --resume of the damaged step-4 fails with a message matching REGEX
  local rc=0
  run "$tsp" "${common[@]}" --steps 6 --resume "$work/c/step-000004" >"$work/r.out" 2>&1 || rc=$?
  [ "$rc" = 2 ] || fail "exit status $rc, wanted 2: $(cat "$work/r.out")"
  grep -Eq -- "$1" "$work/r.out" || fail "no /$1/ in: $(grep error "$work/r.out")"
  grep -m1 "error" "$work/r.out"
}
fresh; truncate -s 1000 "$work/c/step-000004/model.safetensors"
refuse "\[rank 1\] error: --resume .*step-000004/model.safetensors: 1000 bytes, but manifest.json lists [0-9]+ \(truncated"
fresh; python3 - "$work/c/step-000004/optimizer.safetensors" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0x40; open(p, "wb").write(b)
PY
refuse "error: --resume .*optimizer.safetensors: CRC-32 0x[0-9a-f]{8} does not match 0x[0-9a-f]{8} in manifest.json \(the file is corrupt\)"
fresh; rm "$work/c/step-000004/trainer_state.json"
refuse "error: --resume .*trainer_state.json: missing \(listed in manifest.json\)"
fresh; rm "$work/c/step-000004/manifest.json"
refuse "error: --resume .*step-000004 has no manifest.json: the save did not finish"
fresh; echo '{"format": "tsp-checkpoint-manifest", "version": 1, "step": 4, "files": [{"path": "../x"' \
  >"$work/c/step-000004/manifest.json"
refuse "error: --resume .*manifest.json: .*parse error"

# --resume auto skips the damaged newest and resumes from step 2 exactly.
fresh; truncate -s 1000 "$work/c/step-000004/model.safetensors"
run "$tsp" "${common[@]}" --steps 6 --checkpoint-dir "$work/c" --resume auto >"$work/a.out" 2>&1 ||
  fail "resume auto: $(grep error "$work/a.out")"
grep -q "warning: --resume auto skips .*step-000004: .*model.safetensors: 1000 bytes" "$work/a.out" || fail "no warning"
grep -q "resumed at step 2" "$work/a.out" || fail "did not resume at step 2"
grep -m1 warning "$work/a.out"

# An HF directory (config.json + model.safetensors, no manifest, no optimizer or trainer state).
mkdir "$work/hf"; cp "$work/ck/step-000004/config.json" "$work/ck/step-000004/model.safetensors" "$work/hf/"
"$tsp" eval --checkpoint "$work/hf" --tokens "$work/tokens.txt" >/dev/null || fail "eval of an HF directory"
"$tsp" generate --checkpoint "$work/hf" --prompt-tokens "1 2 3" --max-new-tokens 2 >/dev/null || fail "generate"
rc=0; run "$tsp" "${common[@]}" --steps 2 --resume "$work/hf" >"$work/h.out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "has no manifest.json" "$work/h.out" || fail "--resume of an HF directory: $rc"
run "$tsp" "${common[@]}" --steps 2 --init-from "$work/hf" >"$work/i.out" 2>&1 || fail "--init-from: $(tail -3 "$work/i.out")"
grep -q "step     2/2" "$work/i.out" || fail "--init-from did not train"
# Damaged weights are refused for eval too (the manifest is checked when present).
fresh; truncate -s 1000 "$work/c/step-000004/model.safetensors"
rc=0; "$tsp" eval --checkpoint "$work/c" --tokens "$work/tokens.txt" >"$work/e.out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "model.safetensors: 1000 bytes" "$work/e.out" || fail "eval of a damaged checkpoint: $rc $(cat "$work/e.out")"
echo "corrupt.sh: ok"
