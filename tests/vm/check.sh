#!/usr/bin/env bash
# One check of the VM suite, read from the results of the one boot (tests/vm/run.sh, ctest
# vm.boot): passes on "ok NAME", fails on "FAIL NAME" or when the boot gave no line for it,
# skips (77) when the boot was skipped.
# Usage: check.sh RESULTS NAME
set -euo pipefail
res=$1 name=$2
[ -f "$res" ] || { echo "FAIL: no results ($res): the boot did not run"; exit 1; }
if grep -q '^skip ' "$res"; then echo "SKIP: $(sed -n 's/^skip //p' "$res")"; exit 77; fi
grep '^figure ' "$res" || true
line=$(grep -E "^(ok|FAIL) $name( |\$)" "$res" || true)
echo "${line:-no result for $name}"
case $line in
ok*) exit 0 ;;
*) exit 1 ;;
esac
