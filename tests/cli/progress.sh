#!/usr/bin/env bash
# The progress bar (issue 10, item 11), on pseudo-terminals made by `script` (util-linux): drawn on an
# interactive terminal and never interleaved with step lines; absent from a log that mpirun's output was
# redirected to (Open MPI gives every rank a pty even then), with TERM=dumb and with --no-progress; and
# --log-every N prints every Nth step line (plus the first and the last).
# progress.sh TSP_BINARY MPIEXEC
set -euo pipefail
tsp=$1; mpiexec=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
train="train --preset tiny --seq-len 128 --steps 5 --seq-len-warmup 0 --eval-batches 0"
TERM=xterm script -qec "$tsp $train --log-every 2" /dev/null >"$work/tty.txt"
script -qec "$mpiexec --oversubscribe -np 2 $tsp $train --strategy tsp >$work/mpirun.log" /dev/null >/dev/null
TERM=dumb script -qec "$tsp $train" /dev/null >"$work/dumb.txt"
TERM=xterm script -qec "$tsp $train --no-progress" /dev/null >"$work/off.txt"
python3 - "$work" <<'PY'
import re, sys
w = sys.argv[1]
read = lambda n: open(f"{w}/{n}", "rb").read().decode()
tty = read("tty.txt")
assert "\x1b[K" in tty and "[====" in tty, "no progress bar on an interactive terminal"
# What the terminal shows: each \r returns to the line start and \x1b[K erases the rest, so the visible text of
# a line is what follows its last \r. A bar and a step line must never share one.
shown = [line.split("\r")[-1].replace("\x1b[K", "") for line in tty.replace("\r\n", "\n").split("\n")]
steps = [l for l in shown if l.startswith("step ")]
assert all("[" not in l for l in steps), steps
assert [int(re.match(r"step +(\d+)/", l).group(1)) for l in steps] == [1, 2, 4, 5], steps  # --log-every 2
for name in ("mpirun.log", "dumb.txt", "off.txt"):
    text = read(name)
    assert "\x1b" not in text and "[====" not in text, f"progress bar escape codes in {name}"
    assert "step     5/5" in text, name
print("progress ok")
PY
