#!/usr/bin/env bash
# Test set-up for SentencePiece parity: trains small BPE and unigram models (with byte fallback) with Debian's
# spm_train on the test corpus and writes spm_encode's ids (with BOS) and spm_decode's text for every line;
# test_tokenizer_parity then requires tsp's tokenizer.model support to give the same.
# spm_reference.sh OUT_DIR CORPUS_JSON TEXT_FILE
set -euo pipefail
work=$1; corpus=$2; text=$3
rm -rf "$work"
mkdir -p "$work"
python3 - "$corpus" "$text" "$work/lines.txt" <<'PY'
import json, sys
lines = [l for s in json.load(open(sys.argv[1])) for l in s.split("\n")]
lines += open(sys.argv[2], encoding="utf-8").read().split("\n")
# spm_encode reads lines: keep non-empty ones without carriage returns (they would end a line).
lines = [l.replace("\r", "") for l in lines if l.strip()]
open(sys.argv[3], "w", encoding="utf-8").write("\n".join(lines) + "\n")
PY
for model_type in bpe unigram; do
  mkdir -p "$work/$model_type"
  spm_train --input="$work/lines.txt" --model_prefix="$work/$model_type/tokenizer" --vocab_size=600 \
    --model_type=$model_type --character_coverage=0.99 --byte_fallback=true --minloglevel=2 >/dev/null 2>&1
  spm_encode --model="$work/$model_type/tokenizer.model" --output_format=id --extra_options=bos \
    <"$work/lines.txt" >"$work/$model_type/ids.txt"
  spm_decode --model="$work/$model_type/tokenizer.model" --input_format=id <"$work/$model_type/ids.txt" \
    >"$work/$model_type/decoded.txt"
done
