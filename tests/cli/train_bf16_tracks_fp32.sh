#!/usr/bin/env bash
# train_bf16_tracks_fp32.sh "TSP" "BF16 FLAGS" ARGS...: trains twice with ARGS (TSP: the tsp binary, or a
# launcher and it, e.g. "mpiexec -np 2 build/release/tsp"), in fp32 and with BF16 FLAGS
# ("--matmul-precision bf16": bf16 products; "--dtype bf16": the bf16 policy, core/precision.h), and fails
# unless the bf16 run's mean loss over its last 50 steps lies within 2 % of the fp32 run's, and the two runs
# really differ (bf16 is in use). docs/performance.md and docs/precision.md have the same comparison on
# `small` (scripts/docs_figures train-bf16-products, train-dtype-bf16).
set -euo pipefail
read -r -a tsp <<<"$1"; shift
read -r -a bf16_flags <<<"$1"; shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${tsp[@]}" train "$@" --dtype float32 --matmul-precision fp32 --json >"$work/fp32.json" 2>"$work/fp32.err" ||
  { grep -v '^step ' "$work/fp32.err" | tail -5; echo "FAIL: the fp32 run exited non-zero"; exit 1; }
"${tsp[@]}" train "$@" "${bf16_flags[@]}" --json >"$work/bf16.json" 2>"$work/bf16.err" ||
  { grep -v '^step ' "$work/bf16.err" | tail -5; echo "FAIL: the bf16 run exited non-zero"; exit 1; }
python3 - "$work/fp32.json" "$work/bf16.json" <<'PY'
import json, sys
fp32, bf16 = (json.load(open(f)) for f in sys.argv[1:])
assert bf16["matmul_precision"] == "bf16" or bf16["dtype"] == "bf16", (bf16["matmul_precision"], bf16["dtype"])
lf, lb = ([e["loss"] for e in j["log"]] for j in (fp32, bf16))
assert len(lf) == len(lb) >= 50, (len(lf), len(lb))
assert lf != lb, "the bf16 run gave the fp32 run's losses bit for bit: bf16 is not in use"
mf, mb = sum(lf[-50:]) / 50, sum(lb[-50:]) / 50
rel = (mb - mf) / mf
print(f"mean loss of the last 50 steps: fp32 {mf:.5f}, bf16 {mb:.5f} ({100 * rel:+.2f} %); held-out accuracy "
      f"fp32 {100 * fp32['recall_accuracy']:.1f} %, bf16 {100 * bf16['recall_accuracy']:.1f} %")
if abs(rel) > 0.02:
    sys.exit("FAIL: bf16's mean loss over the last 50 steps is more than 2 % from fp32's")
print("train_bf16_tracks_fp32.sh: ok")
PY
