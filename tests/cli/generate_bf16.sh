#!/usr/bin/env bash
# --dtype bf16 end to end on the serving side: a run trained under the bf16 policy checkpoints BF16 weights
# (config.json torch_dtype bfloat16, the fp32 masters in optimizer.safetensors); generate and eval under
# --dtype bf16 then serve from it under single, tp, tsp (both KV layouts) and the 2x2 mesh, with a KV cache of
# half the bytes of the same run in float32 on every rank, and say so in their JSON.
# generate_bf16.sh TSP_BINARY MPIEXEC
set -euo pipefail
tsp=$1; mpiexec=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() { "$mpiexec" --oversubscribe -np "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

run 2 "$tsp" train --strategy tsp --preset tiny --seq-len 128 --batch 2 --steps 3 --no-progress --dtype bf16 \
  --seq-len-warmup 0 --eval-batches 0 --checkpoint-dir "$work/ck" >"$work/train.log"
python3 -c "import json, sys; d = json.load(open('$work/ck/step-000003/config.json')); sys.exit(d['torch_dtype'] != 'bfloat16')" ||
  fail "a --dtype bf16 checkpoint's config.json does not say bfloat16"
printf '5 6 7\n1 2 3 4 5 6 7 8 9 10 11 12 13\n' >"$work/prompts.txt"
gen=(generate --checkpoint "$work/ck" --prompts "$work/prompts.txt" --token-ids --max-new-tokens 6 --json)
for layout in "1 --strategy single" "2 --strategy tp" "2 --strategy tsp" "2 --strategy tsp --kv-layout sequence" \
  "4 --strategy tpsp --tp 2 --sp 2"; do
  read -r -a l <<<"$layout"
  run "${l[0]}" "$tsp" "${gen[@]}" "${l[@]:1}" --dtype float32 >"$work/f32.json"
  run "${l[0]}" "$tsp" "${gen[@]}" "${l[@]:1}" --dtype bf16 >"$work/b16.json"
  python3 - "$work/f32.json" "$work/b16.json" "$layout" <<'PY'
import json, sys
f32, b16 = (json.load(open(p)) for p in sys.argv[1:3])
what = sys.argv[3]
assert b16["dtype"] == "bf16" and f32["dtype"] == "float32", (what, b16["dtype"], f32["dtype"])
assert [2 * b for b in b16["kv_cache_bytes_per_rank"]] == f32["kv_cache_bytes_per_rank"], \
    (what, b16["kv_cache_bytes_per_rank"], f32["kv_cache_bytes_per_rank"])
assert all(len(s["tokens"]) == len(t["tokens"]) for s, t in zip(b16["sequences"], f32["sequences"])), what
print(f"{what}: bf16 KV cache {b16['kv_cache_bytes_per_rank']} bytes per rank, float32 {f32['kv_cache_bytes_per_rank']}")
PY
done
printf '5 6 7 8 9 10 11 12\n' >"$work/tokens.txt"
run 2 "$tsp" eval --checkpoint "$work/ck" --tokens "$work/tokens.txt" --strategy tsp --dtype bf16 --json >"$work/eval.json"
python3 -c "import json, math, sys; d = json.load(open('$work/eval.json')); sys.exit(not (d['dtype'] == 'bf16' and math.isfinite(d['loss'])))" ||
  fail "eval --dtype bf16: $(cat "$work/eval.json")"
echo "generate_bf16.sh: ok"
