#!/usr/bin/env bash
# build.sh ARCH VERSION BINARY OUTDIR: a .deb of pilebridge for ARCH
# (armhf, arm64, amd64) with dpkg-deb; nothing is fetched.
set -euo pipefail
arch=$1 version=$2 bin=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

install -D -m 0755 "$bin" "$stage/usr/bin/pilebridge"
install -D -m 0644 "$top/deploy/pilebridge.service" "$stage/lib/systemd/system/pilebridge.service"
install -D -m 0644 "$top/deploy/99-pilebridge-usb-serial.rules" "$stage/lib/udev/rules.d/99-pilebridge-usb-serial.rules"
install -D -m 0640 "$top/configs/example.yaml" "$stage/etc/pilebridge/pilebridge.yaml"
install -D -m 0644 "$top/README.md" "$stage/usr/share/doc/pilebridge/README.md"
for f in billing.md hardware.md RELIABILITY.md profiles.md; do
	[ -f "$top/docs/$f" ] && install -D -m 0644 "$top/docs/$f" "$stage/usr/share/doc/pilebridge/$f"
done

install -d "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" "$here/control.in" > "$stage/DEBIAN/control"
install -m 0644 "$here/conffiles" "$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$stage/DEBIAN/$s"; done

mkdir -p "$out"
deb="$out/pilebridge_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
