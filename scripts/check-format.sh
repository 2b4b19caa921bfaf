#!/usr/bin/env bash
# Format check: every C and C++ file git tracks must be as clang-format leaves it (.clang-format
# at the root; bpf/.clang-format for the BPF programs in kernel style). Prints the files that
# differ and exits 1 if there is any; `scripts/check-format.sh --fix` rewrites them in place.
# CLANG_FORMAT overrides the binary (default clang-format, Debian's clang-format-14).
set -euo pipefail
cd "$(dirname "$0")/.."
clang_format=${CLANG_FORMAT:-clang-format}
command -v "$clang_format" >/dev/null || { echo "check-format: $clang_format not found (scripts/deps.sh)" >&2; exit 1; }

mapfile -t files < <(git ls-files -- '*.c' '*.h' '*.cpp' '*.hpp' '*.cc')
if [ "${1:-}" = --fix ]; then
	"$clang_format" -i "${files[@]}"
	exit 0
fi
bad=0
for f in "${files[@]}"; do
	if ! "$clang_format" --dry-run --Werror "$f" >/dev/null 2>&1; then
		echo "$f: not clang-formatted (clang-format -i $f)"
		bad=$((bad + 1))
	fi
done
if [ "$bad" -gt 0 ]; then
	echo "check-format: $bad of ${#files[@]} files differ" >&2
	exit 1
fi
echo "check-format: ${#files[@]} files ok"
