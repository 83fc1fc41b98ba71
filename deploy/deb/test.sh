#!/usr/bin/env bash
# test.sh VERSION DIR: checks the three packages in DIR, then installs the
# amd64 one into a throwaway root with dpkg (maintainer scripts included,
# chrootless), runs the installed binary, upgrades it over a changed config
# and live data, and removes it.
set -euo pipefail
version=$1 dir=$2
fail() { echo "deb test: $*" >&2; exit 1; }

for arch in armhf arm64 amd64; do
	deb="$dir/pilebridge_${version}_${arch}.deb"
	[ -f "$deb" ] || fail "$deb missing"
	[ "$(dpkg-deb --field "$deb" Architecture)" = "$arch" ] || fail "$deb: Architecture"
	[ "$(dpkg-deb --field "$deb" Version)" = "$version" ] || fail "$deb: Version"
	[ "$(dpkg-deb --field "$deb" Package)" = pilebridge ] || fail "$deb: Package"
	contents=$(dpkg-deb --contents "$deb")
	for f in ./usr/bin/pilebridge ./lib/systemd/system/pilebridge.service ./etc/pilebridge/pilebridge.yaml \
		./lib/udev/rules.d/99-pilebridge-usb-serial.rules ./usr/share/doc/pilebridge/README.md; do
		grep -q " $f\$" <<<"$contents" || fail "$deb: no $f"
	done
	grep -q '^-rwxr-xr-x root/root .* ./usr/bin/pilebridge$' <<<"$contents" || fail "$deb: binary mode or owner"
	tmp=$(mktemp -d)
	dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$tmp"
	grep -qx /etc/pilebridge/pilebridge.yaml "$tmp/conffiles" || fail "$deb: the config is not a conffile"
	rm -rf "$tmp"
	want=$(case $arch in armhf) echo "ARM, EABI5";; arm64) echo "ARM aarch64";; amd64) echo "x86-64";; esac)
	tmp=$(mktemp -d)
	dpkg-deb --extract "$deb" "$tmp"
	if command -v file >/dev/null; then
		file "$tmp/usr/bin/pilebridge" | grep -q "$want" || fail "$deb: binary is not $want"
		file "$tmp/usr/bin/pilebridge" | grep -q "statically linked" || fail "$deb: binary not static"
	fi
	rm -rf "$tmp"
	# ./ of the data archive: 0755 like every directory a package ships
	dpkg-deb --contents "$deb" | awk 'NR == 1' | grep -q '^drwxr-xr-x root/root .* \./$' || fail "$deb: ./ is not 0755 root/root"
	if command -v lintian >/dev/null; then
		# clean but for what deploy/deb/lintian-overrides explains
		lintian --fail-on error,warning "$deb" >/dev/null 2>&1 || { lintian "$deb" >&2 || true; fail "$deb: lintian"; }
		lint="lintian clean"
	elif [ "${PILEBRIDGE_REQUIRE_LINTIAN:-}" = 1 ]; then
		fail "lintian is not installed and PILEBRIDGE_REQUIRE_LINTIAN=1"
	else
		lint="lintian SKIPPED (not installed)"
	fi
	echo "ok   $deb: fields, contents, conffile, $want static binary, $lint"
done

# a throwaway root with a dpkg database and the accounts a Debian system has
root=$(mktemp -d) log=$(mktemp)
trap 'rm -rf "$root" "$log"' EXIT
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers" "$root/etc" "$root/usr/sbin"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\ndialout:x:20:\n' >"$root/etc/group"
printf 'root:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
printf 'root:*::\ndialout:*::\n' >"$root/etc/gshadow"
chmod 0640 "$root/etc/shadow" "$root/etc/gshadow"
deb="$dir/pilebridge_${version}_amd64.deb"
# --force-depends: the throwaway root has no passwd package (useradd runs from the host)
dpkg_root() { dpkg --root="$root" --force-script-chrootless --log=/dev/null "$@" >>"$log" 2>&1 || { cat "$log" >&2; fail "dpkg $*"; }; }
install_deb() { dpkg_root --force-depends --force-confold -i "$deb"; }

install_deb
out=$("$root/usr/bin/pilebridge" --version)
[ "$out" = "pilebridge $version" ] || fail "the installed binary says \"$out\", the package $version: one version everywhere"
grep -q '^pilebridge:' "$root/etc/passwd" || fail "no pilebridge user"
grep -q '^dialout:.*pilebridge' "$root/etc/group" || fail "pilebridge not in dialout"
uid=$(awk -F: '$1 == "pilebridge" { print $3 }' "$root/etc/passwd")
[ "$(stat -c %u "$root/var/lib/pilebridge")" = "$uid" ] || fail "/var/lib/pilebridge not owned by pilebridge"
[ "$(stat -c %a "$root/etc/pilebridge/pilebridge.yaml")" = 640 ] || fail "config mode $(stat -c %a "$root/etc/pilebridge/pilebridge.yaml")"
[ "$(dpkg --root="$root" -s pilebridge | sed -n 's/^Status: //p')" = "install ok installed" ] || fail "not installed"
echo "ok   installed into a throwaway root: $out; user pilebridge in dialout; data and config owned and private"

# upgrade over an edited config and live data: both kept
echo "# edited on site" >>"$root/etc/pilebridge/pilebridge.yaml"
echo "bills" >"$root/var/lib/pilebridge/pilebridge.db"
install_deb
grep -q "# edited on site" "$root/etc/pilebridge/pilebridge.yaml" || fail "upgrade replaced the edited config"
[ "$(cat "$root/var/lib/pilebridge/pilebridge.db")" = bills ] || fail "upgrade touched the data"
[ "$(grep -c '^pilebridge:' "$root/etc/passwd")" = 1 ] || fail "upgrade added a second user"
echo "ok   upgrade kept the edited config and the data"

# remove: the binary goes, data and config stay
dpkg_root -r pilebridge
[ ! -e "$root/usr/bin/pilebridge" ] || fail "remove left the binary"
[ -f "$root/var/lib/pilebridge/pilebridge.db" ] || fail "remove deleted the data"
[ -f "$root/etc/pilebridge/pilebridge.yaml" ] || fail "remove deleted the config (a conffile stays until purge)"
dpkg_root -P pilebridge
[ -f "$root/var/lib/pilebridge/pilebridge.db" ] || fail "purge deleted the data"
echo "ok   remove and purge left the data"

if command -v systemd-analyze >/dev/null; then
	unit=$(mktemp -d)
	sed "s|/usr/bin/pilebridge|$(command -v true)|" "$(dirname "$0")/../pilebridge.service" >"$unit/pilebridge.service"
	if out=$(systemd-analyze verify "$unit/pilebridge.service" 2>&1); then
		echo "ok   systemd-analyze verify: the unit"
	elif grep -qi "failed to\|not booted\|/run/systemd" <<<"$out" && ! grep -qi "unknown\|invalid\|bad" <<<"$out"; then
		echo "skip systemd-analyze verify (no systemd here): $out"
	else
		fail "systemd-analyze verify: $out"
	fi
	# the sandbox: exposure at most 2.0 (make test-board runs this unit on
	# the emulated board and shows the same figure there)
	exposure=$(systemd-analyze security --offline=yes "$unit/pilebridge.service" 2>/dev/null | sed -n 's/.*pilebridge.service: \([0-9.]*\).*/\1/p')
	if [ -z "$exposure" ]; then
		echo "skip systemd-analyze security (this systemd has no --offline)"
	elif awk -v x="$exposure" 'BEGIN { exit !(x <= 2.0) }'; then
		echo "ok   systemd-analyze security: exposure $exposure (≤ 2.0)"
	else
		fail "systemd-analyze security: exposure $exposure, want ≤ 2.0"
	fi
	rm -rf "$unit"
fi
