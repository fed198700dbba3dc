#!/usr/bin/env bash
# expect.sh RC REGEX... -- COMMAND...: runs COMMAND, fails unless its exit status matches RC ("0", "nonzero",
# or an exact status such as "2") and its combined output matches every REGEX (grep -E); a REGEX written
# "!REGEX" must match nowhere. Used by the CLI tests (tests/mpi/cli_tests*.cmake).
set -u
want=$1; shift
regexes=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do regexes+=("$1"); shift; done
shift
out=$("$@" 2>&1); rc=$?
echo "$out"
if [ "$want" = 0 ] && [ "$rc" != 0 ]; then echo "expect.sh: exit status $rc, wanted 0"; exit 1; fi
if [ "$want" = nonzero ] && [ "$rc" = 0 ]; then echo "expect.sh: exit status 0, wanted non-zero"; exit 1; fi
if [ "$want" != 0 ] && [ "$want" != nonzero ] && [ "$rc" != "$want" ]; then
  echo "expect.sh: exit status $rc, wanted $want"; exit 1
fi
for r in "${regexes[@]}"; do
  if [ "${r:0:1}" = "!" ]; then
    if echo "$out" | grep -Eq -- "${r:1}"; then echo "expect.sh: output matches /${r:1}/, which it must not"; exit 1; fi
  else
    echo "$out" | grep -Eq -- "$r" || { echo "expect.sh: output does not match /$r/"; exit 1; }
  fi
done
echo "expect.sh: ok (exit status $rc)"
