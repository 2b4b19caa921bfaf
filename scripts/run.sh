#!/usr/bin/env bash
# One command from a fresh machine to nettallyd running for real: installs the
# packages, builds, installs the bus policy, starts a system bus if none runs,
# and runs nettallyd in the foreground with the shipped default config
# (config/nettally.yaml: every non-loopback interface). Ctrl-C stops it and
# detaches its programs. Query it from another shell: build/ctl/nettallyctl status
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "run.sh: nettallyd loads BPF programs and attaches them to interfaces; run as root" >&2
	exit 1
fi
bash scripts/deps.sh
bash scripts/build.sh
build=${NT_BUILD_DIR:-build}

# The bus reads its policy from /etc/dbus-1/system.d at start and on change.
install -D -m 0644 systemd/org.nettally.Accounting1.conf /etc/dbus-1/system.d/org.nettally.Accounting1.conf
bus_socket=/run/dbus/system_bus_socket
if ! busctl --system status >/dev/null 2>&1; then
	echo "run.sh: no system bus running; starting dbus-daemon --system"
	mkdir -p /run/dbus
	rm -f "$bus_socket" /run/dbus/pid
	dbus-daemon --system --fork
fi

config=${NT_CONFIG:-config/nettally.yaml}
state_dir=$(sed -n 's/^state_dir:[[:space:]]*//p' "$config" | tr -d '"' | head -n1)
[ -n "$state_dir" ] && mkdir -p "$state_dir"
echo "run.sh: starting nettallyd with $config (Ctrl-C to stop)"
exec "$build/daemon/nettallyd" --config "$config"
