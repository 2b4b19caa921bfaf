#!/usr/bin/env bash
# Installs every Debian package nettally needs to build, run and test.
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail

# Everything the README's two commands (scripts/run.sh, scripts/test.sh) and the tests run, on a
# bare Debian 12 (debootstrap --variant=minbase): nothing is assumed to be there already, not even
# what minbase happens to bring. tests/fresh/run.sh checks this list on such a root.
packages=(
	# build
	build-essential cmake pkg-config clang llvm
	libbpf-dev bpftool libelf-dev zlib1g-dev
	libsystemd-dev libsdbus-c++-dev libsdbus-c++-bin
	libyaml-cpp-dev libspdlog-dev libfmt-dev libgtest-dev nlohmann-json3-dev
	libcurl4-openssl-dev libcli11-dev prometheus-cpp-dev
	# (libcurl4-openssl-dev brings libcurl4: nettallyd builds against the headers and dlopen()s
	# libcurl.so.4 at its first transfer; the Debian package names libcurl4 in Depends)
	# MD5 of the RADIUS authenticators (daemon/core/radius.h): libgcrypt, which libsystemd maps
	# anyway, named here rather than relied on through another -dev package
	libgcrypt20-dev
	# Ed25519 signatures of traffic class bundles (daemon/core/classes_sign.h)
	libsodium-dev
	# the conntrack table and its events (NAT: daemon/os/conntrack.h)
	libnetfilter-conntrack-dev
	# run: dbus-daemon, busctl (systemd), /usr/share/dbus-1/system.conf and the messagebus user
	# (dbus-system-bus-common), dbus-send (dbus-bin); ip, tc, ss (iproute2); mount, mountpoint,
	# nsenter, setpriv (mount, util-linux)
	dbus-daemon dbus-bin dbus-system-bus-common systemd iproute2 util-linux mount coreutils tzdata
	# test: python3 (standard library only), tshark + dumpcap, iperf3, ethtool, sysctl (procps),
	# ping, useradd/userdel/chpasswd (passwd), stdbuf (coreutils), gzip, bpftool (above),
	# systemd-analyze (systemd, above)
	python3 tshark iperf3 ethtool procps iputils-ping passwd gzip
	# test: a real PPPoE session where the kernel has PPP (test_wire.py PppdSessionTest; the VM
	# suite's guest): pppd with its kernel-mode PPPoE plugin (ppp), rp-pppoe's pppoe-server (pppoe)
	ppp pppoe
	# test: the Prometheus server and promtool the metrics test starts (prometheus); the terminal
	# nettallyctl top runs in (tmux); the SVG converter that opens history --graph's file
	prometheus tmux librsvg2-bin
	# test: the IPFIX collectors tests/integration/test_export.py reads the export back with
	# (nfcapd, nfdump; nfacctd is in pmacct, below)
	nfdump
	# test: the masquerading gateway of the NAT export test (nft), its conntrack table (conntrack)
	nftables conntrack
	# test: the DHCP server and client of tests/integration/test_subscribers.py (dnsmasq's binary
	# without its system service; busybox's udhcpc)
	dnsmasq-base busybox
	# test and bench: radclient, the access server of tests/integration/test_radius.py and
	# bench/radius_bench.py (freeradius-utils: the client tools without the server)
	freeradius-utils
	# bench: the NetFlow exporters it compares with, perf; test: nfacctd (IPFIX collector)
	pmacct softflowd linux-perf
	# test: the file servers the upload tests start themselves (sshd, ssh-keygen, openssl)
	vsftpd nginx-light openssh-server openssh-client openssl
	# lint and fuzz: scripts/check-{format,tidy}.sh, tests/fuzz (libFuzzer runtime)
	clang-format clang-tidy libclang-rt-14-dev
	# the Debian package (scripts/package.sh, tests/package): dpkg-buildpackage, dh with the
	# sysusers add-on, man pages from scdoc, lintian, groff (the man page check), git (the clean clone)
	dpkg-dev debhelper scdoc lintian groff-base git
	# the VM suite (tests/vm): qemu in TCG mode with its BIOS, qemu-img, mmdebstrap for the guest's
	# root, mkfs.ext4 -d for its disk
	qemu-system-x86 qemu-utils seabios mmdebstrap e2fsprogs
	# build: the compiler cache scripts/build.sh uses when present; tests/fresh/run.sh lends the
	# bare root this machine's cache, so its build of the same tree is not a second full compile
	ccache
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
