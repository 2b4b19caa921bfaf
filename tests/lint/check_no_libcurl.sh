#!/usr/bin/env bash
# nettallyd loads libcurl at its first transfer (daemon/io/curl_api.h): a daemon that uploads
# nothing and pulls no rule bundle never maps libcurl and the libraries it brings (~6 MiB of
# RSS). Fails if the binary links libcurl after all (a DT_NEEDED entry, its own or through a
# library it needs: ldd), or exports a curl_* function (its forwarders would then stand in for
# libcurl's own inside libcurl). Usage: tests/lint/check_no_libcurl.sh BINARY
set -euo pipefail
bin=$1
needed=$(readelf -d --wide "$bin" | awk '/\(NEEDED\)/ { print $NF }')
[ -n "$needed" ] || { echo "check-no-libcurl: no DT_NEEDED entry read from $bin" >&2; exit 1; }
fail=0
if grep -i 'libcurl' <<<"$needed"; then
	echo "check-no-libcurl: $bin has libcurl as DT_NEEDED (link the curl headers only: nettally_curl_headers)"
	fail=1
fi
if ldd "$bin" | grep -i 'libcurl'; then
	echo "check-no-libcurl: $bin maps libcurl at start (ldd above)"
	fail=1
fi
if nm -D --defined-only "$bin" | awk '$3 ~ /^curl_/' | grep .; then
	echo "check-no-libcurl: $bin exports libcurl's names (above): libcurl would call them"
	fail=1
fi
[ "$fail" -eq 0 ] || exit 1
echo "check-no-libcurl: $bin: no libcurl in DT_NEEDED ($(wc -l <<<"$needed") entries) or ldd; no curl_* exported"
