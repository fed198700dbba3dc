#!/usr/bin/env python3
"""Measures inference (docs/inference.md) with the real binary and prints markdown tables, each with the command
that produced its rows:

  tpot      time per output token against the context on one rank (B = 1), beside the matrix-product and
            attention work per token; the ratio TPOT(8192) / TPOT(2048).
  recompute 64 new tokens after a 2048-token prompt with the KV cache and with --no-kv-cache (the baseline).
  layouts   decode under tp, tsp --kv-layout heads and tsp --kv-layout sequence (and sp) at D = 2 and 4:
            time per output token and bytes received per step, the planner's projection beside each (device
            profile measured on this machine by `tsp bench --write-device-profile`).
  prefill   the longest prompt each layout prefills within a per-rank memory budget at D = 4 (doubling the
            prompt while the measured tracked peak stays within it).

  scripts/inference_report.py [--tsp build/release/tsp] [--sections tpot,recompute,layouts,prefill]

Run after `scripts/build release`, on a quiet machine (timings are ratios measured in one run).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

MIB = 1024.0 * 1024.0
MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_btl": "self,vader",
    "OMPI_MCA_oob_tcp_if_include": "lo",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}
HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, ranks=1):
    full = (["mpirun", "--oversubscribe", "-np", str(ranks)] if ranks > 1 else []) + cmd
    r = subprocess.run(full, capture_output=True, text=True, env=dict(os.environ, **MPI_ENV))
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(full)} failed: {r.stderr.strip()[-400:]}")
    return r.stdout


def shown(cmd, ranks=1):
    return " ".join((["mpirun", "-np", str(ranks)] if ranks > 1 else []) + ["tsp"] + cmd[1:])


def tpot(args):
    rows = []
    for p in (128, 512, 1024, 2048, 4096, 8192):
        cmd = [args.tsp, "bench", "--decode", "--strategy", "single", "--preset", "small", "--prompt-len", str(p),
               "--new-tokens", "65", "--json"]
        d = json.loads(run(cmd))
        rows.append((p, d, shown(cmd)))
    # small: h 128, I 384, L 2, 4 heads of 32 (MHA), V 256 (src/model/config.cpp).
    h, inter, layers, qd, vocab = 128, 384, 2, 128, 256
    matrix = layers * (4 * h * qd + 3 * h * inter) + vocab * h
    print("| prompt | TPOT mean (ms) | TPOT p50 (ms) | vs 2048 | matmul FLOP/token | attention FLOP/token | KV cache read (MiB) |")
    print("|---|---|---|---|---|---|---|")
    base = next(d for p, d, _ in rows if p == 2048)["tpot_s"]["p50"]
    for p, d, _ in rows:
        ctx = p + 32  # the mean context over the 64 decode steps
        attn = 4 * layers * ctx * qd
        kv = 2 * layers * ctx * qd * 4 / MIB
        print(f"| {p} | {1e3 * d['tpot_s']['mean']:.3f} | {1e3 * d['tpot_s']['p50']:.3f} | "
              f"{d['tpot_s']['p50'] / base:.2f} | {2 * matrix / 1e6:.2f} M | {attn / 1e6:.2f} M | {kv:.2f} |")
    r = next(d for p, d, _ in rows if p == 8192)["tpot_s"]["p50"] / base
    print(f"\nTPOT(8192) / TPOT(2048) = {r:.2f} (p50). Rows: `{rows[0][2]}` with --prompt-len each value.\n")


def recompute(args):
    with tempfile.TemporaryDirectory() as w:
        run([args.tsp, "train", "--preset", "small", "--seq-len", "256", "--steps", "1", "--seq-len-warmup", "0",
             "--eval-batches", "0", "--no-progress", "--checkpoint-dir", f"{w}/ck"])
        with open(f"{w}/prompt.txt", "w") as f:
            f.write(" ".join(str((7 * i) % 250) for i in range(2048)) + "\n")
        out = {}
        for flag in ([], ["--no-kv-cache"]):
            cmd = [args.tsp, "generate", "--checkpoint", f"{w}/ck", "--prompts", f"{w}/prompt.txt", "--token-ids",
                   "--max-new-tokens", "64", "--json"] + flag
            d = json.loads(run(cmd))
            out["nocache" if flag else "cache"] = (d, shown(cmd))
    c, n = out["cache"][0], out["nocache"][0]
    assert c["sequences"][0]["tokens"] == n["sequences"][0]["tokens"], "the two paths must agree"
    tc, tn = c["prefill_seconds"] + c["decode_seconds"], n["prefill_seconds"] + n["decode_seconds"]
    print("| path | prefill + first token (s) | 63 decode steps (s) | total (s) | TPOT (ms) |")
    print("|---|---|---|---|---|")
    for name, d in (("KV cache", c), ("--no-kv-cache", n)):
        print(f"| {name} | {d['prefill_seconds']:.3f} | {d['decode_seconds']:.3f} | "
              f"{d['prefill_seconds'] + d['decode_seconds']:.3f} | {1e3 * d['time_per_output_token_s']:.3f} |")
    print(f"\nThe cache is {tn / tc:.1f}x faster in total and {n['time_per_output_token_s'] / c['time_per_output_token_s']:.0f}x "
          f"per output token (same tokens). Commands: `{out['cache'][1]}` and the same with --no-kv-cache "
          "(checkpoint: `tsp train --preset small --seq-len 256 --steps 1`).\n")


def layouts(args):
    with tempfile.TemporaryDirectory() as w:
        prof = f"{w}/profile.json"
        run([args.tsp, "bench", "--strategy", "tsp", "--preset", "small", "--seq-len", "2048", "--steps", "2",
             "--write-device-profile", prof], ranks=2)
        print("| D | batch | layout | TPOT mean (ms) | TPOT p50 (ms) | received per step, mean over ranks (max) (KiB) | planned (KiB) | projected TPOT (ms) |")
        print("|---|---|---|---|---|---|---|---|")
        cmds = []
        for ranks in (2, 4):
            for batch in (1, 8):
                cmd = [args.tsp, "bench", "--decode", "--compare", "tp,tsp,tsp+seq,sp", "--preset", "small",
                       "--prompt-len", "2048", "--new-tokens", "129", "--batch", str(batch), "--json"]
                doc = json.loads(run(cmd, ranks))
                cmds.append(shown(cmd, ranks))
                plan = json.loads(run([args.tsp, "plan", "--inference", "--preset", "small", "--context",
                                       str(2048 + 129), "--new-tokens", "129", "--batch", str(batch), "--ranks",
                                       str(ranks), "--device", prof, "--json"]))
                planned = {s["name"]: s for s in plan["strategies"] if s.get("applicable")}
                names = {"tp": "tp", "tsp": "tsp-heads", "tsp+seq": "tsp-sequence", "sp": "sp"}
                for d in doc["layouts"]:
                    p = planned[names[d["label"]]]
                    per_rank = [e["decode_comm_recv_bytes_per_step"] for e in d["per_rank"]]
                    mean = sum(per_rank) / len(per_rank)
                    print(f"| {ranks} | {batch} | {d['label']} | {1e3 * d['tpot_s']['mean']:.3f} | "
                          f"{1e3 * d['tpot_s']['p50']:.3f} | {mean / 1024:.2f} ({max(per_rank) / 1024:.2f}) | "
                          f"{p['decode_comm_bytes_per_step'] / 1024:.2f} | "
                          f"{1e3 * p['projected_time_per_output_token_s']:.3f} |")
        print("\nCommands: " + "; ".join(f"`{c}`" for c in cmds) + " (planner: `tsp plan --inference --preset small "
              "--context 2177 --new-tokens 129 --batch B --ranks D --device profile.json`, profile from `mpirun -np 2 "
              "tsp bench --strategy tsp --preset small --seq-len 2048 --write-device-profile profile.json`).\n")


def prefill(args):
    cfg = os.path.join(HERE, "..", "bench", "small_long.json")
    budget = args.budget_mib * MIB
    print(f"| layout | longest prompt within {args.budget_mib} MiB | peak there (MiB) | KV cache there (MiB) | next prompt | peak there (MiB) |")
    print("|---|---|---|---|---|---|")
    for label, opts in (("tp", ["--strategy", "tp"]), ("sp", ["--strategy", "sp"]),
                        ("tpsp 2x2", ["--strategy", "tpsp", "--tp", "2", "--sp", "2"]),
                        ("tsp heads", ["--strategy", "tsp"]), ("tsp sequence", ["--strategy", "tsp", "--kv-layout", "sequence"])):
        best, nxt, p = None, None, 4096
        while p <= args.max_prompt:
            cmd = [args.tsp, "bench", "--decode"] + opts + ["--config", cfg, "--prompt-len", str(p), "--new-tokens",
                                                            "2", "--warmup", "0", "--json"]
            d = json.loads(run(cmd, 4))
            peak = d["memory_peak_bytes_max"]
            kv = max(e["memory_peak_bytes"]["kv_cache"] for e in d["per_rank"])
            if peak > budget:
                nxt = (p, peak)
                break
            best = (p, peak, kv)
            p *= 2
        b = f"| {best[0]} | {best[1] / MIB:.1f} | {best[2] / MIB:.1f}" if best else "| – | – | –"
        n = f"| {nxt[0]} | {nxt[1] / MIB:.1f} |" if nxt else "| – | – |"
        print(f"| {label} {b} {n}")
    print(f"\nEach at D = 4, batch 1, one prefill + 1 decode step per cell, doubling the prompt from 4096 while the "
          f"tracked peak (`memory_peak_bytes_max`) stays within {args.budget_mib} MiB: `mpirun -np 4 tsp bench --decode "
          f"--strategy S --config bench/small_long.json --prompt-len P --new-tokens 2 --warmup 0` (small with "
          f"max_position_embeddings {args.max_prompt * 2}).\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tsp", default="build/release/tsp")
    ap.add_argument("--sections", default="tpot,recompute,layouts,prefill")
    ap.add_argument("--budget-mib", type=int, default=64)
    ap.add_argument("--max-prompt", type=int, default=65536)
    args = ap.parse_args()
    for s in args.sections.split(","):
        print(f"## {s}\n")
        sys.stdout.flush()
        {"tpot": tpot, "recompute": recompute, "layouts": layouts, "prefill": prefill}[s](args)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
