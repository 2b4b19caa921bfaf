#!/usr/bin/env bash
# Checks the shipped unit file: `systemd-analyze verify` finds no problem and
# `systemd-analyze security --offline=true` rates its exposure at or below the
# bar (a regression guard: hardening must not quietly erode).
# Usage: unit_file_test.sh SOURCE_DIR BUILD_DIR MAX_EXPOSURE
set -euo pipefail
src=$1 build=$2 max=$3
if ! command -v systemd-analyze >/dev/null; then
	# Under CI scripts/deps.sh must have installed it: a skip there would hide the check.
	case ${CI:-} in
	'' | 0 | false | no) echo "SKIP: missing tools: systemd-analyze"; exit 77 ;;
	*) echo "FAIL: missing tools: systemd-analyze (CI: scripts/deps.sh must install it)"; exit 1 ;;
	esac
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# verify wants ExecStart and ExecStartPre to exist: point them at the freshly built daemon.
sed "/^ExecStart/s|/usr/sbin/nettallyd|$build/daemon/nettallyd|" \
	"$src/systemd/nettallyd.service" > "$tmp/nettallyd.service"

# verify would look each man: reference up with man(1), which needs man-db and the pages
# installed; the pages this build made (build/man, from doc/man) are checked instead.
if ! out=$(systemd-analyze verify --man=no "$tmp/nettallyd.service" 2>&1) || [ -n "$out" ]; then
	echo "FAIL: systemd-analyze verify:"; echo "$out"; exit 1
fi
echo "verify: clean"
for ref in $(sed -n 's/^Documentation=//p' "$src/systemd/nettallyd.service"); do
	case $ref in
	man:*)
		page=${ref#man:}                  # nettallyd(8)
		file="${page%%(*}.${page##*(}"    # nettallyd.8)
		file=${file%)}
		[ -f "$build/man/$file" ] || { echo "FAIL: Documentation=$ref: no $build/man/$file"; exit 1; }
		echo "documentation: $ref is $build/man/$file"
		;;
	esac
done

report=$(systemd-analyze security --offline=true "$tmp/nettallyd.service" 2>&1)
level=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$level" ] || { echo "FAIL: no exposure level in:"; echo "$report"; exit 1; }
echo "exposure level: $level (bar: $max)"
if awk -v l="$level" -v m="$max" 'BEGIN { exit !(l > m) }'; then
	printf '%s\n' "$report" | grep -E '^✗' || true
	echo "FAIL: exposure $level above $max"; exit 1
fi
for cap in CAP_BPF CAP_PERFMON CAP_NET_ADMIN; do
	grep -q "^CapabilityBoundingSet=.*$cap" "$src/systemd/nettallyd.service" ||
		{ echo "FAIL: $cap missing from CapabilityBoundingSet"; exit 1; }
done
extra=$(sed -n 's/^CapabilityBoundingSet=//p' "$src/systemd/nettallyd.service" |
	tr ' ' '\n' | grep -vxE 'CAP_BPF|CAP_PERFMON|CAP_NET_ADMIN' || true)
[ -z "$extra" ] || { echo "FAIL: capabilities beyond the loader's needs: $extra"; exit 1; }
echo "1 passed, 0 failed"
