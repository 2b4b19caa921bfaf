#!/usr/bin/env bash
# Builds the Debian package nettally_VERSION_ARCH.deb (debian/, dh + CMake) from a clean clone of
# HEAD, so nothing uncommitted or built in the working tree gets in. The .deb (and its -dbgsym
# .deb) land in OUTDIR (default build/package). Prints how long the build took.
#
# Usage: scripts/package.sh [--from-build BUILD_DIR] [OUTDIR]
#   --from-build BUILD_DIR  packages a build tree already compiled (scripts/build.sh; the suite's
#              own, as ctest package.deb does) instead of compiling again: dpkg-buildpackage with
#              debian/rules' NT_PREBUILT mode, which brings the tree's nettallyd, nettallyctl and man
#              pages up to date (a no-op when they are) and installs them with `cmake --install`.
#              The binaries are then those the suite tested, built with that tree's flags (not
#              dpkg-buildflags' hardening); without it the package is compiled from the clone the
#              Debian way.
# Needs the build dependencies of debian/control (scripts/deps.sh installs them) and git.
# ccache is used when installed (CCACHE_BASEDIR is the clone, so every clone hits the same
# cache); DEB_BUILD_OPTIONS defaults to parallel=2.
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
prebuilt=''
if [ "${1:-}" = --from-build ]; then
	[ $# -ge 2 ] || { echo "package: --from-build needs a build directory" >&2; exit 2; }
	[ -f "$2/CMakeCache.txt" ] || { echo "package: $2 is not a configured build tree (no CMakeCache.txt)" >&2; exit 2; }
	prebuilt=$(cd "$2" && pwd)
	shift 2
fi
out=${1:-$repo/build/package}
mkdir -p "$out"
out=$(cd "$out" && pwd)
commit=$(git -C "$repo" rev-parse HEAD)
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
	echo "package: note: uncommitted changes in $repo are not packaged (building commit $commit)" >&2
fi

# A fixed place under OUTDIR, not a random one: the compiler flags hold the source path
# (-ffile-prefix-map), so ccache only hits when it stays the same.
work=$out/src
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
git clone -q --no-checkout "$repo" "$work/nettally"
git -C "$work/nettally" -c advice.detachedHead=false checkout -q --detach "$commit"

cmake_args=''
if command -v ccache >/dev/null; then
	export CCACHE_BASEDIR=$work/nettally CCACHE_NOHASHDIR=1
	cmake_args='-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache'
fi
if [ -n "$prebuilt" ] && command -v ccache >/dev/null; then
	# The tree's own compile (if anything is out of date) hashes paths relative to its source.
	CCACHE_BASEDIR=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$prebuilt/CMakeCache.txt")
	export CCACHE_BASEDIR
fi
start=$(date +%s)
(
	cd "$work/nettally"
	DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-parallel=2} NT_CMAKE_ARGS=$cmake_args NT_PREBUILT=$prebuilt \
		dpkg-buildpackage -b -us -uc
) >"$work/build.log" 2>&1 || {
	tail -n 60 "$work/build.log" >&2
	echo "package: dpkg-buildpackage failed (log above)" >&2
	exit 1
}
took=$(($(date +%s) - start))
rm -f "$out"/nettally_*.deb "$out"/nettally-dbgsym_*.deb
cp "$work"/nettally_*.deb "$out"/
cp "$work"/nettally-dbgsym_*.deb "$out"/ 2>/dev/null || true
cp "$work/build.log" "$out/build.log"
echo "package: build log in $out/build.log"
for f in "$out"/nettally_*.deb; do
	echo "package: $f ($(du -k "$f" | cut -f1) KiB), built in ${took} s${prebuilt:+ from $prebuilt}"
done
