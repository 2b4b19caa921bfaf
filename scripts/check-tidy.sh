#!/usr/bin/env bash
# clang-tidy over the product sources (daemon/ and ctl/) with the checks in .clang-tidy; any
# finding fails. Needs a built tree (compile_commands.json, the generated D-Bus glue and the BPF
# skeleton headers kernel/ includes): scripts/check-tidy.sh [BUILD_DIR] (default $NT_BUILD_DIR or build).
# Runs two clang-tidy processes at a time (NT_TIDY_JOBS to change).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-${NT_BUILD_DIR:-build}}
jobs=${NT_TIDY_JOBS:-2}
clang_tidy=${CLANG_TIDY:-clang-tidy}
command -v "$clang_tidy" >/dev/null || { echo "check-tidy: $clang_tidy not found (scripts/deps.sh)" >&2; exit 1; }
[ -f "$build/compile_commands.json" ] || { echo "check-tidy: no $build/compile_commands.json (configure first)" >&2; exit 1; }

# The translation units of daemon/ and ctl/ the build compiles (generated files excluded).
mapfile -t files < <(python3 - "$build/compile_commands.json" "$PWD" <<'PY'
import json, os, sys
root = sys.argv[2]
SKIP = set()  # translation units clang cannot compile, if one ever appears (say why here)
seen = set()
for entry in json.load(open(sys.argv[1])):
    path = os.path.normpath(os.path.join(entry["directory"], entry["file"]))
    rel = os.path.relpath(path, root)
    if rel.startswith(("daemon/", "ctl/")) and rel not in seen and rel not in SKIP:
        seen.add(rel)
        print(rel)
PY
)
[ ${#files[@]} -gt 0 ] || { echo "check-tidy: no daemon/ or ctl/ sources in $build/compile_commands.json" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
# The build is g++'s: clang does not know some of its warning flags.
status=0
printf '%s\0' "${files[@]}" |
	xargs -0 -n1 -P"$jobs" "$clang_tidy" -p "$build" --quiet --extra-arg=-Wno-unknown-warning-option \
		>"$log" 2>&1 || status=$?
grep -E '(warning|error): ' "$log" | sort -u || true
findings=$(grep -cE '(warning|error): ' "$log" || true)
echo "check-tidy: ${#files[@]} files, $findings finding(s), $(($(date +%s) - start)) s"
if [ "$status" -ne 0 ] || [ "$findings" -gt 0 ]; then
	exit 1
fi
