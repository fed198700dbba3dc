#!/usr/bin/env bash
# --save-dtype bf16: the checkpoints' model.safetensors is HF BF16 (config.json says bfloat16), and resuming
# from one continues bit for bit (the exact weights are kept as master.* in optimizer.safetensors).
# save_dtype.sh TSP MPIEXEC NP LAYOUT...
source "$(dirname "$0")/lib.sh" "$@"
common=(train "${layout[@]}" --preset tiny --seq-len 128 --batch 2 --steps 8 --seq-len-warmup 0 --warmup 2
  --eval-batches 0 --no-progress --json --save-dtype bf16)
run "$tsp" "${common[@]}" --save-every 4 --checkpoint-dir "$work/ck" >"$work/a.json" 2>"$work/a.err" ||
  fail "train: $(tail -3 "$work/a.err")"
python3 - "$work/ck/step-000004" <<'PY'
import json, struct, sys
d = sys.argv[1]
assert json.load(open(f"{d}/config.json"))["torch_dtype"] == "bfloat16"
def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))
model = {k: v for k, v in header(f"{d}/model.safetensors").items() if k != "__metadata__"}
assert model and all(v["dtype"] == "BF16" for v in model.values()), {v["dtype"] for v in model.values()}
state = header(f"{d}/optimizer.safetensors")
masters = [k for k in state if k.startswith("master.")]
assert len(masters) == len(model) and all(state[k]["dtype"] == "F32" for k in masters)
print(f"{len(model)} BF16 weights, {len(masters)} F32 masters")
PY
# Resume from step 4 in a fresh directory: steps 5..8 must equal the uninterrupted run's.
mkdir -p "$work/ck2"
cp -r "$work/ck/step-000004" "$work/ck2/"
echo step-000004 >"$work/ck2/latest"
run "$tsp" "${common[@]}" --checkpoint-dir "$work/ck2" --resume auto >"$work/b.json" 2>"$work/b.err" ||
  fail "resume: $(tail -3 "$work/b.err")"
grep -q "resumed at step 4" "$work/b.err" || fail "did not resume at step 4"
python3 - "$work/a.json" "$work/b.json" <<'PY'
import json, sys
a = {e["step"]: e for e in json.load(open(sys.argv[1]))["log"]}
b = {e["step"]: e for e in json.load(open(sys.argv[2]))["log"]}
assert sorted(b) == [5, 6, 7, 8], sorted(b)
for s in b:
    for k in ("loss", "grad_norm", "lr"):
        assert a[s][k] == b[s][k], f"step {s}: {k} {b[s][k]!r} != uninterrupted {a[s][k]!r}"
print("bit for bit: steps 5-8 resumed from a bf16-saved checkpoint equal the uninterrupted run")
PY
echo "save_dtype.sh: ok"
