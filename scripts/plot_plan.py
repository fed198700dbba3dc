#!/usr/bin/env python3
"""Charts for `tsp plan --plot DIR` (which writes DIR/plan_sweep.json and runs this script).

Usage: plot_plan.py SWEEP_JSON OUT_DIR
Writes, as PNG and SVG:
  memory_vs_seq          per-rank memory vs sequence length, per layout, with the memory budget (and its value)
                         and the model's max_position_embeddings;
  comm_vs_tokens         traffic received per rank per step vs B*S, forward and backward side by side, with the
                         TSP/TP forward crossover at 8h;
  throughput_vs_devices  projected tokens/s vs device count, layouts that fit the budget.
Layouts whose curves coincide share one line and one legend entry ("tp = tp-sp"); every point a layout lacks
(not applicable, or over the budget) is listed under the chart with the planner's reason. Installed with tsp
(share/tsp/plot_plan.py), where the binary looks for it.
"""
import json
import math
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

GiB = 1024.0**3
# One colour, marker and line style per layout family, the same in every chart.
STYLES = {
    "single": ("black", "o", "-"),
    "tp": ("tab:orange", "s", "-"),
    "tp-sp": ("tab:orange", "D", "--"),
    "sp": ("tab:blue", "^", "-"),
    "tpsp": ("tab:red", "v", "-"),
    "tpsp-sp": ("tab:pink", "P", "--"),
    "tsp": ("tab:green", "o", "-"),
}
MESH_COLOURS = ["tab:red", "tab:purple", "tab:brown", "tab:olive", "tab:cyan"]


def style(name, index):
    family = name.split(" ")[0]
    colour, marker, line = STYLES.get(family, ("tab:gray", "x", "-"))
    if family in ("tpsp", "tpsp-sp"):  # several factorisations: one colour each, the same for +sp
        colour = MESH_COLOURS[index % len(MESH_COLOURS)]
    if family == "tsp":  # a wide translucent band: thin lines that coincide with it stay visible on top
        return dict(color=colour, marker=marker, linestyle=line, linewidth=6, alpha=0.45, markersize=8)
    return dict(color=colour, marker=marker, linestyle=line, linewidth=1.5, markersize=5,
                markerfacecolor="none" if line == "--" else colour)


def mesh_index(names):
    shapes = sorted({n.split(" ", 1)[1] for n in names if n.startswith("tpsp") and " " in n})
    return {s: i for i, s in enumerate(shapes)}


def series(points, x, y, only_fitting=False):
    xs, ys = [], []
    for p in points:
        if not p.get("applicable") or y(p) is None:
            continue
        if only_fitting and not p.get("fits"):
            continue
        xs.append(p[x])
        ys.append(y(p))
    return xs, ys


def close(a, b, tol):
    return a[0] == b[0] and all(math.isclose(x, y, rel_tol=tol) for x, y in zip(a[1], b[1]))


def merge_identical(curves, tol=0.03):
    """[(name, xs, ys)] -> [(label, xs, ys)]: curves that coincide on a log axis (every point within 3 %) would
    hide each other, so they are drawn once, labelled "a = b" (equal within 0.1 %) or "a ≈ b"."""
    groups = []
    # TSP, the subject of these charts, keeps its own style when another layout coincides with it.
    for name, xs, ys in sorted(curves, key=lambda c: c[0] != "tsp"):
        for g in groups:
            if close((g[1], g[2]), (xs, ys), tol):
                g[0].append((name, (xs, ys)))
                break
        else:
            groups.append([[(name, (xs, ys))], xs, ys])
    out = []
    for members, xs, ys in groups:
        label = members[0][0]
        for name, data in members[1:]:
            label += (" = " if close(members[0][1], data, 1e-3) else " ≈ ") + name
        out.append((label, xs, ys))
    return out


def missing_notes(sweep, x, unit, only_fitting=False):
    """One line per layout and reason that lacks points: where, and why (the planner's reason, or over the
    budget). Reasons that differ only in a trailing degree ("divisible by T = 8", "... T = 16") share a line."""
    notes = []
    for name, pts in sweep.items():
        groups = {}
        for p in pts:
            if not p.get("applicable"):
                raw = p.get("reason") or "not applicable"
            elif only_fitting and not p.get("fits"):
                raw = "over the memory budget"
            else:
                continue
            groups.setdefault(re.sub(r" = \d+$", "", raw), []).append((p[x], raw))
        for stripped, where in groups.items():
            raws = {r for _, r in where}
            why = raws.pop() if len(raws) == 1 else stripped
            if len(where) == len(pts):
                notes.append(f"{name}: {why}")
            else:
                notes.append(f"{name}: missing at {unit} {', '.join(f'{v:g}' for v, _ in where)} ({why})")
    return notes


def log_axis(axis, values, unit_scale=1.0):
    """Log axis with enough labelled ticks: 1-2-5 steps when the data span less than three decades, finer below
    one (matplotlib's default labels only powers of ten, which can leave a single label)."""
    lo, hi = min(values) / unit_scale, max(values) / unit_scale
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 0
    subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0) if decades < 1 else (1.0, 2.0, 5.0) if decades < 3 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=30))
    axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(tick_label))


def tick_label(v, _=None):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e4:
        return f"{v / 1e3:g}K"
    return f"{v:g}"


def binary_axis(axis):
    """Log-2 axis labelled 512, 1K, 2K, ..., 128K (tokens) or 1, 2, 4, ... (devices)."""
    axis.set_major_locator(LogLocator(base=2))
    axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1024:g}K" if v >= 1024 else f"{v:g}"))


def human_bytes(b):
    for unit, scale in (("TiB", 1024.0**4), ("GiB", GiB), ("MiB", 1024.0**2), ("KiB", 1024.0)):
        if b >= scale:
            return f"{b / scale:.1f} {unit}"
    return f"{b:.0f} B"


def finish(fig, axes, notes):
    """Each chart's legend outside its plotting area (right), the notes for missing points below the figure."""
    for ax in axes:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False, borderaxespad=0)
    text = None
    if notes:
        text = fig.text(0.01, -0.02, "missing points:\n" + "\n".join(notes), fontsize=7, va="top", ha="left",
                        wrap=True)
    return text


def title_of(d):
    return f"{d['model']}, {d['dtype']}, D = {d['ranks']} per replica x dp {d['dp']}, device {d['device']}"


def draw(ax, curves):
    names = [c[0] for c in curves]
    idx = mesh_index(names)
    for label, xs, ys in merge_identical(curves):
        first = label.replace(" ≈ ", " = ").split(" = ")[0]
        shape = first.split(" ", 1)[1] if " " in first and first.startswith("tpsp") else None
        st = style(first, idx.get(shape, 0))
        # Thick lines below thin ones, so that a thin line on top of a thick one stays visible.
        ax.plot(xs, ys, label=label, zorder=2 if st["linewidth"] > 2 else 3, **st)


def memory_figure(d):
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    curves = []
    for name, pts in d["memory_vs_seq"].items():
        xs, ys = series(pts, "seq_len", lambda p: p.get("memory_total"))
        if xs:
            curves.append((name, xs, [y / GiB for y in ys]))
    draw(ax, curves)
    budget = d["memory_budget_bytes"]
    ax.axhline(budget / GiB, color="grey", linestyle="--", linewidth=1.2, label=f"budget {human_bytes(budget)}")
    ax.annotate(f"budget {human_bytes(budget)}", xy=(0.01, budget / GiB), xycoords=("axes fraction", "data"),
                xytext=(0, 3), textcoords="offset points", fontsize=8, color="grey")
    maxpos = d.get("max_position_embeddings")
    seqs = [x for _, xs, _ in curves for x in xs]
    if maxpos and seqs and min(seqs) <= maxpos <= max(seqs):
        ax.axvline(maxpos, color="grey", linestyle=":", linewidth=1.2, label=f"max_position_embeddings {maxpos}")
    ax.set_xscale("log", base=2)
    binary_axis(ax.xaxis)
    ax.set_yscale("log")
    log_axis(ax.yaxis, [y for _, _, ys in curves for y in ys] + [budget / GiB])
    ax.set_xlabel("sequence length S (tokens)")
    ax.set_ylabel("memory per rank (GiB)")
    ax.set_title("per-rank memory vs sequence length\n" + title_of(d), fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    finish(fig, [ax], missing_notes(d["memory_vs_seq"], "seq_len", "S ="))
    return fig


def comm_figure(d):
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 8), sharex=True)
    for ax, phase in zip(axes, ("forward", "backward")):
        curves = []
        for name, pts in d["comm_vs_tokens"].items():
            xs, ys = series(pts, "tokens", lambda p, k=f"comm_{phase}": p.get(k))
            if xs:
                curves.append((name, xs, [y / GiB for y in ys]))
        draw(ax, curves)
        ax.axvline(d["crossover_tokens"], color="grey", linestyle=":", label="B·S = 8h (forward: TSP = TP)")
        ax.set_xscale("log", base=2)
        binary_axis(ax.xaxis)
        ax.set_yscale("log")
        log_axis(ax.yaxis, [y for _, _, ys in curves for y in ys if y > 0])
        ax.set_title(f"{phase} pass", fontsize=9)
        ax.set_ylabel(f"{phase} traffic per rank (GiB)")
        ax.grid(True, which="major", alpha=0.3)
    axes[1].set_xlabel("tokens per replica B·S (B = 1)")
    fig.suptitle("communication received per rank per step vs B·S\n" + title_of(d), fontsize=9)
    finish(fig, list(axes), missing_notes(d["comm_vs_tokens"], "tokens", "B·S ="))
    return fig


def throughput_figure(d):
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    curves = []
    for name, pts in d["throughput_vs_devices"].items():
        xs, ys = series(pts, "devices", lambda p: p.get("tokens_per_s"), only_fitting=True)
        if xs:
            curves.append((name, xs, ys))
    draw(ax, curves)
    ax.set_xscale("log", base=2)
    binary_axis(ax.xaxis)
    ax.set_yscale("log")
    if curves:
        log_axis(ax.yaxis, [y for _, _, ys in curves for y in ys])
    ax.set_xlabel(f"devices (D ranks per replica x dp {d['dp']})")
    ax.set_ylabel("projected tokens/s (with overlap)")
    ax.set_title(f"projected throughput, S = {d['seq_len']}, B = {d['micro_batch']} (layouts that fit)\n"
                 + title_of(d), fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    finish(fig, [ax], missing_notes(d["throughput_vs_devices"], "devices", "devices =", only_fitting=True))
    return fig


def save(fig, out_dir, name):
    written = []
    for ext in ("png", "svg"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        fig.savefig(path, dpi=130, bbox_inches="tight")
        written.append(path)
    plt.close(fig)
    print("wrote " + " ".join(written), file=sys.stderr)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        d = json.load(f)
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    save(memory_figure(d), out, "memory_vs_seq")
    save(comm_figure(d), out, "comm_vs_tokens")
    save(throughput_figure(d), out, "throughput_vs_devices")


if __name__ == "__main__":
    main()
