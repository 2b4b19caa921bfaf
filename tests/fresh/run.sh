#!/usr/bin/env bash
# The README's set-up on a bare Debian 12, checked for real: makes a minbase
# bookworm root with debootstrap, clones the current commit (HEAD) into it
# (at this repository's path),
# runs scripts/run.sh there as root until `build/ctl/nettallyctl status`
# answers on the root's own system bus, stops it with SIGINT as Ctrl-C does
# and checks that the machine is as it was: no nettally TC filter, qdisc or
# XDP program on any interface (each interface's `tc` and `ip link` output
# compared with before), no pin under the bpffs nettally dir, no process of the
# root left (nettallyd, dbus-daemon), and the totals kept in the state file.
# Reports how long each step took.
#
# Usage: tests/fresh/run.sh [--test] [--keep] [--root-only]
#   --test  also runs scripts/test.sh in the root (CI=true: a missing tool
#           fails its test) and requires that no integration suite is skipped
#   --keep  leaves the root's directory (unmounted) for a look afterwards
#   --root-only  makes (or finds) the cached bare root and stops: .ci/run
#           has it made while the suite builds and runs (debootstrap is
#           network and dpkg work), then runs the check itself
# Environment: NT_FRESH_CACHE (default /var/cache/nettally-fresh) keeps the
# debootstrap result and the downloaded .debs between runs (and the last run's
# logs in last-run/); every run starts from a copy of that bare root with an
# empty apt state and a fresh clone. The root's build uses this machine's
# ccache directory (bind-mounted; NT_FRESH_CCACHE=DIR another one, =none no
# cache): objects of the same source, flags, compiler and headers are taken from
# it, anything else is compiled in the root; the report counts the hits.
# Needs root, git, the machine's network to Debian's archive, and a kernel
# with BTF; it attaches nettallyd to this machine's interfaces for the trial.
set -euo pipefail

with_test=0 keep=0 root_only=0
for a in "$@"; do
	case $a in
	--test) with_test=1 ;;
	--keep) keep=1 ;;
	--root-only) root_only=1 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "fresh: unknown argument: $a" >&2; exit 2 ;;
	esac
done

say() { printf '[fresh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mounts, BPF)"
repo=$(git -C "$(dirname "$0")/../.." rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse HEAD)
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
	say "note: uncommitted changes in $repo are not checked (the root gets commit $commit)"
fi
cache=${NT_FRESH_CACHE:-/var/cache/nettally-fresh}
logs=$cache/last-run # the logs of the last run (run.log, test.log), kept
suite=bookworm
pin_dir=/sys/fs/bpf/nettally # config/nettally.yaml's pin_dir
state_file=var/lib/nettally/state.json # config/nettally.yaml's state_dir, in the root
# The clone in the root sits at the same path as this repository, so the root's build compiles the
# same command lines as this machine's (the BPF objects hold their source's path) and the compiler
# cache lent to it below can answer them.
src=$repo

declare -A took=()
order=()
step_start=0
begin() { step_start=$(date +%s.%N); say "$1"; }
took() {
	took[$1]=$(awk -v a="$step_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
	order+=("$1")
	say "step $1: ${took[$1]} s"
}
report() {
	local s
	for s in "${order[@]}"; do
		printf '[fresh] %-16s %5s s\n' "$s" "${took[$s]}" >&2
	done
}

# --- the mirror: the machine's own apt source for bookworm main ------------------------------
# mirror [SUITE]: the URI this machine takes SUITE from (default bookworm; for bookworm itself
# deb.debian.org when it has none, for another suite nothing).
mirror() {
	local f uri want=${1:-$suite}
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# deb822 stanzas: the first one of type deb whose suites include bookworm itself.
		uri=$(awk -v s="$want" '
			/^[[:space:]]*$/ { if (deb && hit && u != "") { print u; exit } deb = hit = 0; u = ""; next }
			tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
			tolower($1) == "uris:" { u = $2 }
			tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
			END { if (deb && hit && u != "") print u }' "$f" | head -n1)
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		uri=$(awk -v s="$want" '$1 == "deb" { o = ($2 ~ /^\[/) ? 1 : 0; if ($(3 + o) == s) { print $(2 + o); exit } }' "$f")
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
	[ "$want" != "$suite" ] || echo http://deb.debian.org/debian
}

# --- the machine's state that the trial must leave as it was ---------------------------------
snapshot() {
	local dev
	for dev in $(ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort); do
		echo "== $dev"
		ip -d link show dev "$dev" | grep -Eo 'xdp[a-z]*( |/)[^ ]*.*|prog/xdp.*' || true
		tc qdisc show dev "$dev" | grep -v '^qdisc \(noqueue\|pfifo_fast\|mq\|fq_codel\) ' || true
		tc filter show dev "$dev" ingress 2>/dev/null | sed 's/ id [0-9]*//; s/ tag [0-9a-f]*//'
		tc filter show dev "$dev" egress 2>/dev/null | sed 's/ id [0-9]*//; s/ tag [0-9a-f]*//'
	done
}

root='' run_dir='' pgid='' mounted=() before=''
root_pids() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && echo "${p#/proc/}"
	done
	return 0
}
cleanup() {
	local rc=$? pids m
	set +e
	if [ -n "$root" ]; then
		if [ -n "$pgid" ] && kill -0 -- "-$pgid" 2>/dev/null; then
			say "cleanup: stopping run.sh (SIGINT to its process group $pgid)"
			kill -INT -- "-$pgid" 2>/dev/null
			for _ in $(seq 60); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 1; done
		fi
		if [ -x "$root$src/build/daemon/nettallyd" ] && [ -e "$pin_dir" ]; then
			say "cleanup: pins left in $pin_dir; nettallyd --detach"
			chroot "$root" /bin/sh -c "cd '$src' && build/daemon/nettallyd --config config/nettally.yaml --detach"
		fi
		# --detach leaves the clsact qdiscs nettallyd added: remove those that were not there before
		# and carry no filter now.
		for dev in $(ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
			[ -n "$before" ] || break # nettallyd never started
			tc qdisc show dev "$dev" 2>/dev/null | grep -q '^qdisc clsact ' || continue
			printf '%s\n' "$before" | sed -n "/^== $dev\$/,/^== /p" | grep -q '^qdisc clsact ' && continue
			[ -z "$(tc filter show dev "$dev" ingress)$(tc filter show dev "$dev" egress)" ] || continue
			say "cleanup: removing the clsact qdisc left on $dev"
			tc qdisc del dev "$dev" clsact
		done
		pids=$(root_pids)
		if [ -n "$pids" ]; then
			say "cleanup: ending processes of the root: $(echo "$pids" | tr '\n' ' ')"
			# shellcheck disable=SC2086 # one pid a word
			kill -TERM $pids 2>/dev/null; sleep 2
			pids=$(root_pids)
			# shellcheck disable=SC2086
			[ -z "$pids" ] || kill -KILL $pids 2>/dev/null
		fi
		for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
			m=${mounted[i]}
			umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null || say "cleanup: cannot unmount $m"
		done
		if grep -q " ${root}[/ ]" /proc/self/mounts 2>/dev/null; then
			say "cleanup: mounts left under $root; not removing it"
			keep=1
		fi
	fi
	if [ -n "$run_dir" ] && [ -f "$run_dir/run.log" ]; then
		cp "$run_dir/run.log" "$logs/run.log"
	fi
	if [ -n "$run_dir" ]; then
		if [ "$keep" -eq 1 ]; then say "kept: $run_dir"; else rm -rf --one-file-system "$run_dir"; fi
	fi
	return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the bare root ------------------------------------------------------------------------------
if ! command -v debootstrap >/dev/null; then
	say "installing debootstrap"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null; }
fi
if [ "$root_only" -eq 0 ]; then
	if ! grep -q ' /sys/fs/bpf bpf ' /proc/mounts; then
		# As scripts/test.sh does; nettallyd would mount it too, but inside the root only.
		say "mounting bpffs on /sys/fs/bpf (it stays mounted, as on any systemd machine)"
		mount -t bpf bpf /sys/fs/bpf
	fi
	[ ! -e "$pin_dir" ] || die "$pin_dir exists already (a nettallyd runs on this machine?): cannot tell what the trial leaves"
	rm -rf "$logs" && mkdir -p "$logs"
fi

mkdir -p "$cache/debs/partial"
base=$cache/$suite-minbase
if [ ! -f "$base/.complete" ]; then
	url=$(mirror)
	begin "debootstrap --variant=minbase $suite from $url"
	rm -rf --one-file-system "$base"
	debootstrap --variant=minbase "$suite" "$base" "$url" >"$cache/debootstrap.log" 2>&1 ||
		die "debootstrap failed; see $cache/debootstrap.log"
	touch "$base/.complete"
	took debootstrap
else
	say "bare root from the cache: $base (remove it to debootstrap again)"
fi
if [ "$root_only" -eq 1 ]; then
	report
	exit 0
fi

run_dir=$(mktemp -d /var/tmp/nettally-fresh.XXXXXX)
root=$run_dir/root
begin "copying the bare root"
cp -a "$base" "$root"
rm -f "$root/.complete"
took copy-root
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The update suites a Debian 12 installation has (the installer adds them), from this machine's
# sources when it has them: the root then installs the versions this machine runs (the same
# headers, so the lent compiler cache below can answer), not the release's first ones.
for upd in "$suite-updates" "$suite-security"; do
	uri=$(mirror "$upd")
	[ -z "$uri" ] || echo "deb $uri $upd main" >>"$root/etc/apt/sources.list"
done
# dpkg without an fsync per file: the root is thrown away after the run (a crash loses it anyway),
# and the deps step installs some 500 packages.
echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/nettally-fresh-unsafe-io"
say "apt sources of the root: $(grep -c '^deb ' "$root/etc/apt/sources.list") ($(awk '$1 == "deb" { print $3 }' "$root/etc/apt/sources.list" | paste -sd' '))"

# --- mounts: the kernel's file systems, a /run of its own, the .deb cache ------------------------
bind() { # bind SRC DST: recursive, slave (nothing done inside propagates back)
	mkdir -p "$2"
	mount --rbind "$1" "$2"
	mounted+=("$2")
	mount --make-rslave "$2"
}
# The root as a mount point of its own, as / is on a machine: `ip netns exec` makes / a slave
# in its mount namespace, which fails (EINVAL) on a directory that is not a mount point.
mount --bind "$root" "$root"
mounted+=("$root")
mount --make-private "$root"
bind /proc "$root/proc"
bind /sys "$root/sys" # with /sys/fs/bpf and the cgroup mounts beneath it
if ! mountpoint -q "$root/sys/fs/bpf"; then
	bind /sys/fs/bpf "$root/sys/fs/bpf"
fi
bind /dev "$root/dev"
# Its own /run: its own system bus (/run/dbus), and `ip netns add` needs /run/netns.
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
mounted+=("$root/run")
mount --make-shared "$root/run"
bind "$cache/debs" "$root/var/cache/apt/archives"

# --- the compiler cache: this machine's, lent to the root ------------------------------------------
# scripts/deps.sh installs ccache and scripts/build.sh compiles through it; the clone is at the same
# path as here, so the root's build of a commit this machine has built (in CI: the suite's build just
# before) takes those objects instead of compiling the tree a second time. ccache
# reuses an object only when the compiler, the flags, the source and every header it read are the
# same (hashed); whatever the bare root has in another version is compiled there for real, and a
# header the root lacks still fails its build. The linking, the BPF objects and skeletons are made
# in the root as before. NT_FRESH_CCACHE=DIR lends another cache, =none none (a full compile).
cc_env=()
ccache_dir=${NT_FRESH_CCACHE:-}
if [ -z "$ccache_dir" ] && command -v ccache >/dev/null; then
	ccache_dir=$(ccache -k cache_dir)
fi
if [ -n "$ccache_dir" ] && [ "$ccache_dir" != none ]; then
	mkdir -p "$ccache_dir"
	bind "$ccache_dir" "$root/var/cache/nettally-ccache"
	# Where the root's cache lookups are counted, for the report (hits of the root's build only).
	cc_env=(CCACHE_DIR=/var/cache/nettally-ccache CCACHE_STATSLOG=/var/tmp/ccache-stats.log)
	say "the root's build uses this machine's compiler cache $ccache_dir"
fi

say "cloning $commit into the root"
mkdir -p "$(dirname "$root$src")"
git clone -q --no-checkout "$repo" "$root$src"
git -C "$root$src" -c advice.detachedHead=false checkout -q --detach "$commit"

before=$(snapshot)

in_root() { chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# --- scripts/run.sh: packages, build, nettallyd up and answering ---------------------------------
log=$run_dir/run.log
say "scripts/run.sh in the root (log: $log)"
t0=$(date +%s.%N)
# As a terminal runs it: its own process group (Ctrl-C = SIGINT to the group) and SIGINT not
# ignored (a background job of this script would start with SIGINT ignored, and bash cannot trap
# a signal ignored at its start).
setsid env --default-signal=INT chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${cc_env[@]}" \
	/bin/bash -c "cd '$src' && exec scripts/run.sh" >"$log" 2>&1 </dev/null &
run_pid=$!
pgid=$run_pid
t_build='' t_start='' t_up=''
deadline=$((SECONDS + 3600))
while :; do
	if ! kill -0 "$run_pid" 2>/dev/null; then
		wait "$run_pid" && rc=0 || rc=$?
		pgid=
		tail -n 40 "$log" >&2
		die "scripts/run.sh ended (status $rc) before nettallyctl status answered"
	fi
	[ -n "$t_build" ] || ! grep -q '^run.sh: building' "$log" || t_build=$(date +%s.%N)
	[ -n "$t_start" ] || ! grep -q '^run.sh: starting nettallyd' "$log" || t_start=$(date +%s.%N)
	if [ -n "$t_start" ] && in_root "$src/build/ctl/nettallyctl" status >"$run_dir/status.txt" 2>&1; then
		t_up=$(date +%s.%N)
		break
	fi
	[ "$SECONDS" -lt "$deadline" ] || die "nettallyctl status did not answer within an hour"
	sleep 0.5
done
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }
took[deps]=$(secs "$t0" "${t_build:-$t_start}") && order+=(deps)
took[build]=$(secs "${t_build:-$t_start}" "$t_start") && order+=(build)
took[start-to-status]=$(secs "$t_start" "$t_up") && order+=(start-to-status)
say "steps: deps ${took[deps]} s, build ${took[build]} s, start-to-status ${took[start-to-status]} s"
if [ -s "$root/var/tmp/ccache-stats.log" ]; then
	cc_stats=$(CCACHE_STATSLOG="$root/var/tmp/ccache-stats.log" ccache --show-log-stats -v 2>/dev/null || true)
	say "the root's build and the compiler cache:"
	grep -E '^ *(Cacheable calls|Hits|Misses|Uncacheable)' <<<"$cc_stats" | awk '!seen[$1]++' | sed 's/^/    /' >&2 || true
fi
say "nettallyctl status answers:"
sed 's/^/    /' "$run_dir/status.txt" >&2
[ -d "$pin_dir" ] || die "nettallyd runs but $pin_dir is not there: the check would prove nothing"
during=$(snapshot)
[ "$during" != "$before" ] || die "nettallyd runs but no interface shows its programs: the check would prove nothing"

# Counts to find again in the state file: a little traffic, then what the daemon reports.
sleep 2
in_root "$src/build/ctl/nettallyctl" --json interfaces >"$run_dir/interfaces.json" ||
	die "nettallyctl --json interfaces failed"

# --- Ctrl-C ----------------------------------------------------------------------------------------
begin "SIGINT to scripts/run.sh's process group (Ctrl-C)"
stop_mark=$(date +%s)
kill -INT -- "-$pgid"
rc=0
for _ in $(seq 120); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.5; done
kill -0 "$run_pid" 2>/dev/null && die "scripts/run.sh still runs 60 s after SIGINT"
wait "$run_pid" || rc=$?
took stop
sleep 0.5
pgid=
sed -n '/^run.sh: starting nettallyd/,$p' "$log" | tail -n 15 | sed 's/^/    /' >&2
[ "$rc" -eq 0 ] || die "scripts/run.sh exited with status $rc after SIGINT"

# --- the machine as it was -------------------------------------------------------------------------
after=$(snapshot)
if [ "$after" != "$before" ]; then
	diff <(echo "$before") <(echo "$after") >&2 || true
	die "interfaces differ from before the trial (nettally TC filters, qdiscs or XDP programs left)"
fi
say "ok: every interface's qdiscs, ingress/egress filters and XDP as before"
if [ -e "$pin_dir" ]; then
	find "$pin_dir" >&2
	die "pins left under $pin_dir"
fi
say "ok: nothing under $pin_dir"
left=$(root_pids)
if [ -n "$left" ]; then
	# shellcheck disable=SC2086
	ps -o pid,args -p $left >&2 || true
	die "processes of the root left running: $(echo "$left" | tr '\n' ' ')"
fi
say "ok: no process of the root left (nettallyd, dbus-daemon)"
[ -f "$root/$state_file" ] || die "no state file /$state_file"
[ "$(stat -c %Y "$root/$state_file")" -ge "$stop_mark" ] || die "/$state_file was not written at the stop"
# Every interface's totals in the state file are at least what nettallyctl reported before the stop.
cp "$run_dir/interfaces.json" "$root/tmp/interfaces.json"
in_root python3 - "/$state_file" /tmp/interfaces.json <<'EOF' || die "totals not kept in /$state_file"
import json, sys
with open(sys.argv[1]) as f:
    header, body = f.read().split("\n", 1)
assert header.startswith("nettally-state "), header
saved = json.loads(body)["collector"]["interfaces"]
seen = json.load(open(sys.argv[2]))
rows = seen["interfaces"] if isinstance(seen, dict) else seen
checked = 0
for row in rows:
    name = row["name"]
    for d in ("ingress", "egress"):
        reported = row[d]["packets"] if isinstance(row[d], dict) else None
        if reported is None:
            continue
        kept = sum(saved[name]["dirs"][d]["total"][0])
        if kept < reported:
            sys.exit(f"{name} {d}: {kept} packets in the state file, {reported} reported before the stop")
        print(f"    {name} {d}: {reported} packets reported, {kept} kept", file=sys.stderr)
        checked += 1
if not checked:
    sys.exit("no interface totals to compare")
EOF
say "ok: totals kept in /$state_file"

# --- scripts/test.sh, the whole suite, in the same root ------------------------------------------
if [ "$with_test" -eq 1 ]; then
	tlog=$run_dir/test.log
	begin "scripts/test.sh in the root, CI=true (log: $tlog)"
	trc=0
	in_root CI=true /bin/bash -c "cd '$src' && exec scripts/test.sh" >"$tlog" 2>&1 </dev/null || trc=$?
	took test
	cp "$tlog" "$logs/test.log"
	grep -E '^[[:space:]]*[0-9]+/[0-9]+ Test +#[0-9]+: (integration|systemd)' "$tlog" | sed 's/^/    /' >&2 || true
	grep -E 'tests passed|tests failed' "$tlog" >&2 || true
	[ "$trc" -eq 0 ] || die "scripts/test.sh failed (status $trc); log: $logs/test.log"
	skipped=$(grep -E 'integration\.[a-z_]+ .*\*\*\*Skipped|integration\.[a-z_]+ .*Not Run' "$tlog" || true)
	[ -z "$skipped" ] || { echo "$skipped" >&2; die "integration suites skipped in the fresh root"; }
	say "ok: the whole suite passed, no integration suite skipped"
fi

say "done: the README's set-up works on a bare Debian 12 and Ctrl-C leaves the machine as it was"
report
