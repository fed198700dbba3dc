#!/usr/bin/env bash
# no_overlap.sh TSP MPIEXEC: tsp bench --no-overlap against the same bench with overlap, TSP on 2 ranks. Fails
# unless the two report the same loss bit for bit and the same calls and bytes per (phase, label) on every
# rank (only the waiting moves), and unless the report says which one ran.
set -euo pipefail
tsp=$1 mpiexec=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(bench --strategy tsp --preset tiny --seq-len 64 --batch 2 --steps 2 --warmup 1 --sgemm-n 128)
"$mpiexec" --oversubscribe -np 2 "$tsp" "${args[@]}" --json >"$work/on.json" 2>"$work/on.err" ||
  { tail -5 "$work/on.err"; echo "FAIL: the overlapped bench exited non-zero"; exit 1; }
"$mpiexec" --oversubscribe -np 2 "$tsp" "${args[@]}" --no-overlap --json >"$work/off.json" 2>"$work/off.err" ||
  { tail -5 "$work/off.err"; echo "FAIL: the --no-overlap bench exited non-zero"; exit 1; }
"$mpiexec" --oversubscribe -np 2 "$tsp" "${args[@]}" --no-overlap >"$work/off.txt" 2>&1 ||
  { tail -5 "$work/off.txt"; echo "FAIL: the --no-overlap report exited non-zero"; exit 1; }
grep -q "no overlap (every transfer waited when posted)" "$work/off.txt" ||
  { head -5 "$work/off.txt"; echo "FAIL: the report does not say the overlap is off"; exit 1; }
python3 - "$work/on.json" "$work/off.json" <<'PY'
import json, sys
on, off = (json.load(open(f)) for f in sys.argv[1:])
assert on["overlap"] is True and off["overlap"] is False, (on["overlap"], off["overlap"])
assert on["loss"] == off["loss"], (on["loss"], off["loss"])
def counts(doc):
    return [{(ph, lab): (c["calls"], c["payload_bytes"], c["recv_bytes"]) for ph, labs in r["comm"].items()
             for lab, c in labs.items()} for r in doc["per_rank"]]
a, b = counts(on), counts(off)
assert a == b, "calls or bytes differ"
assert any(k[1].startswith("mlp.") for k in a[0]), sorted(a[0])
print(f"no_overlap.sh: ok (loss {on['loss']!r} both; {len(a[0])} (phase, label) counters equal on each rank)")
PY
