#!/usr/bin/env bash
# Logits of a trained checkpoint against an independent numpy transcription of HF LlamaForCausalLM
# (tests/reference/hf_llama_reference.py): the model's semantics, not just its self-consistency.
# hf_reference.sh TSP_BINARY CONFIG_JSON
set -euo pipefail
tsp=$1; config=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$tsp" train --config "$config" --seq-len 256 --batch 2 --steps 3 --no-progress --checkpoint-dir "$work/ck" >/dev/null
printf '1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n200 100 50 25 12 6 3\n7\n' >"$work/tokens.txt"
"$tsp" eval --checkpoint "$work/ck" --tokens "$work/tokens.txt" --logits-out "$work/logits.bin" >/dev/null
/usr/bin/python3 "$here/../reference/hf_llama_reference.py" "$work/ck" "$work/tokens.txt" "$work/logits.bin" 1e-5
