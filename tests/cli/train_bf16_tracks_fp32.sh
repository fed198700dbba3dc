#!/usr/bin/env bash
# train_bf16_tracks_fp32.sh TSP ARGS...: trains twice with ARGS, with fp32 products and with bf16 products
# (--matmul-precision), and fails unless the bf16 run's mean loss over its last 50 steps lies within 2 % of
# the fp32 run's, and the two runs really differ (bf16 products are in use). docs/performance.md, "bf16
# products", has the same comparison on `small` (scripts/docs_figures train-bf16-products).
set -euo pipefail
tsp=$1; shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for p in fp32 bf16; do
  "$tsp" train "$@" --matmul-precision "$p" --json >"$work/$p.json" 2>"$work/$p.err" ||
    { grep -v '^step ' "$work/$p.err" | tail -5; echo "FAIL: the $p run exited non-zero"; exit 1; }
done
python3 - "$work/fp32.json" "$work/bf16.json" <<'PY'
import json, sys
fp32, bf16 = (json.load(open(f)) for f in sys.argv[1:])
assert bf16["matmul_precision"] == "bf16", bf16["matmul_precision"]
lf, lb = ([e["loss"] for e in j["log"]] for j in (fp32, bf16))
assert len(lf) == len(lb) >= 50, (len(lf), len(lb))
assert lf != lb, "bf16 products gave the fp32 run's losses bit for bit: the bf16 path is not in use"
mf, mb = sum(lf[-50:]) / 50, sum(lb[-50:]) / 50
rel = (mb - mf) / mf
print(f"mean loss of the last 50 steps: fp32 {mf:.5f}, bf16 {mb:.5f} ({100 * rel:+.2f} %); held-out accuracy "
      f"fp32 {100 * fp32['recall_accuracy']:.1f} %, bf16 {100 * bf16['recall_accuracy']:.1f} %")
if abs(rel) > 0.02:
    sys.exit("FAIL: bf16's mean loss over the last 50 steps is more than 2 % from fp32's")
print("train_bf16_tracks_fp32.sh: ok")
PY
