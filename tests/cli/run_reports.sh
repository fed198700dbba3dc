#!/usr/bin/env bash
# What train --json and bench --json report about a run (issue 10, items 12 and 13): communication per step in
# train equals bench's per-step figure for the same layout and shape (the run's total is reported separately),
# and --trace writes FILE.rank<r>.json per rank, as the JSON lists and the docs say.
# run_reports.sh TSP_BINARY MPIEXEC
set -euo pipefail
tsp=$1; mpiexec=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() { "$mpiexec" --oversubscribe -np 2 "$tsp" "$@"; }
shape=(--strategy tsp --preset tiny --seq-len 128 --batch 2)
run train "${shape[@]}" --steps 3 --seq-len-warmup 0 --eval-batches 1 --json --trace "$work/train.json" \
  >"$work/train_out.json"
run bench "${shape[@]}" --steps 1 --warmup 1 --sgemm-n 64 --json --trace "$work/bench.json" >"$work/bench_out.json"
python3 - "$work" <<'PY'
import json, os, sys
w = sys.argv[1]
train, bench = json.load(open(f"{w}/train_out.json")), json.load(open(f"{w}/bench_out.json"))
assert "comm" not in train, "train --json names its communication per step or total, never just 'comm'"
per_step, total = train["comm_per_step"], train["comm_total"]
measured = bench["per_rank"][0]["comm"]
strip = lambda c: {p: {l: (e["op"], e["calls"], e["recv_bytes"]) for l, e in ls.items()} for p, ls in c.items()}
assert strip(per_step) == strip(measured), (strip(per_step), strip(measured))
kv_step = per_step["forward"]["attn.kv_allgather"]["recv_bytes"]
# 3 training steps and one held-out forward pass, all at 2 x 128 tokens.
assert total["forward"]["attn.kv_allgather"]["recv_bytes"] == 4 * kv_step, (total, kv_step)
assert train["comm_per_step_shape"] == {"batch": 2, "seq_len": 128, "step": 3}, train["comm_per_step_shape"]
for doc, stem in ((train, "train"), (bench, "bench")):
    want = [f"{w}/{stem}.rank0.json", f"{w}/{stem}.rank1.json"]
    assert doc["trace_files"] == want, doc["trace_files"]
    for f in want:
        assert json.load(open(f))["traceEvents"], f
    assert not os.path.exists(f"{w}/{stem}.json"), f"{stem}.json written on 2 ranks"
print(f"run reports ok: {kv_step} B of K/V gathered per step, equal in train and bench")
PY
