#!/usr/bin/env bash
# One command from a fresh machine to nettallyd running for real: installs the
# packages, builds, installs the bus policy, starts a system bus if none runs,
# and runs nettallyd with the shipped default config (config/nettally.yaml:
# every non-loopback interface) until Ctrl-C. Query it from another shell:
# build/ctl/nettallyctl status
#
# This is a trial run, so Ctrl-C (SIGINT) or SIGTERM leaves the machine as it
# was: nettallyd saves its totals and stops, then `nettallyd --detach` removes
# its programs from every interface and its pins from bpffs (the totals stay in
# the state file for the next start), and the system bus this script started,
# if it started one, is stopped. (A nettallyd stopped by systemd instead keeps
# its programs counting until it starts again.)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "run.sh: nettallyd loads BPF programs and attaches them to interfaces; run as root" >&2
	exit 1
fi
echo "run.sh: installing packages (scripts/deps.sh)" >&2
bash scripts/deps.sh
echo "run.sh: building (scripts/build.sh)" >&2
bash scripts/build.sh
build=${NT_BUILD_DIR:-build}
nettallyd=$build/daemon/nettallyd
config=${NT_CONFIG:-config/nettally.yaml}
bus_socket=/run/dbus/system_bus_socket

bus_pid=
daemon_pid=
stop_signal=

# Ctrl-C also ends whatever the output is piped into (`scripts/run.sh | tee log`): SIGPIPE must not
# cut the stop short (nettallyd saving its totals, the detach), so it is ignored here and in the
# children, and the messages from here on never fail the script.
trap '' PIPE
note() { printf 'run.sh: %s\n' "$*" >&2 2>/dev/null || true; }

# Interfaces with a clsact qdisc (where TC filters hang), one name a line.
clsact_devs() {
	local dev
	for dev in $(ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
		tc qdisc show dev "$dev" 2>/dev/null | grep -q '^qdisc clsact ' && echo "$dev"
	done
	return 0
}

# shellcheck disable=SC2317 # run from the EXIT trap
stop_bus() {
	[ -n "$bus_pid" ] || return 0
	note "stopping the system bus it started (dbus-daemon pid $bus_pid)"
	kill -TERM "$bus_pid" 2>/dev/null || true
	wait "$bus_pid" 2>/dev/null || true
	bus_pid=
	rm -f "$bus_socket" /run/dbus/pid
	rmdir /run/dbus/containers 2>/dev/null || true
}

# shellcheck disable=SC2317 # run from the INT and TERM traps
on_signal() {
	stop_signal=$1
	if [ -n "$daemon_pid" ]; then
		kill -"$1" "$daemon_pid" 2>/dev/null || true
	else
		exit 130
	fi
}

trap stop_bus EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

# The bus reads its policy from /etc/dbus-1/system.d at start and on change.
install -D -m 0644 systemd/org.nettally.Accounting1.conf /etc/dbus-1/system.d/org.nettally.Accounting1.conf
if ! busctl --system status >/dev/null 2>&1; then
	note "no system bus running; starting dbus-daemon --system"
	mkdir -p /run/dbus
	rm -f "$bus_socket" /run/dbus/pid
	dbus-daemon --system --nofork &
	bus_pid=$!
	for _ in $(seq 100); do
		busctl --system status >/dev/null 2>&1 && break
		kill -0 "$bus_pid" 2>/dev/null || { bus_pid=; note "dbus-daemon --system failed"; exit 1; }
		sleep 0.1
	done
fi

state_dir=$(sed -n 's/^state_dir:[[:space:]]*//p' "$config" | tr -d '"' | head -n1)
if [ -n "$state_dir" ]; then
	mkdir -p "$state_dir"
fi
clsact_before=$(clsact_devs)
note "starting nettallyd with $config (Ctrl-C to stop and detach)"
"$nettallyd" --config "$config" &
daemon_pid=$!
rc=0
while :; do
	wait "$daemon_pid" && rc=0 || rc=$?
	# A trapped signal interrupts wait; go on waiting until nettallyd itself has exited.
	kill -0 "$daemon_pid" 2>/dev/null || break
done
daemon_pid=

if [ -z "$stop_signal" ] && [ "$rc" -ne 0 ]; then
	# nettallyd failed (an error it has reported): its programs stay, as after a crash.
	note "nettallyd exited with status $rc"
	exit "$rc"
fi
# Stopped: by Ctrl-C or SIGTERM to run.sh, or by a signal that reached nettallyd alone (it exits
# with 0 only when told to stop; Ctrl-C reaches it even where run.sh was started with SIGINT
# ignored, as a background job is).
note "nettallyd stopped (${stop_signal:+SIG$stop_signal, }status $rc); detaching: nettallyd --detach"
detach_rc=0
"$nettallyd" --config "$config" --detach || detach_rc=$?
if [ "$detach_rc" -ne 0 ]; then
	note "nettallyd --detach failed (status $detach_rc): programs or pins may remain"
	exit "$detach_rc"
fi
# --detach leaves the clsact qdiscs the filters hung on: remove those nettallyd added (none
# before it started, no filter left on them now), so every interface is as it was.
for dev in $(clsact_devs); do
	grep -qxF -- "$dev" <<<"$clsact_before" && continue
	[ -z "$(tc filter show dev "$dev" ingress 2>/dev/null)$(tc filter show dev "$dev" egress 2>/dev/null)" ] || continue
	tc qdisc del dev "$dev" clsact 2>/dev/null && note "removed the clsact qdisc nettallyd added on $dev"
done
exit "$rc"
