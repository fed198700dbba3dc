#!/usr/bin/env bash
# The user's path from text to a trained model, through the real binary: a SentencePiece tokenizer trained with
# spm_train, `tsp tokenize` into a dataset (checked token by token against `tsp tokenize --text`), `tsp train
# --dataset` on NP ranks with a validation split (losses logged, tokenizer copied into the checkpoint), then
# `tsp eval --text` and `tsp generate --prompt` through the checkpoint's tokenizer.
# dataset_roundtrip.sh TSP_BINARY MPIEXEC NP TINY_CONFIG TEXT_FILE...
set -euo pipefail
tsp=$1; mpiexec=$2; np=$3; config=$4; shift 4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat "$@" >"$work/all.txt"
mkdir -p "$work/tok"
spm_train --input="$work/all.txt" --model_prefix="$work/tok/tokenizer" --vocab_size=500 --model_type=bpe \
  --character_coverage=0.99 --byte_fallback=true --minloglevel=2 >/dev/null 2>&1
python3 - "$config" "$work" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["vocab_size"] = 500
json.dump(c, open(f"{sys.argv[2]}/config.json", "w"))
# Inputs: the text files as documents separated by blank lines, and a .jsonl of a few more.
paras = [p.strip() for p in open(f"{sys.argv[2]}/all.txt", encoding="utf-8").read().split("\n\n") if p.strip()]
open(f"{sys.argv[2]}/docs.txt", "w", encoding="utf-8").write("\n\n".join(paras[: len(paras) // 2]))
with open(f"{sys.argv[2]}/docs.jsonl", "w", encoding="utf-8") as f:
    for p in paras[len(paras) // 2:]:
        f.write(json.dumps({"text": p}) + "\n")
PY

"$tsp" tokenize --tokenizer "$work/tok" --input "$work/docs.txt" "$work/docs.jsonl" --separator $'\n\n' \
  --output "$work/data" --json >"$work/tokenize.json"
test -f "$work/data/tokenizer/tokenizer.model"
# The dataset holds exactly what `tsp tokenize --text` gives for each document, plus EOS.
python3 - "$tsp" "$work" <<'PY'
import json, struct, subprocess, sys
tsp, w = sys.argv[1], sys.argv[2]
m = json.load(open(f"{w}/data/manifest.json"))
assert m["dtype"] == "uint16" and m["vocab_size"] == 500, m
raw = open(f"{w}/data/tokens.bin", "rb").read()
tokens = struct.unpack(f"<{len(raw)//2}H", raw)
idx = open(f"{w}/data/documents.idx", "rb").read()
offsets = struct.unpack(f"<{len(idx)//8}Q", idx)
assert len(offsets) == m["documents"] + 1 and offsets[-1] == len(tokens) == m["tokens"], (len(offsets), m)
first = open(f"{w}/docs.txt", encoding="utf-8").read().split("\n\n")
last = [json.loads(l)["text"] for l in open(f"{w}/docs.jsonl", encoding="utf-8")]
docs = [d for d in first + last if d]
assert len(docs) == m["documents"], (len(docs), m["documents"])
for k in (0, 1, len(first) - 1, len(first), len(docs) - 1):
    ids = json.loads(subprocess.run([tsp, "tokenize", "--tokenizer", f"{w}/tok", "--text", docs[k], "--json"],
                                    check=True, capture_output=True, text=True).stdout)["ids"]
    assert list(tokens[offsets[k]:offsets[k + 1]]) == ids + [m["eos_id"]], k
PY

"$mpiexec" --oversubscribe -np "$np" "$tsp" train --strategy tsp --config "$work/config.json" --dataset "$work/data" \
  --val-fraction 0.2 --eval-every 2 --eval-batches 2 --steps 6 --seq-len 64 --batch 2 --seq-len-warmup 0 --lr 3e-3 \
  --checkpoint-dir "$work/ck" --json >"$work/train.json" 2>"$work/train.log"
test -f "$work/ck/step-000006/tokenizer.model"
printf 'The model reads this line.\nAnd this one, with its own tokenizer.\n' >"$work/eval.txt"
"$tsp" eval --checkpoint "$work/ck" --text "$work/eval.txt" --json >"$work/eval_text.json"
for line in "The model reads this line." "And this one, with its own tokenizer."; do
  "$tsp" tokenize --tokenizer "$work/ck/step-000006" --text "$line" | cat
done >"$work/eval_ids.txt"
"$tsp" eval --checkpoint "$work/ck" --tokens "$work/eval_ids.txt" --json >"$work/eval_ids.json"
"$mpiexec" --oversubscribe -np "$np" "$tsp" generate --strategy tsp --checkpoint "$work/ck" --prompt "The model" \
  --max-new-tokens 5 --json >"$work/gen.json" 2>"$work/gen.log"
grep -q "tokenizer: SentencePiece" "$work/gen.log"

python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
t = json.load(open(f"{w}/train.json"))
vals = [s for s in t["log"] if "val_loss" in s]
assert [s["step"] for s in vals] == [2, 4, 6], vals
assert all(0 < s["val_loss"] < 8 for s in vals) and t["val_loss"] == vals[-1]["val_loss"], t
assert "SentencePiece" in t["tokenizer"] and all("data_ms" in s for s in t["log"]), t
a, b = json.load(open(f"{w}/eval_text.json")), json.load(open(f"{w}/eval_ids.json"))
assert "SentencePiece" in a["tokenizer"], a
assert a["tokens"] == b["tokens"] and a["loss"] == b["loss"], (a, b)  # --text went through the same tokenizer
g = json.load(open(f"{w}/gen.json"))["sequences"][0]
assert 1 <= len(g["tokens"]) <= 5 and isinstance(g["text"], str), g
print(f"dataset round trip ok: val loss {[round(s['val_loss'], 3) for s in vals]}, eval loss {a['loss']:.4f} "
      f"over {a['tokens']} tokens (text == ids), generated {g['text']!r}")
PY
