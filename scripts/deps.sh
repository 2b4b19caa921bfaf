#!/usr/bin/env bash
# Installs every Debian package nettally needs to build, run and test.
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail

packages=(
	# build
	build-essential cmake pkg-config clang llvm
	libbpf-dev bpftool libelf-dev zlib1g-dev
	libsystemd-dev libsdbus-c++-dev libsdbus-c++-bin
	libyaml-cpp-dev libspdlog-dev libfmt-dev libgtest-dev nlohmann-json3-dev
	libcurl4-openssl-dev
	libcli11-dev
	# run
	dbus-daemon dbus-bin systemd iproute2 util-linux tzdata
	# test
	python3 tshark iperf3 ethtool procps iputils-ping pmacct softflowd linux-perf
	# test: the file servers the upload tests start themselves
	vsftpd nginx-light openssh-server openssh-client openssl
	# lint and fuzz: scripts/check-{format,tidy}.sh, tests/fuzz (libFuzzer runtime)
	clang-format clang-tidy libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: need root to install: ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer for it.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
