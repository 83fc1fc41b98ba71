#!/usr/bin/env bash
# build.sh ARCH VERSION BINARY OUTDIR: a .deb of pilebridge for ARCH
# (armhf, arm64, amd64) with dpkg-deb; nothing is fetched.
set -euo pipefail
arch=$1 version=$2 bin=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage" # the data archive's ./ (mktemp makes it 0700)

install -D -m 0755 "$bin" "$stage/usr/bin/pilebridge"
install -D -m 0644 "$top/deploy/pilebridge.service" "$stage/lib/systemd/system/pilebridge.service"
install -D -m 0644 "$top/deploy/99-pilebridge-usb-serial.rules" "$stage/lib/udev/rules.d/99-pilebridge-usb-serial.rules"
install -D -m 0640 "$top/configs/example.yaml" "$stage/etc/pilebridge/pilebridge.yaml"
install -D -m 0644 "$top/README.md" "$stage/usr/share/doc/pilebridge/README.md"
for f in billing.md hardware.md RELIABILITY.md profiles.md SECURITY.md plates.md fleet.md ARCHITECTURE.md reference-pile-map.md bench.md status-page.png; do
	[ -f "$top/docs/$f" ] && install -D -m 0644 "$top/docs/$f" "$stage/usr/share/doc/pilebridge/$f"
done
# the README's links to docs/ point where the docs are installed
sed -i -e 's#(docs/#(#g' -e 's#(configs/example.yaml)#(/etc/pilebridge/pilebridge.yaml)#' "$stage/usr/share/doc/pilebridge/README.md"
"$here/copyright.sh" > "$stage/usr/share/doc/pilebridge/copyright"
chmod 0644 "$stage/usr/share/doc/pilebridge/copyright"
# a native package's changelog: this build, from the commit it was made from
maint=$(sed -n 's/^Maintainer: //p' "$here/control.in")
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
when=$(git -C "$top" log -1 --format=%cD 2>/dev/null || date -R)
printf 'pilebridge (%s) stable; urgency=medium\n\n  * Built from commit %s; the history is the project'"'"'s git log.\n\n -- %s  %s\n' \
	"$version" "$commit" "$maint" "$when" | gzip -9n > "$stage/usr/share/doc/pilebridge/changelog.gz"
chmod 0644 "$stage/usr/share/doc/pilebridge/changelog.gz"
install -D -m 0644 "$here/pilebridge.1" "$stage/usr/share/man/man1/pilebridge.1"
gzip -9n "$stage/usr/share/man/man1/pilebridge.1"
install -D -m 0644 "$here/lintian-overrides" "$stage/usr/share/lintian/overrides/pilebridge"

install -d "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" "$here/control.in" > "$stage/DEBIAN/control"
install -m 0644 "$here/conffiles" "$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$stage/DEBIAN/$s"; done

mkdir -p "$out"
deb="$out/pilebridge_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
