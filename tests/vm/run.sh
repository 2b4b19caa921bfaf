#!/usr/bin/env bash
# The VM suite: a real Debian 12 gateway in qemu. Boots Debian 12's own kernel (the
# linux-image-6.1.0-*-amd64 package, with its modules and initramfs) on a Debian 12 root made
# with mmdebstrap, systemd as PID 1, in TCG mode (no /dev/kvm needed), once; a unit in the guest
# (nettally-vmtest.service) runs tests/vm/guest.sh, which installs the .deb with apt, drives the
# service through systemctl and writes one line per check to a 9p share; then the guest powers
# off. The serial console is kept in OUT/console.log, the guest's log in OUT/guest.log.
#
# Usage: tests/vm/run.sh [--deb DEB] [--build DIR] [--out DIR] [--keep] [--image-only]
#   --deb DEB  the package to test, or a directory holding it (default: build/package, where
#              scripts/package.sh puts it)
#   --build DIR  a build tree: its nettallyd and nettallyctl run in the guest after the package
#              checks under this source's integration harness (VLAN sub-interfaces against
#              captures), and its tests/bpf/nettally_bpf_tests (the verifier budget); without it
#              only the package is tested
#   --out DIR  where results, console.log, guest.log, security.txt, nettallyd.journal go
#              (default build/vm)
#   --keep     keeps the run's overlay disk and share (paths printed)
#   --image-only  builds (or finds) the cached root image and stops: no package, no boot
# Exit status: 0 every check passed, 1 a check failed or the VM did not finish, 77 skipped
# (no qemu, no root: outside CI only; under CI=true that fails).
# Environment: NT_VM_CACHE (default /var/cache/nettally-vm) holds the root image, its kernel and
# initramfs, keyed by a hash of the package list (tests/vm/packages.txt + the .deb's runtime
# dependencies) and of the image recipe in this file: a change rebuilds it, old images are removed.
# NT_VM_TIMEOUT (default 3000 s) bounds the whole boot. NT_VM_EXTRA=FILE: a bash file the guest
# sources after the package checks, before the purge (to try something in the guest; its lines
# go to guest.log, and to results if it writes them there).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
deb='' build='' out=$repo/build/vm keep=0 image_only=0
while [ $# -gt 0 ]; do
	case $1 in
	--deb) deb=$2; shift ;;
	--out) out=$2; shift ;;
	--build) build=$2; shift ;;
	--keep) keep=1 ;;
	--image-only) image_only=1 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "vm: unknown argument: $1" >&2; exit 2 ;;
	esac
	shift
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/kt-logs"
rm -f "$out/results" "$out/guest.log" "$out/console.log" "$out/security.txt" "$out/nettallyd.journal"

say() { printf '[vm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
skip() { # outside CI a missing prerequisite skips, saying why; under CI it fails
	case ${CI:-} in
	'' | 0 | false | no) say "SKIP: $*"; echo "skip $*" >"$out/results"; exit 77 ;;
	*) say "FAIL: $* (CI: scripts/deps.sh must install it, and CI runs as root)"; exit 1 ;;
	esac
}
die() { say "FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root (mmdebstrap, chroot, the image's ownership)"
missing=()
for t in qemu-system-x86_64 qemu-img mmdebstrap mkfs.ext4 dpkg-deb; do
	command -v "$t" >/dev/null || missing+=("$t")
done
[ ${#missing[@]} -eq 0 ] || skip "missing tools: ${missing[*]}"
if [ "$image_only" -eq 1 ]; then
	:
elif [ -z "$deb" ] || [ -d "$deb" ]; then
	dir=${deb:-$repo/build/package}
	deb=$(ls "$dir"/nettally_*.deb 2>/dev/null | head -n1 || true)
	[ -n "$deb" ] || die "no .deb in $dir (run scripts/package.sh, or ctest -L vm, which builds it first)"
fi
[ "$image_only" -eq 1 ] || [ -f "$deb" ] || die "no such package: $deb"

# --- the root image, cached by its package list ------------------------------------------------
recipe=4 # bump when the image steps below change
packages=$(sed 's/#.*//' "$here/packages.txt" | tr ' ' '\n' | grep . | sort -u)
key=$(printf 'recipe %s\n%s\n' "$recipe" "$packages" | sha256sum | cut -c1-16)
cache=${NT_VM_CACHE:-/var/cache/nettally-vm}
image=$cache/image-$key
mirror() { # the machine's own apt source for bookworm (deb822 or one-line), else deb.debian.org
	local u
	u=$(awk 'tolower($1) == "uris:" { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	[ -n "$u" ] || u=$(awk '$1 == "deb" && / bookworm / { print ($2 ~ /^\[/) ? $3 : $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
	echo "${u:-http://deb.debian.org/debian}"
}
if [ ! -f "$image/.complete" ]; then
	mkdir -p "$cache"
	for old in "$cache"/image-*; do
		[ -e "$old" ] && [ "$old" != "$image" ] && { say "removing the outdated image $old"; rm -rf --one-file-system "$old"; }
	done
	rm -rf --one-file-system "$image"
	mkdir -p "$image"
	t0=$SECONDS
	url=$(mirror)
	say "building the root image $key with mmdebstrap from $url ($(echo "$packages" | wc -l) packages listed)"
	rootdir=$image/root
	# The downloaded .debs are kept in $cache/debs for the next rebuild.
	mkdir -p "$cache/debs"
	# The initramfs holds only what finds the root disk (MODULES=list: virtio PCI and block, ext4,
	# gzip): with initramfs-tools' default MODULES=most, mkinitramfs (run twice, by the kernel's
	# postinst and by the initramfs-tools trigger) copied and compressed most of the kernel's
	# modules and took most of a 45-minute image build on a 2-CPU machine.
	# shellcheck disable=SC2016 # "$1" in the hooks is the root directory mmdebstrap passes them
	nice -n 10 mmdebstrap --variant=minbase --include="$(echo "$packages" | paste -sd, -)" \
		--aptopt='APT::Install-Recommends "false"' \
		--setup-hook="mkdir -p \"\$1/var/cache/apt/archives\" && cp -a '$cache/debs/.' \"\$1/var/cache/apt/archives/\"" \
		--setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d" && printf "MODULES=list\nCOMPRESS=gzip\n" >"$1/etc/initramfs-tools/conf.d/nettally-vm.conf" && printf "virtio_pci\nvirtio_blk\ncrc32c_generic\next4\n" >"$1/usr/share/initramfs-tools/modules.d/nettally-vm"' \
		--customize-hook="cp -a \"\$1\"/var/cache/apt/archives/*.deb '$cache/debs/' 2>/dev/null || true" \
		bookworm "$rootdir" "deb $url bookworm main" >"$image/mmdebstrap.log" 2>&1 ||
		{ tail -n 30 "$image/mmdebstrap.log" >&2; die "mmdebstrap failed; see $image/mmdebstrap.log"; }
	say "mmdebstrap took $((SECONDS - t0)) s"
	# The guest: a hostname, the root disk, a user without privileges, the check unit, no timers.
	echo ntvm >"$rootdir/etc/hostname"
	echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$rootdir/etc/fstab"
	chroot "$rootdir" useradd -m -s /bin/bash vmuser
	mkdir -p "$rootdir/mnt/share"
	cat >"$rootdir/etc/systemd/system/nettally-vmtest.service" <<'UNIT'
[Unit]
Description=nettally VM checks (tests/vm/guest.sh from the 9p share)
After=multi-user.target

[Service]
Type=simple
ExecStartPre=/sbin/modprobe -a 9pnet_virtio 9p
ExecStartPre=/bin/mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 ntshare /mnt/share
ExecStart=/bin/bash -c 'systemctl is-system-running --wait >/dev/null; exec /bin/bash /mnt/share/guest.sh'
ExecStopPost=/bin/sh -c 'sync; umount /mnt/share; systemctl --no-block poweroff'
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
UNIT
	chroot "$rootdir" systemctl enable nettally-vmtest.service >/dev/null 2>&1
	for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
		ln -sf /dev/null "$rootdir/etc/systemd/system/$u"
	done
	cp -L "$rootdir"/vmlinuz "$image/vmlinuz" 2>/dev/null || cp "$(ls "$rootdir"/boot/vmlinuz-* | head -n1)" "$image/vmlinuz"
	cp -L "$rootdir"/initrd.img "$image/initrd.img" 2>/dev/null || cp "$(ls "$rootdir"/boot/initrd.img-* | head -n1)" "$image/initrd.img"
	ls "$rootdir"/lib/modules >"$image/kernel-version"
	rm -rf "$rootdir"/var/cache/apt/archives/*.deb "$rootdir"/var/lib/apt/lists/*_Packages
	t1=$SECONDS
	mkfs.ext4 -q -F -L ntvmroot -d "$rootdir" "$image/root.img" 3G
	say "mkfs.ext4 of the root took $((SECONDS - t1)) s"
	rm -rf --one-file-system "$rootdir"
	touch "$image/.complete"
	say "image built in $((SECONDS - t0)) s (kernel $(cat "$image/kernel-version"))"
else
	say "root image from the cache: $image (kernel $(cat "$image/kernel-version"))"
fi

[ "$image_only" -eq 0 ] || exit 0

# --- one boot ------------------------------------------------------------------------------------
run=$(mktemp -d /var/tmp/nettally-vm.XXXXXX)
qpid=''
cleanup() {
	local rc=$?
	[ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true
	[ -f "$run/share/guest.log" ] && cp "$run/share/guest.log" "$out/"
	[ -f "$run/share/security.txt" ] && cp "$run/share/security.txt" "$out/"
	[ -f "$run/share/nettallyd.journal" ] && cp "$run/share/nettallyd.journal" "$out/"
	[ -d "$run/share/kt-logs" ] && rm -rf "$out/kt-logs" && cp -r "$run/share/kt-logs" "$out/"
	[ -f "$run/console.log" ] && cp "$run/console.log" "$out/"
	if [ "$keep" -eq 1 ]; then say "kept: $run"; else rm -rf --one-file-system "$run"; fi
	return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$run/share/extra"
cp "$deb" "$here/guest.sh" "$run/share/"
[ -z "${NT_VM_EXTRA:-}" ] || cp "$NT_VM_EXTRA" "$run/share/extra.sh"
if [ -n "$build" ]; then
	kt=$run/share/kt
	mkdir -p "$kt/build/daemon" "$kt/build/ctl" "$kt/build/tests/bpf" "$kt/src/tests"
	for f in daemon/nettallyd ctl/nettallyctl tests/bpf/nettally_bpf_tests; do
		[ -x "$build/$f" ] || die "not built: $build/$f"
		cp "$build/$f" "$kt/build/$f"
	done
	cp -r "$repo/tests/integration" "$kt/src/tests/"
	cp -r "$repo/systemd" "$kt/src/"
fi
# Dependencies of the .deb that the image lacks (the first of each alternative, unless another one
# is installed): downloaded here, installed in the guest beside the .deb.
installed=$(debugfs -R 'cat /var/lib/dpkg/status' "$image/root.img" 2>/dev/null |
	awk '/^Package: / { p = $2; prov = ""; ok = 0 }
		/^Provides: / { prov = substr($0, 11) }
		/^Status: install ok installed/ { ok = 1 }
		/^$/ { if (ok) { print p; n = split(prov, a, ","); for (i = 1; i <= n; i++) { x = a[i]; sub(/\(.*/, "", x); gsub(/ /, "", x); if (x != "") print x } } ok = 0 }
		END { if (ok) print p }' | sort -u)
extra=()
while read -r alts; do
	[ -n "$alts" ] || continue
	hit=0
	for a in $(tr '|' ' ' <<<"$alts"); do grep -qx "$a" <<<"$installed" && hit=1; done
	[ "$hit" -eq 1 ] || extra+=("$(tr '|' ' ' <<<"$alts" | awk '{ print $1 }')")
done < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/([^)]*)//g; s/[[:space:]]//g')
if [ ${#extra[@]} -gt 0 ]; then
	say "not in the image, fetched for the guest: ${extra[*]} (add them to tests/vm/packages.txt)"
	(cd "$run/share/extra" && apt-get download -q "${extra[@]}" >/dev/null) ||
		die "apt-get download ${extra[*]} failed"
fi
qemu-img create -q -f qcow2 -F raw -b "$image/root.img" "$run/disk.qcow2"
say "booting $(basename "$deb") on Debian 12 ($(cat "$image/kernel-version")), TCG, 2 vCPUs"
t0=$(date +%s.%N)
nice -n 10 timeout "${NT_VM_TIMEOUT:-3000}" qemu-system-x86_64 -accel tcg -M pc -cpu max -smp 2 -m 1536 \
	-display none -monitor none -serial "file:$run/console.log" -no-reboot -nic none \
	-kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
	-append "root=/dev/vda rw console=ttyS0 panic=-1 quiet systemd.show_status=1" \
	-drive "file=$run/disk.qcow2,if=virtio,format=qcow2" \
	-virtfs "local,path=$run/share,mount_tag=ntshare,security_model=none,id=ntshare" &
qpid=$!
rc=0
wait "$qpid" || rc=$?
qpid=''
wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
[ "$rc" -ne 124 ] || say "the VM did not power off within ${NT_VM_TIMEOUT:-3000} s"
[ -f "$run/share/results" ] || { tail -n 30 "$run/console.log" >&2 || true; die "no results from the guest (qemu status $rc)"; }
cp "$run/share/results" "$out/results"
echo "figure vm_wall_s $wall" >>"$out/results"
sed 's/^/    /' "$out/results" >&2
grep -qx done "$out/results" || { tail -n 20 "$run/share/guest.log" >&2 || true; die "the guest did not finish its checks"; }
if grep -q '^FAIL ' "$out/results"; then
	die "$(grep -c '^FAIL ' "$out/results") check(s) failed; see $out/guest.log"
fi
say "all checks passed; VM wall time ${wall} s"
