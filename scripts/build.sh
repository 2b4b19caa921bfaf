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
# The package and VM suites are registered (ctest -L package, -L vm) unless NT_VM_TESTS=OFF.
vm=${NT_VM_TESTS:-ON}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" "${launcher[@]}" \
	-DNT_VM_TESTS="$vm" -DNT_PACKAGE_TESTS="$vm" >/dev/null
cmake --build "$build" -j"$(nproc)"
