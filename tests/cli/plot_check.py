#!/usr/bin/env python3
"""What tsp plan's charts show (issue 10, item 19), checked on the figures plot_plan.py builds: more than one
labelled tick on every log axis, legends outside the plotting area, the budget line's value, a note for every
layout point that is missing (with the planner's reason), backward traffic next to forward, and no two drawn
curves that coincide (they share one line and a label "a = b" or "a ≈ b").

Usage: plot_check.py TSP_BINARY PLOT_PLAN_PY WORK_DIR
"""
import importlib.util
import json
import os
import subprocess
import sys

tsp, script, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)


# --plot writes the sweep, then runs TSP_PLOT_SCRIPT: a script that draws nothing, since the figures are built
# here, in this process, to be inspected.
no_op = os.path.join(work, "no_op.py")
open(no_op, "w").write("")


def sweep_of(ranks):
    out = os.path.join(work, f"ranks{ranks}")
    subprocess.run([tsp, "plan", "--preset", "tiny", "--seq-len", "4096", "--ranks", str(ranks), "--device", "h100",
                    "--plot", out], check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, TSP_PLOT_SCRIPT=no_op))
    return json.load(open(os.path.join(out, "plan_sweep.json")))


# tiny (4 heads, 2 KV heads) on 2 ranks: every layout applies; on 8, tp, tp-sp and tsp do not (4 heads over 8).
sweep, sweep8 = sweep_of(2), sweep_of(8)
spec = importlib.util.spec_from_file_location("plot_plan", script)
plot = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot)


def labelled_ticks(ax):
    lo, hi = ax.get_ylim()
    return [t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text() and lo <= t.get_position()[1] <= hi]


def check(fig, name):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [a for a in fig.axes if a.lines]
    assert axes, name
    for ax in axes:
        ticks = labelled_ticks(ax)
        assert len(ticks) >= 3, (name, ticks)
        legend = ax.get_legend()
        assert legend is not None, name
        assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer)), \
            f"{name}: the legend covers the plot"
        drawn = [(tuple(l.get_xdata()), tuple(l.get_ydata())) for l in ax.lines if len(l.get_xdata()) > 2]
        for i in range(len(drawn)):
            for j in range(i + 1, len(drawn)):
                assert not plot.close(drawn[i], drawn[j], 0.03), f"{name}: two curves hide each other"
    return " ".join(t.get_text() for t in fig.texts)


fig = plot.memory_figure(sweep)
check(fig, "memory_vs_seq")
labels = [l.get_label() for l in fig.axes[0].lines]
notes = check(plot.memory_figure(sweep8), "memory_vs_seq (8 ranks)")
assert any(l.startswith("budget 79.6 GiB") for l in labels), labels
assert "tp: num_attention_heads 4 is not divisible by T = 8" in notes, notes
assert "tsp: num_attention_heads 4 is not divisible by D = 8" in notes, notes

fig = plot.comm_figure(sweep)
check(fig, "comm_vs_tokens")
titles = [a.get_title() for a in fig.axes]
assert "forward pass" in titles and "backward pass" in titles, titles
backward = [a for a in fig.axes if a.get_title() == "backward pass"][0]
assert any("tsp" in l.get_label() for l in backward.lines), [l.get_label() for l in backward.lines]
assert "tp-sp: num_attention_heads 4" in check(plot.comm_figure(sweep8), "comm_vs_tokens (8 ranks)")

notes = check(plot.throughput_figure(sweep), "throughput_vs_devices")
assert "missing at devices" in notes, notes

merged = plot.merge_identical([("a", [1, 2], [1.0, 2.0]), ("b", [1, 2], [1.0, 2.0]), ("c", [1, 2], [1.0, 2.05]),
                               ("d", [1, 2], [5.0, 9.0])])
assert [m[0] for m in merged] == ["a = b ≈ c", "d"], merged
print("charts ok")
