#!/usr/bin/env bash
# Configures and builds nettally into ${NT_BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${NT_BUILD_DIR:-build}
# ccache, when installed, makes a rebuild of an unchanged file free, in this tree or another clone
# (paths relative to the repository root, the build directory not hashed).
launcher=()
if command -v ccache >/dev/null; then
	export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
	launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
# The package suite (ctest -L package) and the VM suite (ctest -L vm) are registered unless
# NT_PACKAGE_TESTS=OFF, NT_VM_TESTS=OFF (README "The VM suite").
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" "${launcher[@]}" \
	-DNT_VM_TESTS="${NT_VM_TESTS:-ON}" -DNT_PACKAGE_TESTS="${NT_PACKAGE_TESTS:-ON}" >/dev/null
cmake --build "$build" -j"$(nproc)"
