#!/usr/bin/env bash
# One command from a fresh machine to the whole test suite: installs the
# packages, builds, and runs every test (unit, BPF fixture table, netns
# integration, D-Bus, unit-file checks, lint, the Debian package and the VM
# suite) through ctest. Needs root for the BPF, namespace and VM tests; without
# root those are reported as skipped (under CI=true the VM suite fails).
# ctest -j3: the host tests run one at a time (they share a RESOURCE_LOCK,
# tests/CMakeLists.txt); beside them, niced, the package build, the VM suite's image build and
# qemu boot, and lint.tidy (CPU work alone).
# NT_VM_TESTS=OFF leaves the package and VM suites out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
build=${NT_BUILD_DIR:-build}
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf
fi
cd "$build"
ctest --output-on-failure --timeout 600 -j3 "$@"
