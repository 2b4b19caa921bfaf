#!/usr/bin/env bash
# What nettallyd maps at start, kept out of it for its idle RSS (bench/README.md):
# - libcurl: loaded at the first transfer (daemon/io/curl_api.h), so a daemon that uploads
#   nothing and pulls no rule bundle never maps it and the libraries it brings (~6 MiB of RSS).
#   Fails if the binary links libcurl after all (a DT_NEEDED entry, its own or through a library
#   it needs: ldd), or exports a curl_* function (its forwarders would then stand in for
#   libcurl's own inside libcurl).
# - OpenSSL (libcrypto, libssl): RADIUS's MD5 comes from libgcrypt, which libsystemd maps anyway
#   (daemon/core/radius.h); OpenSSL at start costs 1.3 MiB. Fails if ldd lists either.
# Usage: tests/lint/check_libraries.sh BINARY
set -euo pipefail
bin=$1
needed=$(readelf -d --wide "$bin" | awk '/\(NEEDED\)/ { print $NF }')
[ -n "$needed" ] || { echo "check-libraries: no DT_NEEDED entry read from $bin" >&2; exit 1; }
mapped=$(ldd "$bin")
fail=0
if grep -i 'libcurl' <<<"$needed"; then
	echo "check-libraries: $bin has libcurl as DT_NEEDED (link the curl headers only: nettally_curl_headers)"
	fail=1
fi
if grep -i 'libcurl' <<<"$mapped"; then
	echo "check-libraries: $bin maps libcurl at start (ldd above)"
	fail=1
fi
if nm -D --defined-only "$bin" | awk '$3 ~ /^curl_/' | grep .; then
	echo "check-libraries: $bin exports libcurl's names (above): libcurl would call them"
	fail=1
fi
if grep -E 'lib(crypto|ssl)\.so' <<<"$mapped"; then
	echo "check-libraries: $bin maps OpenSSL at start (ldd above): MD5 is libgcrypt's"
	fail=1
fi
[ "$fail" -eq 0 ] || exit 1
echo "check-libraries: $bin: no libcurl in DT_NEEDED ($(wc -l <<<"$needed") entries) or ldd, no curl_* exported; no OpenSSL"
