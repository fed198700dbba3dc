#!/usr/bin/env bash
# A checkpoint trained under TSP generates the same tokens under every other layout, with the KV cache and
# without it, for a batch of prompts of different lengths: single, tp, sp, tsp (heads and sequence KV
# layouts), the 2x2 mesh; sampling with a seed too. Stop tokens end a sequence (finish_reason "eos"),
# max_position_embeddings ends it with finish_reason "length_limit" and a warning, and the JSON document has
# the fields docs/inference.md lists.
# generate_layouts.sh TSP_BINARY MPIEXEC CONFIG_JSON
set -euo pipefail
tsp=$1; mpiexec=$2; config=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() { "$mpiexec" --oversubscribe -np "$@"; }

run 2 "$tsp" train --strategy tsp --config "$config" --seq-len 128 --batch 2 --steps 3 --no-progress \
  --seq-len-warmup 0 --eval-batches 0 --checkpoint-dir "$work/ck" >"$work/train.log"
printf '5 6 7\n1 2 3 4 5 6 7 8 9 10 11 12 13\n200 100 50 25 12 6 3 1\n' >"$work/prompts.txt"
gen=(generate --checkpoint "$work/ck" --prompts "$work/prompts.txt" --token-ids --max-new-tokens 8 --json)

"$tsp" "${gen[@]}" >"$work/single.json"
"$tsp" "${gen[@]}" --no-kv-cache >"$work/nocache.json"
run 2 "$tsp" "${gen[@]}" --strategy tp >"$work/tp.json"
run 2 "$tsp" "${gen[@]}" --strategy sp >"$work/sp.json"
run 2 "$tsp" "${gen[@]}" --strategy tsp >"$work/tsp_heads.json"
run 2 "$tsp" "${gen[@]}" --strategy tsp --kv-layout sequence >"$work/tsp_sequence.json"
run 4 "$tsp" "${gen[@]}" --strategy tpsp --tp 2 --sp 2 >"$work/tpsp.json"
sample=(--temperature 0.8 --top-k 20 --top-p 0.9 --seed 11)
"$tsp" "${gen[@]}" "${sample[@]}" >"$work/sample_single.json"
run 2 "$tsp" "${gen[@]}" "${sample[@]}" --strategy tsp --kv-layout sequence >"$work/sample_tsp.json"

# A stop token: the third token greedy decoding gives the first prompt.
stop=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['sequences'][0]['tokens'][2])" "$work/single.json")
run 2 "$tsp" "${gen[@]}" --strategy tsp --stop-token "$stop" >"$work/stop.json"

# max_position_embeddings 40 (RoPE has no learned positions, so the weights still fit): a 36-token prompt
# has room for 4 new tokens.
cp -r "$work/ck/$(cat "$work/ck/latest")" "$work/short"
# Edited by hand, the copy is no longer the checkpoint its manifest describes (docs/reliability.md): drop it.
rm "$work/short/manifest.json"
python3 - "$work/short/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["max_position_embeddings"] = 40; json.dump(c, open(sys.argv[1], "w"))
PY
seq 1 36 | tr '\n' ' ' >"$work/long.txt"; echo >>"$work/long.txt"
run 2 "$tsp" generate --checkpoint "$work/short" --prompts "$work/long.txt" --token-ids --max-new-tokens 10 \
  --strategy tsp --json >"$work/limit.json" 2>"$work/limit.err"

python3 - "$work" "$stop" <<'PY'
import json, sys
w, stop = sys.argv[1], int(sys.argv[2])
load = lambda n: json.load(open(f"{w}/{n}.json"))
ref = load("single")
want = [s["tokens"] for s in ref["sequences"]]
assert [len(t) for t in want] == [8, 8, 8] and all(s["finish_reason"] == "length" for s in ref["sequences"]), ref
for k in ("prefill_seconds", "decode_seconds", "decode_steps", "time_per_output_token_s", "output_tokens_per_s",
          "kv_cache_bytes_per_rank", "strategy", "ranks"):
    assert k in ref, k
assert ref["decode_steps"] == 7 and ref["kv_cache_bytes_per_rank"][0] > 0, ref
for name, ranks in (("nocache", 1), ("tp", 2), ("sp", 2), ("tsp_heads", 2), ("tsp_sequence", 2), ("tpsp", 4)):
    d = load(name)
    got = [s["tokens"] for s in d["sequences"]]
    assert got == want, (name, got, want)
    assert d["ranks"] == ranks and len(d["kv_cache_bytes_per_rank"]) == ranks, (name, d["kv_cache_bytes_per_rank"])
assert load("nocache")["kv_cache_bytes_per_rank"] == [0]
h, s = load("tsp_heads")["kv_cache_bytes_per_rank"], load("tsp_sequence")["kv_cache_bytes_per_rank"]
assert h == s and len(set(h)) == 1, (h, s)  # both KV layouts: the same 1/D of the cache on every rank
a, b = load("sample_single"), load("sample_tsp")
assert [x["tokens"] for x in a["sequences"]] == [x["tokens"] for x in b["sequences"]], (a, b)
st = load("stop")["sequences"]
first = want[0].index(stop)
assert st[0]["tokens"] == want[0][: first + 1] and st[0]["finish_reason"] == "eos", st[0]
lim = load("limit")["sequences"][0]
assert len(lim["tokens"]) == 4 and lim["finish_reason"] == "length_limit", lim
err = open(f"{w}/limit.err").read()
assert "length_limit" in err and "max_position_embeddings 40" in err, err
print("generate ok: every layout", want)
PY
