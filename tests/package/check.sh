#!/usr/bin/env bash
# The Debian package: builds it from a clean clone of HEAD (scripts/package.sh; with BUILD_DIR,
# --from-build BUILD_DIR: that tree's binaries, not compiled again), runs lintian on
# it (no error allowed; warnings are printed) and checks its contents: the file list, the conffile,
# the maintainer scripts (enable/start the Debian way, detach on remove, state removed on purge),
# the man pages as man reads them. The .deb stays in OUT for the VM suite (tests/vm).
# Usage: check.sh SOURCE_DIR OUT [BUILD_DIR]
set -euo pipefail
src=$1 out=$2 build=${3:-}
missing=()
for t in dpkg-buildpackage dh lintian scdoc git; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
	case ${CI:-} in
	'' | 0 | false | no) echo "SKIP: missing tools: ${missing[*]}"; exit 77 ;;
	*) echo "FAIL: missing tools: ${missing[*]} (CI: scripts/deps.sh must install them)"; exit 1 ;;
	esac
fi
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

bash "$src/scripts/package.sh" ${build:+--from-build "$build"} "$out" || { echo "FAIL: the package did not build"; exit 1; }
deb=$(ls "$out"/nettally_*.deb | head -n1)

# lintian: errors fail, everything else is shown.
lint=$(lintian --tag-display-limit 0 "$deb" 2>&1 || true)
printf '%s\n' "$lint" | sed 's/^/    lintian: /'
errors=$(printf '%s\n' "$lint" | grep -c '^E: ' || true)
echo "lintian: $errors error(s), $(printf '%s\n' "$lint" | grep -c '^W: ' || true) warning(s)"
[ "$errors" -eq 0 ] || fail "lintian reports $errors error(s)"

files=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|')
for f in /usr/sbin/nettallyd /usr/bin/nettallyctl /lib/systemd/system/nettallyd.service \
	/usr/share/dbus-1/system.d/org.nettally.Accounting1.conf /etc/nettally/nettally.yaml \
	/usr/lib/sysusers.d/nettally.conf /usr/share/man/man8/nettallyd.8.gz \
	/usr/share/man/man1/nettallyctl.1.gz /usr/share/man/man5/nettally.yaml.5.gz \
	/usr/share/bash-completion/completions/nettallyctl /usr/share/doc/nettally/copyright; do
	grep -qx "$f" <<<"$files" || fail "$f is not in the package"
done
echo "files: $(grep -vc '/$' <<<"$files") files"

ctl=$(mktemp -d)
trap 'rm -rf "$ctl"' EXIT
dpkg-deb -e "$deb" "$ctl"
grep -qx /etc/nettally/nettally.yaml "$ctl/conffiles" || fail "/etc/nettally/nettally.yaml is not a conffile"
grep -q 'deb-systemd-helper.* enable .*nettallyd.service\|deb-systemd-helper .*unmask' "$ctl/postinst" ||
	fail "postinst does not enable the unit with deb-systemd-helper"
grep -q '_dh_action=start' "$ctl/postinst" && grep -q "deb-systemd-invoke \$_dh_action 'nettallyd.service'" "$ctl/postinst" ||
	fail "postinst does not start the service"
grep -q 'systemd-sysusers.*nettally.conf' "$ctl/postinst" || fail "postinst does not create user nettally"
# The bus re-reads its policy (which names user nettally) after the user exists, before the start.
reload=$(grep -n 'ReloadConfig' "$ctl/postinst" | cut -d: -f1 | head -n1)
start=$(grep -n "deb-systemd-invoke \$_dh_action 'nettallyd.service'" "$ctl/postinst" | cut -d: -f1 | head -n1)
[ -n "$reload" ] && [ -n "$start" ] && [ "$reload" -lt "$start" ] ||
	fail "postinst does not reload the bus policy before it starts the service"
grep -q 'deb-systemd-invoke stop.*nettallyd.service' "$ctl/prerm" || fail "prerm does not stop the service"
grep -q 'nettallyd --config /etc/nettally/nettally.yaml --detach' "$ctl/prerm" || fail "prerm does not detach"
awk '/"\$1" = purge/,/fi/' "$ctl/postrm" | grep -q 'rm -rf /var/lib/nettally' || fail "postrm purge does not remove the state"
# The stop comes before the detach in prerm (a running daemon would re-attach).
[ "$(grep -n 'deb-systemd-invoke stop' "$ctl/prerm" | cut -d: -f1 | head -n1)" -lt \
	"$(grep -n -- '--detach' "$ctl/prerm" | cut -d: -f1 | head -n1)" ] || fail "prerm detaches before stopping"

# The man pages render (scdoc's output read by man's formatter).
x=$(mktemp -d)
dpkg-deb -x "$deb" "$x"
for m in man8/nettallyd.8 man1/nettallyctl.1 man5/nettally.yaml.5; do
	if command -v groff >/dev/null; then
		txt=$(zcat "$x/usr/share/man/$m.gz" | groff -man -Tutf8 -ww -z 2>&1) || true
		[ -z "$txt" ] || fail "$m: groff warns: $txt"
	fi
	zcat "$x/usr/share/man/$m.gz" | grep -q '^\.SH NAME\|^\.SH "NAME"' || fail "$m has no NAME section"
done
bash -n "$x/usr/share/bash-completion/completions/nettallyctl" || fail "the bash completion does not parse"
rm -rf "$x"

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "ok: $(basename "$deb")"
