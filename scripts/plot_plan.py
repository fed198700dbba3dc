#!/usr/bin/env python3
"""Charts for `tsp plan --plot DIR` (which writes DIR/plan_sweep.json and runs this script).

Usage: scripts/plot_plan.py SWEEP_JSON OUT_DIR
Writes, as PNG and SVG: memory_vs_seq (per-rank memory vs sequence length, per layout, log axes),
comm_vs_tokens (forward traffic per rank vs B*S, with the TSP/TP crossover at 8h), throughput_vs_devices
(projected tokens/s vs device count, layouts that fit the memory budget only).
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

GiB = 1024.0**3


def series(points, x, y, only_fitting=False):
    xs, ys = [], []
    for p in points:
        if not p.get("applicable") or y not in p:
            continue
        if only_fitting and not p.get("fits"):
            continue
        xs.append(p[x])
        ys.append(p[y])
    return xs, ys


def save(fig, out_dir, name):
    written = []
    for ext in ("png", "svg"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        fig.savefig(path, dpi=130, bbox_inches="tight")
        written.append(path)
    plt.close(fig)
    print("wrote " + " ".join(written), file=sys.stderr)


def style(name):
    dashed = "-sp" in name  # Megatron-SP variants overlap their plain layouts in traffic
    return dict(linewidth=2.4 if name == "tsp" else 1.4, marker="o", markersize=3, linestyle="--" if dashed else "-")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        d = json.load(f)
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    title = f"{d['model']}, {d['dtype']}, D = {d['ranks']} per replica, device {d['device']}"

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in d["memory_vs_seq"].items():
        xs, ys = series(pts, "seq_len", "memory_total")
        if xs:
            ax.plot(xs, [y / GiB for y in ys], label=name, **style(name))
    ax.axhline(d["memory_budget_bytes"] / GiB, color="grey", linestyle="--", label="budget")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length S (tokens)")
    ax.set_ylabel("memory per rank (GiB)")
    ax.set_title("per-rank memory vs sequence length\n" + title, fontsize=9)
    ax.legend(fontsize=7)
    save(fig, out, "memory_vs_seq")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in d["comm_vs_tokens"].items():
        xs, ys = series(pts, "tokens", "comm_forward")
        if xs:
            ax.plot(xs, [y / GiB for y in ys], label=name, **style(name))
    ax.axvline(d["crossover_tokens"], color="grey", linestyle=":", label="B·S = 8h")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("tokens per replica B·S (B = 1)")
    ax.set_ylabel("forward traffic received per rank (GiB)")
    ax.set_title("communication vs B·S (TSP/TP crossover)\n" + title, fontsize=9)
    ax.legend(fontsize=7)
    save(fig, out, "comm_vs_tokens")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in d["throughput_vs_devices"].items():
        xs, ys = series(pts, "devices", "tokens_per_s", only_fitting=True)
        if xs:
            ax.plot(xs, ys, label=name, **style(name))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(f"devices (D ranks per replica x dp {d['dp']})")
    ax.set_ylabel("projected tokens/s (with overlap)")
    ax.set_title(f"projected throughput, S = {d['seq_len']}, B = {d['micro_batch']} (fitting layouts)\n" + title,
                 fontsize=9)
    ax.legend(fontsize=7)
    save(fig, out, "throughput_vs_devices")


if __name__ == "__main__":
    main()
