#!/usr/bin/env bash
# Tokenizer throughput (docs/data.md): `tsp tokenize` on a .jsonl corpus built from this repository's docs and
# sources (every file one document, repeated to about MB megabytes), once per tokenizer directory given, plus a
# SentencePiece BPE model trained on the corpus with Debian's spm_train. Prints one markdown row per tokenizer:
# documents, tokens (and their dtype), MB/s.
#   [MB=16] bench/tokenize_throughput.sh TSP_BINARY TOKENIZER_DIR...
set -euo pipefail
tsp=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$root" "$work/corpus.jsonl" "${MB:-16}" <<'PY'
import json, os, sys
root, out, mb = sys.argv[1], sys.argv[2], float(sys.argv[3])
docs = []
for top in ("README.md", "docs", "src", "tests/tokenizer/corpus.json"):
    p = os.path.join(root, top)
    files = [p] if os.path.isfile(p) else sorted(os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs)
    for f in files:
        if f.endswith((".md", ".cpp", ".h", ".json")):
            docs.append(open(f, encoding="utf-8", errors="replace").read())
with open(out, "w") as o:
    size = 0
    while size < mb * 1e6:
        for d in docs:
            line = json.dumps({"text": d}, ensure_ascii=False) + "\n"
            o.write(line)
            size += len(line.encode())
PY
bytes=$(stat -c %s "$work/corpus.jsonl")
dirs=("$@")
if command -v spm_train >/dev/null; then
  # The first 4 MB of the corpus' text: spm_train's training input.
  python3 -c "import json,sys; t=''.join(json.loads(l)['text'] + '\n' for l in open(sys.argv[1])); open(sys.argv[2], 'w').write(t[:4000000])" \
    "$work/corpus.jsonl" "$work/spm.txt"
  mkdir -p "$work/spm"
  spm_train --input="$work/spm.txt" --model_prefix="$work/spm/tokenizer" --vocab_size=600 --model_type=bpe \
    --minloglevel=2 >/dev/null 2>&1
  dirs+=("$work/spm")
fi
echo "corpus: $(printf '%.1f' "$(echo "$bytes / 1000000" | bc -l)") MB of .jsonl"
echo
echo "| tokenizer | documents | tokens | MB/s |"
echo "|---|---|---|---|"
for d in "${dirs[@]}"; do
  rm -rf "$work/ds"
  t0=$(date +%s.%N)
  "$tsp" tokenize --tokenizer "$d" --input "$work/corpus.jsonl" --output "$work/ds" --no-progress >/dev/null \
    2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  t1=$(date +%s.%N)
  python3 - "$work/ds/manifest.json" "$d" "$bytes" "$t0" "$t1" "$work" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
d, nbytes, t0, t1, work = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
name = "SentencePiece tokenizer.model (spm_train BPE, 600)" if d.startswith(work) else d.rstrip("/").split("/")[-2]
docs = m.get("documents", m.get("num_documents"))
tokens = m.get("tokens", m.get("num_tokens"))
print(f"| {name} | {docs:,} | {tokens:,} ({m.get('dtype')}) | {nbytes / 1e6 / (t1 - t0):.2f} |")
PY
done
