#!/usr/bin/env bash
# Include direction check: each folder of daemon/ (daemon/CMakeLists.txt, README "Layout") may
# include only the folders below it, so the pure core stays testable without root and only the
# bus layer knows sdbus-c++. Prints every violation as
#   file:line: "header": <folder> may not include <folder>
# and exits 1 if there is any. Usage: scripts/check-includes.sh [ROOT] (default: this checkout).
#
# Rules (a project header is named by its folder: "core/config.h"; "nettally_abi.h" is the ABI
# header in bpf/; "<name>_adaptor.h" / "<name>_proxy.h" is D-Bus glue generated from bus/):
#   core/    core/ and the ABI header; no OS-facing library header (see core_os_header).
#   os/      os/ only.
#   kernel/  kernel/, os/, core/, the ABI header; never bus/, app/, io/ or sdbus-c++.
#   io/      io/, os/, core/, the ABI header; never bus/, app/, kernel/ or sdbus-c++.
#   bus/     anything but app/.
#   app/     anything.
#   ctl/     no daemon header but core/units.h, bus/names.h and the traffic class compiler
#            (core/classes.h, core/classes_bundle.h, core/classes_sign.h: for `rules compile`,
#            `rules keygen`, `rules verify`); the generated
#            proxies are fine.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

# Library headers the core must not use: they make syscalls or talk to the system. Not listed,
# so allowed: <arpa/inet.h> (inet_pton/inet_ntop, text <-> address, no syscall), <fnmatch.h>
# (interface globs), <net/if.h> (IFNAMSIZ only), the C++ and C library, yaml-cpp, nlohmann-json,
# prometheus-cpp's metric families and text serializer.
core_os_header() {
	case "$1" in
	sdbus-c++/* | bpf/* | systemd/* | sys/* | linux/* | curl/* | unistd.h | fcntl.h | poll.h | grp.h | pwd.h | dirent.h)
		return 0 ;;
	# prometheus-cpp's data types and text format are pure; its HTTP exposer and push gateway
	# open sockets and start threads (io/metrics).
	prometheus/exposer.h | prometheus/gateway.h)
		return 0 ;;
	esac
	return 1
}

# Reviewed exceptions, "file:header". Keep this list short and say why.
#   core/upload.cpp classifies libcurl's CURLcode results into retry decisions (enum values
#   only; no transfer is made in the core; io/upload.cpp does those).
exceptions=(
	"daemon/core/upload.cpp:curl/curl.h"
)

is_exception() {
	local e
	for e in "${exceptions[@]}"; do
		[ "$e" = "$1:$2" ] && return 0
	done
	return 1
}

# The folder of a project header named in quotes, or "" for a library header.
folder_of() {
	local name=$1 dir=$2
	case "$name" in
	core/* | os/* | kernel/* | io/* | bus/* | app/*) echo "${name%%/*}" ;;
	nettally_abi.h) echo abi ;;
	*_adaptor.h | *_proxy.h) echo "bus (generated)" ;;
	*)
		# Same-folder include without a folder ("bus.h" in ctl/).
		if [ -f "$dir/$name" ]; then
			echo "${dir#daemon/}"
		else
			echo ""
		fi
		;;
	esac
}

violations=0
report() { # file line header from to
	echo "$1:$2: \"$3\": $4 may not include $5"
	violations=$((violations + 1))
}

check_file() {
	local file=$1 from=$2 dir lineno text name kind to
	dir=$(dirname "$file")
	while IFS=: read -r lineno text; do
		if [[ $text =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*([\"\<])([^\"\>]+)[\"\>] ]]; then
			kind=${BASH_REMATCH[1]}
			name=${BASH_REMATCH[2]}
		else
			continue
		fi
		to=""
		[ "$kind" = '"' ] && to=$(folder_of "$name" "$dir")
		if [ -z "$to" ]; then # a library header
			case "$from" in
			core)
				if core_os_header "$name" && ! is_exception "$file" "$name"; then
					if [[ $name == */* ]]; then
						report "$file" "$lineno" "$name" core "<${name%%/*}/…>"
					else
						report "$file" "$lineno" "$name" core "<$name>"
					fi
				fi
				;;
			kernel | io)
				[[ $name == sdbus-c++/* ]] && report "$file" "$lineno" "$name" "$from" "<sdbus-c++/…>"
				;;
			esac
			continue
		fi
		case "$from:$to" in
		core:core | core:abi) ;;
		os:os) ;;
		kernel:kernel | kernel:os | kernel:core | kernel:abi) ;;
		io:io | io:os | io:core | io:abi) ;;
		bus:app) report "$file" "$lineno" "$name" bus app ;;
		bus:*) ;;
		app:*) ;;
		ctl:ctl | ctl:abi | "ctl:bus (generated)") ;;
		ctl:*)
			[ "$name" = core/units.h ] || [ "$name" = bus/names.h ] || [ "$name" = core/classes.h ] ||
				[ "$name" = core/classes_bundle.h ] || [ "$name" = core/classes_sign.h ] ||
				report "$file" "$lineno" "$name" ctl "$to"
			;;
		*) report "$file" "$lineno" "$name" "$from" "$to" ;;
		esac
	done < <(grep -n '^[[:space:]]*#[[:space:]]*include' "$file" || true)
}

while IFS= read -r file; do
	case "$file" in
	daemon/*/*) from=${file#daemon/}; from=${from%%/*} ;;
	ctl/*) from=ctl ;;
	*) continue ;;
	esac
	case "$from" in
	core | os | kernel | io | bus | app | ctl) check_file "$file" "$from" ;;
	*) echo "$file: unknown folder '$from' (add it to scripts/check-includes.sh)"; violations=$((violations + 1)) ;;
	esac
done < <(find daemon ctl -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.cpp' -o -name '*.c' \) | sort)

if [ "$violations" -gt 0 ]; then
	echo "check-includes: $violations violation(s)" >&2
	exit 1
fi
echo "check-includes: ok"
