#!/usr/bin/env bash
# One command from a fresh machine to the whole test suite: installs the
# packages, builds, and runs every test (unit, BPF fixture table, netns
# integration, D-Bus, unit-file checks) through ctest. Needs root for the
# BPF and namespace tests; without root those are reported as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
build=${NT_BUILD_DIR:-build}
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf
fi
cd "$build"
ctest --output-on-failure --timeout 600 "$@"
