#!/usr/bin/env bash
# The user-facing round trip through the real binary: train a checkpoint with a layout on NP ranks (default
# TSP), then eval and generate from it single-device and under the layout, and require the same answers (loss,
# logits, tokens).
# pipeline.sh TSP_BINARY MPIEXEC NP [LAYOUT OPTIONS, e.g. --strategy tpsp --tp 2 --sp 2 --sequence-parallel]
set -euo pipefail
tsp=$1; mpiexec=$2; np=$3; shift 3
layout=("$@")
[ ${#layout[@]} -gt 0 ] || layout=(--strategy tsp)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() { "$mpiexec" --oversubscribe -np "$@"; }

run "$np" "$tsp" train "${layout[@]}" --preset tiny --seq-len 256 --batch 2 --steps 3 --no-progress \
  --seq-len-warmup 0 --eval-batches 1 --checkpoint-dir "$work/ck" --trace "$work/trace.json" >"$work/train.log"
test -f "$work/ck/latest" && test -f "$work/ck/step-000003/model.safetensors" && test -f "$work/ck/step-000003/config.json"

printf '1 2 3 4 5 6 7 8 9 10 11\n200 100 50 25 12 6 3\n' >"$work/tokens.txt"
"$tsp" eval --checkpoint "$work/ck" --tokens "$work/tokens.txt" --json --logits-out "$work/single.bin" >"$work/single.json"
run "$np" "$tsp" eval "${layout[@]}" --checkpoint "$work/ck" --tokens "$work/tokens.txt" --json \
  --logits-out "$work/tsp.bin" >"$work/tsp.json"

"$tsp" generate --checkpoint "$work/ck" --prompt-tokens "5 6 7" --max-new-tokens 6 --json >"$work/gen_single.json"
run "$np" "$tsp" generate "${layout[@]}" --checkpoint "$work/ck" --prompt-tokens "5 6 7" --max-new-tokens 6 \
  --json >"$work/gen_tsp.json"

python3 - "$work" "$np" "${layout[*]}" <<'PY'
import json, struct, sys, math
w = sys.argv[1]
s, t = json.load(open(f"{w}/single.json")), json.load(open(f"{w}/tsp.json"))
assert s["tokens"] == t["tokens"] == 16, (s, t)  # 10 + 6 predicted tokens
assert abs(s["loss"] - t["loss"]) <= 1e-5 * abs(s["loss"]), (s["loss"], t["loss"])
a, b = open(f"{w}/single.bin", "rb").read(), open(f"{w}/tsp.bin", "rb").read()
assert len(a) == len(b) == 18 * 256 * 4, (len(a), len(b))
x, y = struct.unpack(f"{len(a)//4}f", a), struct.unpack(f"{len(b)//4}f", b)
err = math.sqrt(sum((p - q) ** 2 for p, q in zip(x, y)) / sum(q * q for q in y))
assert err <= 1e-5, err
g1, g2 = json.load(open(f"{w}/gen_single.json")), json.load(open(f"{w}/gen_tsp.json"))
import glob
traces = sorted(glob.glob(f"{w}/trace.rank*.json"))
assert len(traces) == int(sys.argv[2]), traces  # one Chrome trace per rank
for t in traces:
    ev = json.load(open(t))["traceEvents"]
    cats = {e.get("cat") for e in ev if e.get("ph") == "X"}
    assert {"comm", "compute"} <= cats, (t, cats)
    if any(k in sys.argv[3] for k in ("strategy sp", "strategy tpsp", "strategy tsp")):  # K/V gathered
        assert any(e["name"] in ("attn.kv_allgather", "sp.kv_allgather") for e in ev), t
t1, t2 = g1["sequences"][0]["tokens"], g2["sequences"][0]["tokens"]
assert t1 == t2 and len(t1) == 6, (g1, g2)
print(f"pipeline ok ({sys.argv[3]}): loss {s['loss']:.6f} both ways, logits rel err {err:.2e}, generated {t1}")
PY
