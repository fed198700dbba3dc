#!/usr/bin/env bash
# HF sharded checkpoints through the real binary: the same run saved whole and with --max-shard-size 40KB
# (TSP on NP ranks) holds the same tensors, byte for byte, read here by an independent Python parser of the
# index and the shard headers; the sharded checkpoint evaluates like the whole one single-device and under
# the layout, and a run resumes from it.
# sharded_checkpoint.sh TSP_BINARY MPIEXEC NP
set -euo pipefail
tsp=$1; mpiexec=$2; np=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() { "$mpiexec" --oversubscribe -np "$@"; }
train=(train --strategy tsp --preset tiny --seq-len 128 --batch 2 --no-progress --seq-len-warmup 0
       --eval-batches 0 --json)

run "$np" "$tsp" "${train[@]}" --steps 2 --checkpoint-dir "$work/whole" >/dev/null
run "$np" "$tsp" "${train[@]}" --steps 2 --checkpoint-dir "$work/shards" --max-shard-size 40KB >/dev/null
ck=$work/shards/step-000002
test -f "$ck/model.safetensors.index.json" && test ! -f "$ck/model.safetensors"
test -f "$ck/optimizer.safetensors.index.json" && test -f "$work/whole/step-000002/model.safetensors"

python3 - "$work/whole/step-000002" "$ck" <<'PY'
import json, os, struct, sys
whole, shards = sys.argv[1], sys.argv[2]

def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in header.items()}

for stem in ("model", "optimizer"):
    ref = tensors(f"{whole}/{stem}.safetensors")
    index = json.load(open(f"{shards}/{stem}.safetensors.index.json"))
    files = sorted(set(index["weight_map"].values()))
    assert len(files) >= 2, files
    assert all(f.startswith(f"{stem}-") and f.endswith(f"-of-{len(files):05d}.safetensors") for f in files), files
    got = {}
    for f in files:
        part = tensors(f"{shards}/{f}")
        assert os.path.getsize(f"{shards}/{f}") <= 40_000 + 4096 or len(part) == 1, f
        for k in part:
            assert index["weight_map"][k] == f, (k, f)
        got.update(part)
    assert got == ref, sorted(set(got) ^ set(ref))
    assert index["metadata"]["total_size"] == sum(len(v[2]) for v in ref.values())
    print(f"{stem}: {len(ref)} tensors in {len(files)} shards, identical to the unsharded save")
PY

printf '1 2 3 4 5 6 7 8 9 10 11\n' >"$work/tokens.txt"
"$tsp" eval --checkpoint "$work/whole" --tokens "$work/tokens.txt" --json >"$work/whole.json"
"$tsp" eval --checkpoint "$work/shards" --tokens "$work/tokens.txt" --json >"$work/single.json"
run "$np" "$tsp" eval --strategy tsp --checkpoint "$work/shards" --tokens "$work/tokens.txt" --json >"$work/tsp.json"
run "$np" "$tsp" "${train[@]}" --steps 3 --resume "$work/shards" --checkpoint-dir "$work/resumed" \
  --max-shard-size 40KB >"$work/resumed.json"
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
a, b, c = (json.load(open(f"{w}/{n}.json")) for n in ("whole", "single", "tsp"))
assert a["loss"] == b["loss"], (a["loss"], b["loss"])
assert abs(a["loss"] - c["loss"]) <= 1e-5 * abs(a["loss"]), (a["loss"], c["loss"])
r = json.load(open(f"{w}/resumed.json"))
assert r["steps"] == 3, r["steps"]
print(f"sharded checkpoint: eval loss {a['loss']:.6f} whole, sharded and under tsp; resumed to step 3")
PY
