# Shared by the reliability tests (docs/reliability.md): a scratch directory, mpirun, and the comparison of
# step logs (loss, grad norm, learning rate) between runs.
set -euo pipefail
tsp=$1; mpiexec=$2; np=$3; shift 3
layout=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() { "$mpiexec" --oversubscribe -np "$np" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
# The tsp processes (the ranks) below process $1 (a background job running mpirun).
ranks_of() {
  local kids k
  kids=$(pgrep -P "$1" || true)
  for k in $kids; do
    [ "$(cat /proc/$k/comm 2>/dev/null)" = tsp ] && echo "$k"
    ranks_of "$k"
  done
}
# Waits until file $1 matches regex $2 (at most $3 seconds).
wait_for() {
  local t=0
  until grep -Eq -- "$2" "$1" 2>/dev/null; do
    sleep 0.05; t=$((t + 1))
    [ "$t" -lt $(($3 * 20)) ] || fail "timed out waiting for /$2/ in $1: $(tail -5 "$1")"
  done
}
# steps_equal REF.json A.json [B.json]: the step log of A (then B) equals REF's, value for value.
steps_equal() {
  python3 - "$@" <<'PY'
import json, sys
ref = {e["step"]: e for e in json.load(open(sys.argv[1]))["log"]}
got = {}
for f in sys.argv[2:]:
    for e in json.load(open(f))["log"]:
        assert e["step"] not in got, f"step {e['step']} twice"
        got[e["step"]] = e
assert sorted(got) == sorted(ref), (sorted(got), sorted(ref))
for s in sorted(ref):
    for k in ("loss", "grad_norm", "lr"):
        assert got[s][k] == ref[s][k], f"step {s}: {k} {got[s][k]!r} != uninterrupted {ref[s][k]!r}"
print(f"bit for bit: {len(ref)} steps of loss, grad norm and lr equal the uninterrupted run")
PY
}
