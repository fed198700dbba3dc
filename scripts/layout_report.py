#!/usr/bin/env python3
"""Measures every layout with `tsp bench` (one command per row) and prints markdown tables for docs/layouts.md:
communication received per rank per step (forward, backward, optimizer) and peak memory per rank per
allocator category and tokens/s, at each (ranks, seq_len); then the longest sequence each layout trains within
a per-rank memory budget (doubling the length until the measured peak exceeds the budget).

  scripts/layout_report.py [--tsp build/release/tsp] [--preset small] [--ranks 2,4] [--seq-lens 512,4096]
                           [--budget-mib 64] [--max-seq-len 16384] [--steps 2]

Run after `scripts/build release`. Every row's command is printed beside it so it can be rerun alone.
"""
import argparse
import json
import os
import subprocess
import sys

MIB = 1024.0 * 1024.0
MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_btl": "self,vader",
    "OMPI_MCA_oob_tcp_if_include": "lo",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}


def layouts(ranks):
    """(label, bench options) of every layout at this rank count; tpsp for every T x S with T, S > 1."""
    out = [("tp", ["--strategy", "tp"]), ("tp+sp", ["--strategy", "tp", "--sequence-parallel"]),
           ("sp", ["--strategy", "sp"])]
    for t in range(2, ranks):
        if ranks % t == 0 and ranks // t > 1:
            out.append((f"tpsp {t}x{ranks // t}", ["--strategy", "tpsp", "--tp", str(t), "--sp", str(ranks // t)]))
    out.append(("tsp", ["--strategy", "tsp"]))
    return out


def bench(args, ranks, opts, seq_len, steps, warmup):
    cmd = ["mpirun", "--oversubscribe", "-np", str(ranks), args.tsp, "bench"] + opts + [
        "--preset", args.preset, "--seq-len", str(seq_len), "--batch", "1", "--steps", str(steps), "--warmup",
        str(warmup), "--json"]
    shown = " ".join(["mpirun -np", str(ranks), "tsp bench"] + opts +
                     ["--preset", args.preset, "--seq-len", str(seq_len), "--steps", str(steps), "--warmup",
                      str(warmup)])
    env = dict(os.environ, **MPI_ENV)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return None, shown, (r.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(r.stdout), shown, ""


def phase_bytes(rank_entry, phase):
    return sum(c["recv_bytes"] for c in rank_entry["comm"].get(phase, {}).values())


def row(doc, shown):
    worst = max(doc["per_rank"], key=lambda e: e["memory_peak_bytes"]["total"])
    m = worst["memory_peak_bytes"]
    comm = max(doc["per_rank"], key=lambda e: e["comm_recv_bytes_per_step"])
    cells = [f"{phase_bytes(comm, p) / MIB:.2f}" for p in ("forward", "backward", "optimizer")]
    cells += [f"{m[k] / MIB:.2f}" for k in
              ("parameters", "gradients", "optimizer", "activations", "communication", "workspace", "total")]
    cells.append(f"{doc['tokens_per_s']:.0f}")
    return cells + [f"`{shown}`"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tsp", default="build/release/tsp")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--ranks", default="2,4")
    ap.add_argument("--seq-lens", default="512,4096")
    ap.add_argument("--budget-mib", type=float, default=64.0)
    ap.add_argument("--max-seq-len", type=int, default=16384)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--no-budget", action="store_true", help="skip the longest-sequence search")
    ap.add_argument("--no-table", action="store_true", help="only the longest-sequence search")
    args = ap.parse_args()
    ranks_list = [int(x) for x in args.ranks.split(",")]
    seq_lens = [int(x) for x in args.seq_lens.split(",")]

    if not args.no_table:
        table(args, ranks_list, seq_lens)
    if args.no_budget:
        return
    budget(args, ranks_list)


def table(args, ranks_list, seq_lens):
    head = ("| layout | D | S | recv fwd | recv bwd | recv optim | params | grads | optimizer | activations | "
            "comm buffers | workspace | total | tokens/s | command |")
    print(f"Per rank, MiB (communication: bytes received per step by the rank that receives most; memory: peaks "
          f"of the rank with the highest total), preset {args.preset}, batch 1, float32.\n")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for D in ranks_list:
        for S in seq_lens:
            for label, opts in layouts(D):
                doc, shown, err = bench(args, D, opts, S, args.steps, 1)
                if doc is None:
                    print(f"| {label} | {D} | {S} | " + " | ".join(["–"] * 11) + f" | `{shown}` ({err}) |")
                else:
                    print(f"| {label} | {D} | {S} | " + " | ".join(row(doc, shown)) + " |")
                sys.stdout.flush()


def budget(args, ranks_list):
    D = max(ranks_list)
    print(f"\nLongest sequence (powers of two from 1024) that trains within {args.budget_mib:.0f} MiB of tracked "
          f"memory per rank, D = {D}, batch 1, one measured step each:\n")
    print("| layout | longest S within budget | peak at that S (MiB) | next S | peak there (MiB) |")
    print("|---|---|---|---|---|")
    for label, opts in [("single (D = 1)", None)] + layouts(D):
        best, best_peak, over, over_peak = None, None, None, None
        S = 1024
        while S <= args.max_seq_len:
            ranks = 1 if opts is None else D
            doc, _, err = bench(args, ranks, ["--strategy", "single"] if opts is None else opts, S, 1, 0)
            if doc is None:
                over, over_peak = S, err
                break
            peak = doc["memory_peak_bytes_max"] / MIB
            if peak > args.budget_mib:
                over, over_peak = S, f"{peak:.1f}"
                break
            best, best_peak = S, peak
            S *= 2
        print(f"| {label} | {best if best else '< 1024'} | {best_peak:.1f} | {over or '–'} | {over_peak or '–'} |"
              if best_peak is not None else f"| {label} | < 1024 | – | {over} | {over_peak} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
