#!/usr/bin/env bash
# Threads per rank chosen by tsp itself (issue 10, item 1): without any thread variable exported, one rank
# gets every core it may run on and OpenMP's idle threads sleep (PASSIVE) instead of spinning; ranks that
# share cores split them; --threads overrides; the choice is in the run header and in --json.
# threads.sh TSP_BINARY MPIEXEC
set -euo pipefail
tsp=$1; mpiexec=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset OMP_NUM_THREADS OPENBLAS_NUM_THREADS OMP_WAIT_POLICY
bench=(bench --preset tiny --seq-len 64 --steps 1 --warmup 0 --sgemm-n 64)
"$tsp" "${bench[@]}" --strategy single --json >"$work/one.json"
"$tsp" "${bench[@]}" --strategy single >"$work/one.txt"
"$mpiexec" --oversubscribe -np 2 "$tsp" "${bench[@]}" --strategy tsp --json >"$work/two.json"
"$mpiexec" --oversubscribe -np 2 --bind-to none "$tsp" "${bench[@]}" --strategy tsp --json >"$work/two_unbound.json"
"$tsp" "${bench[@]}" --strategy single --threads 1 --json >"$work/forced.json"
OMP_NUM_THREADS=1 "$tsp" "${bench[@]}" --strategy single --json >"$work/env.json"
grep -q "^threads: .* per rank (OpenMP + OpenBLAS; auto: " "$work/one.txt"
python3 - "$work" "$(nproc)" <<'PY'
import json, sys
w, cores = sys.argv[1], int(sys.argv[2])
t = lambda name: json.load(open(f"{w}/{name}.json"))["threads"]
one = t("one")
assert one["source"] == "auto" and one["cores"] == cores, one
assert one["openmp"] == one["blas"] == cores, one          # one rank: every core it may use
assert one["openmp_wait_policy"] == "PASSIVE", one         # set by tsp (libgomp would spin otherwise)
for name in ("two", "two_unbound"):
    two = t(name)
    assert two["ranks_on_node"] == 2, two
    # Ranks competing for the same cores split them; never more threads than cores.
    assert two["openmp"] == max(1, two["cores"] // two["ranks_sharing_cores"]), two
    assert not two["oversubscribed"], two
unbound = t("two_unbound")
assert unbound["ranks_sharing_cores"] == 2 and unbound["openmp"] == max(1, cores // 2), unbound
assert t("forced")["openmp"] == 1 and t("forced")["source"] == "--threads", t("forced")
assert t("env")["openmp"] == 1 and t("env")["source"] == "OMP_NUM_THREADS", t("env")
print(f"threads ok: {one['openmp']} for one rank on {cores} cores, {unbound['openmp']} each for 2 unbound ranks")
PY
