#!/usr/bin/env bash
# Logits of a trained checkpoint against an independent numpy transcription of HF's Llama-family models
# (tests/reference/hf_llama_reference.py): the model's semantics, not just its self-consistency.
# hf_reference.sh TSP_BINARY CONFIG_JSON [MPIEXEC TRAIN_NP "TRAIN_LAYOUT" EVAL_NP "EVAL_LAYOUT"]
# With MPIEXEC the checkpoint is trained on TRAIN_NP ranks with the layout flags TRAIN_LAYOUT (e.g.
# "--strategy tsp") and evaluated on EVAL_NP ranks with EVAL_LAYOUT, so that what a layout saves (replicated
# KV heads written once) and what another loads are checked against the reference too.
set -euo pipefail
tsp=$1; config=$2
mpiexec=${3:-}; train_np=${4:-1}; train_layout=${5:-}; eval_np=${6:-1}; eval_layout=${7:-}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {
  local np=$1; shift
  if [ -n "$mpiexec" ]; then "$mpiexec" --oversubscribe -np "$np" "$tsp" "$@"; else "$tsp" "$@"; fi
}
# A few steps at a high learning rate move every weight, norm and bias well away from its initial value.
# shellcheck disable=SC2086
run "$train_np" train --config "$config" $train_layout --seq-len 256 --batch 2 --steps 3 --lr 0.02 --warmup 0 \
  --no-progress --checkpoint-dir "$work/ck" >/dev/null
# Sequences of 17, 7, 1 and 100 tokens (100 > max_position_embeddings of the dynamic-RoPE config).
{
  printf '1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n200 100 50 25 12 6 3\n7\n'
  for i in $(seq 1 100); do printf '%d ' $(( (i * 37) % 251 )); done
  printf '\n'
} >"$work/tokens.txt"
# shellcheck disable=SC2086
run "$eval_np" eval --checkpoint "$work/ck" $eval_layout --tokens "$work/tokens.txt" --logits-out "$work/logits.bin" \
  >/dev/null
/usr/bin/python3 "$here/../reference/hf_llama_reference.py" "$work/ck" "$work/tokens.txt" "$work/logits.bin" 1e-5
