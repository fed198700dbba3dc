#!/usr/bin/env bash
# Does the communication watchdog cost anything? Step time of `tsp train` with the watchdog (MPI_THREAD_MULTIPLE,
# a watchdog thread per rank, every call marked) against the configuration before it existed
# (MPI_THREAD_FUNNELED, no thread: TSP_MPI_THREADS=funneled --comm-timeout 0), alternating A B A B ... in one
# run so that drift in the machine's load hits both alike. Prints the median ms per step of each and the ratio.
#   [PRESET=small SEQ=512 STEPS=12] bench/watchdog_overhead.sh [TSP_BINARY] [NP] [ROUNDS] [extra train options]
set -euo pipefail
tsp=${1:-build/release/tsp}; np=${2:-2}; rounds=${3:-5}; shift $(($# < 3 ? $# : 3))
args=(train --strategy tsp --preset "${PRESET:-small}" --seq-len "${SEQ:-512}" --batch 2 --steps "${STEPS:-12}"
  --seq-len-warmup 0 --eval-batches 0
  --no-progress --json "$@")
export OMPI_MCA_btl=${OMPI_MCA_btl:-self,vader} OMPI_MCA_oob_tcp_if_include=${OMPI_MCA_oob_tcp_if_include:-lo}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
  TSP_MPI_THREADS=funneled mpirun --oversubscribe -np "$np" "$tsp" "${args[@]}" --comm-timeout 0 >"$out/off.$r.json" 2>/dev/null
  mpirun --oversubscribe -np "$np" "$tsp" "${args[@]}" --comm-timeout 600 >"$out/on.$r.json" 2>/dev/null
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def ms(kind):  # every step but the first (one-time costs) of every round
    return [e["ms"] for r in range(1, rounds + 1) for e in json.load(open(f"{out}/{kind}.{r}.json"))["log"][1:]]
off, on = ms("off"), ms("on")
m_off, m_on = statistics.median(off), statistics.median(on)
print(f"watchdog off (MPI_THREAD_FUNNELED, no thread): median {m_off:.2f} ms/step over {len(off)} steps")
print(f"watchdog on  (MPI_THREAD_MULTIPLE, --comm-timeout 600): median {m_on:.2f} ms/step over {len(on)} steps")
print(f"ratio on/off: {m_on / m_off:.3f}")
PY
