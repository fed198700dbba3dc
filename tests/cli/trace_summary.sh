#!/usr/bin/env bash
# trace_summary.sh TSP SUMMARY: a bf16-products bench with --trace, then scripts/trace_summary on its trace.
# Fails unless the summary counts only the timed steps, finds the attention and MLP compute spans, the flash
# kernel's spans nested inside the attention block's (never longer than it) and the bf16 rounding spans of the
# linear layers, and unless a missing trace gets a clear error and a non-zero exit.
set -euo pipefail
tsp=$1 summary=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$tsp" bench --strategy single --preset tiny --seq-len 64 --steps 2 --warmup 1 --sgemm-n 128 \
  --matmul-precision bf16 --trace "$work/t.json" --json >"$work/bench.json" 2>"$work/bench.err" ||
  { tail -5 "$work/bench.err"; echo "FAIL: the bench exited non-zero"; exit 1; }
python3 "$summary" --json "$work/t.json" >"$work/summary.json"
# Into a file, not a pipe: grep -q stops reading at the first match, and under pipefail the writer's broken
# pipe would fail the test.
python3 "$summary" "$work/t.json" >"$work/table.txt"
grep -q "2 timed steps" "$work/table.txt" || { cat "$work/table.txt"; echo "FAIL: the table does not count 2 steps"; exit 1; }
python3 - "$work/bench.json" "$work/summary.json" <<'PY'
import json, sys
bench, s = (json.load(open(f)) for f in sys.argv[1:])
assert s["steps"] == 2, s["steps"]
assert abs(s["step_seconds"] - bench["step_seconds"]) <= 0.05 * bench["step_seconds"] + 1e-3, (s, bench)
sp = {r["name"]: r for r in s["spans"]}
for name in ("attn.fwd", "attn.bwd", "mlp.fwd", "mlp.bwd", "attention.flash_fwd", "attention.flash_bwd",
             "linear.bf16_convert", "optimizer"):
    assert name in sp, (name, sorted(sp))
assert "bench.warmup" not in sp and "bench.step" not in sp, sorted(sp)
# tiny has 2 layers: one attention forward per layer and step, and the flash kernel inside it.
assert sp["attn.fwd"]["calls_per_step"] == 2 and sp["attention.flash_fwd"]["calls_per_step"] == 2, sp
assert sp["attention.flash_fwd"]["seconds_per_step"] <= sp["attn.fwd"]["seconds_per_step"], sp
assert sp["attention.flash_bwd"]["seconds_per_step"] <= sp["attn.bwd"]["seconds_per_step"], sp
assert sp["linear.bf16_convert"]["category"] == "convert" and sp["attention.flash_fwd"]["category"] == "kernel"
print("trace_summary.sh: ok")
PY
if python3 "$summary" "$work/missing.json" 2>"$work/err"; then echo "FAIL: a missing trace exited 0"; exit 1; fi
grep -q "not a readable tsp Chrome trace" "$work/err" || { cat "$work/err"; echo "FAIL: no clear error"; exit 1; }
