#!/usr/bin/env bash
# tsp plan --plot from an installed tsp (issue 10, item 18): `cmake --install` puts the chart script where the
# binary finds it, run from a directory that has nothing to do with the source tree; the table comes first.
# A binary without its script fails with a message naming where it looked, after the table and before
# writing anything.
# plan_installed.sh BUILD_DIR
set -euo pipefail
build=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
test -x "$work/prefix/bin/tsp" && test -f "$work/prefix/share/tsp/plot_plan.py"
cd "$work"
unset TSP_PLOT_SCRIPT
"$work/prefix/bin/tsp" plan --preset tiny --seq-len 64 --ranks 2 --plot "$work/plots" >"$work/out.txt" 2>&1
grep -n "" "$work/out.txt" | head -3
first_wrote=$(grep -n "^wrote " "$work/out.txt" | head -1 | cut -d: -f1)
table_end=$(grep -n "^recommendation:" "$work/out.txt" | cut -d: -f1)
[ -n "$first_wrote" ] && [ -n "$table_end" ] && [ "$table_end" -lt "$first_wrote" ]
for f in memory_vs_seq comm_vs_tokens throughput_vs_devices; do test -s "$work/plots/$f.png"; done
mkdir "$work/alone"
cp "$work/prefix/bin/tsp" "$work/alone/tsp"
set +e
"$work/alone/tsp" plan --preset tiny --seq-len 64 --ranks 2 --plot "$work/plots2" >"$work/alone.txt" 2>&1
rc=$?
set -e
cat "$work/alone.txt"
[ "$rc" = 2 ]
grep -q "^recommendation:" "$work/alone.txt"
grep -q "error: --plot needs plot_plan.py, which is installed with tsp" "$work/alone.txt"
test ! -e "$work/plots2"
echo "plan_installed ok"
