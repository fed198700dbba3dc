#!/usr/bin/env bash
# signal_outside_training.sh TSP: tsp takes SIGTERM and SIGINT on a thread of its own (train/stop_signals.h);
# outside training a signal must still end the process at once by the signal, as if tsp did nothing with it.
# A bench that would run for minutes gets SIGTERM, then another gets SIGINT.
set -euo pipefail
tsp=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for sig in TERM INT; do
  "$tsp" bench --strategy single --preset tiny --seq-len 64 --steps 100000 --sgemm-n 64 >"$work/out" 2>&1 &
  pid=$!
  sleep 1.5
  kill -"$sig" "$pid"
  t0=$(date +%s.%N)
  rc=0; wait "$pid" || rc=$?
  dt=$(python3 -c "import time; print(f'{time.time() - $t0:.2f}')")
  echo "SIG$sig: exit status $rc after $dt s"
  want=$((128 + $(kill -l "$sig")))
  [ "$rc" = "$want" ] || { tail -5 "$work/out"; echo "FAIL: exit status $rc, wanted $want"; exit 1; }
  python3 -c "import sys; sys.exit(0 if $dt < 5 else 1)" || { echo "FAIL: took $dt s to end"; exit 1; }
done
echo "signal_outside_training.sh: ok"
