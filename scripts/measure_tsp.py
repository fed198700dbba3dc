#!/usr/bin/env python3
"""Measures TSP's communication and per-rank memory at several rank counts and prints them next to the
closed-form formulas (docs/tsp.md), as markdown. Every number comes from running the real binary:
  comm:   mpirun -np D tsp check --strategy tsp ... --json          (one forward + backward, counted per label)
  memory: mpirun -np D tsp train --strategy tsp ... --json          (peak bytes per allocator category, rank 0)

usage: scripts/measure_tsp.py [--preset small] [--seq-len 4096] [--batch 1] [--ranks 1,2,4]
Run from the repository root after scripts/build release.
"""
import argparse
import json
import math
import os
import subprocess

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_btl="self,vader",
           OMPI_MCA_oob_tcp_if_include="lo", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
TSP = "build/release/tsp"
PRESETS = {  # mirrors src/model/config.cpp
    "tiny": dict(h=64, I=192, L=2, nh=4, nkv=2, d=16, V=256, tied=False),
    "small": dict(h=128, I=384, L=2, nh=4, nkv=4, d=32, V=256, tied=False),
}


def run_json(cmd):
    out = subprocess.run(cmd, env=ENV, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def comm_formulas(m, D, B, S, beta=4):
    """Bytes received per rank per step, by (phase, label)."""
    L, h, I = m["L"], m["h"], m["I"]
    q, kv = m["nh"] * m["d"], m["nkv"] * m["d"]
    Wa = (2 * q + 2 * kv) * h // D  # packed attention shard
    Wm = 3 * h * I // D  # packed MLP shard
    Pv = -(-m["V"] // D) * h  # one vocabulary shard (embedding or head)
    kvg = 2 * (D - 1) * (B * S // D) * (kv // D)  # K and V of one head group from the other ranks
    f = {
        "attn.weight_bcast": L * (D - 1) * Wa,
        "attn.kv_allgather": L * D * kvg,
        "mlp.weight_ring": L * (D - 1) * Wm,
        "vocab.ring": 2 * (D - 1) * Pv,
    }
    b = {
        "attn.weight_bcast": L * (D - 1) * Wa,
        "attn.kv_allgather": L * D * kvg,
        "attn.kv_grad_reducescatter": L * D * kvg,
        "attn.weight_grad_reduce": L * (D - 1) * Wa,
        "mlp.weight_ring": L * (D - 1) * Wm,
        "mlp.grad_ring": L * (D - 1) * Wm,
        "vocab.ring": (D - 1) * Pv,
        "vocab.grad_ring": 2 * (D - 1) * Pv,
    }
    out = {("forward", k): v * beta for k, v in f.items()}
    out.update({("backward", k): v * beta for k, v in b.items()})
    out[("backward", "norm.grad_allreduce")] = 2 * (D - 1) * (2 * L + 1) * h * beta // D
    out[("forward", "loss.allreduce")] = 2 * (D - 1) * 3 * 8 // D
    return out


def memory_formulas(m, D, B, S, beta=4):
    L, h, I, V = m["L"], m["h"], m["I"], m["V"]
    q, kv, nh = m["nh"] * m["d"], m["nkv"] * m["d"], m["nh"]
    Vp = -(-V // D) * D
    parts = 1 if m["tied"] else 2
    params = (L * ((2 * q + 2 * kv) * h + 3 * h * I) + parts * Vp * h) // D + (2 * L + 1) * h
    N = B * S // D
    acts = (2 * L + 1) * N * (h + 1) + L * N * (q + nh) + N
    comm = 3 * (2 * q + 2 * kv) * h // D + 2 * B * S * kv // D + 4 * 3 * h * I // D + 4 * (Vp // D) * h
    return {"parameters": params * beta, "gradients": params * beta, "optimizer": 2 * params * beta,
            "activations": acts * beta, "communication": comm * beta}


def mib(x):
    return f"{x / 2**20:.3f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--ranks", default="1,2,4")
    a = ap.parse_args()
    m, B, S = PRESETS[a.preset], a.batch, a.seq_len
    ranks = [int(r) for r in a.ranks.split(",")]
    common = ["--preset", a.preset, "--seq-len", str(S), "--batch", str(B)]

    print(f"### Communication per rank per step, {a.preset}, B = {B}, S = {S} (MiB received)\n")
    print("| phase | label | " + " | ".join(f"D={D} measured | D={D} formula" for D in ranks) + " |")
    print("|---|---|" + "---|---|" * len(ranks))
    rows, results = {}, {}
    for D in ranks:
        r = run_json(["mpirun", "--oversubscribe", "-np", str(D), TSP, "check", "--strategy", "tsp", *common,
                      "--dtype", "float32", "--json"])
        assert r["pass"], r["max_rel_err"]
        results[D] = {(ph, lab): c["recv_bytes"] for ph in ("forward", "backward") for lab, c in r["comm"][ph].items()}
        rows.update({k: None for k in results[D]})
        rows.update({k: None for k in comm_formulas(m, D, B, S)})
    mismatches = 0
    for key in sorted(rows, key=lambda k: (k[0] != "forward", k[1])):
        cells = []
        for D in ranks:
            meas, form = results[D].get(key, 0), comm_formulas(m, D, B, S).get(key, 0)
            mismatches += meas != form
            cells += [mib(meas), mib(form)]
        print(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    print(f"\nmeasured == formula for every label and D: {'yes' if mismatches == 0 else f'NO ({mismatches} differ)'}\n")

    print(f"### Peak memory per rank, {a.preset}, B = {B}, S = {S}, float32 (MiB)\n")
    print("| category | " + " | ".join(f"D={D} measured | D={D} formula" for D in ranks) + " |")
    print("|---|" + "---|---|" * len(ranks))
    mem = {}
    for D in ranks:
        r = run_json(["mpirun", "--oversubscribe", "-np", str(D), TSP, "train", "--strategy", "tsp", *common,
                      "--steps", "2", "--seq-len-warmup", "0", "--eval-batches", "0", "--json"])
        mem[D] = r["memory_peak_bytes"]
    for cat in ("parameters", "gradients", "optimizer", "activations", "communication", "workspace", "total", "vmhwm"):
        cells = []
        for D in ranks:
            form = memory_formulas(m, D, B, S).get(cat)
            cells += [mib(mem[D][cat]), mib(form) if form is not None else "–"]
        print(f"| {cat} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
