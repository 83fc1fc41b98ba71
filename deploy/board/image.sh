#!/usr/bin/env bash
# image.sh: the emulated board's disk, kernel and initrd, built from Debian's
# packages alone (bookworm armhf, mmdebstrap under qemu-arm via binfmt_misc),
# cached under $PILEBRIDGE_BOARD_CACHE (default ~/.cache/pilebridge-board) in
# a directory named by the hash of this script and its two helpers: a
# second run finds it and prints its path at once. Needs root (chroot,
# binfmt_misc, device nodes in the image), mmdebstrap, qemu-user-static,
# e2fsprogs, qemu-utils, openssh-client.
# The mirror: $DEBIAN_MIRROR, by default deb.debian.org.
#
# The board has what a station's board has: systemd, udev, kmod, Debian's
# armmp kernel, openssh-server (the README deploys over ssh) and
# ca-certificates; no tzdata (the binary carries its own). The initramfs
# holds only what -M virt needs (MODULES=list): mkinitramfs under qemu-user
# runs modinfo on every module otherwise, for a quarter of an hour.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${PILEBRIDGE_BOARD_CACHE:-${HOME:-/root}/.cache/pilebridge-board}
key=$(cat "$0" "$here/initramfs-hook" "$here/customize.sh" | sha256sum | cut -c1-16)
out="$cache/$key"
if [ -f "$out/ready" ]; then
	echo "$out"
	exit 0
fi
# from here on, what the build prints goes to stderr: stdout carries the
# path alone (mke2fs prints "Creating regular file …" even with -q)
exec 3>&1 1>&2
[ "$(id -u)" = 0 ] || { echo "image.sh: needs root (chroot, binfmt_misc, device nodes)" >&2; exit 1; }
for tool in mmdebstrap qemu-arm-static mke2fs qemu-img ssh-keygen; do
	command -v "$tool" >/dev/null || { echo "image.sh: $tool not found (apt-get install mmdebstrap qemu-user-static e2fsprogs qemu-utils openssh-client)" >&2; exit 1; }
done

mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
registered=""
cleanup() {
	rm -rf "$work"
	if [ -n "$registered" ]; then echo -1 > /proc/sys/fs/binfmt_misc/qemu-arm || true; fi
}
trap cleanup EXIT

# armv7 binaries run through qemu-arm while the packages configure
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-arm ]; then
	[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	conf=/usr/lib/binfmt.d/qemu-arm.conf
	[ -f "$conf" ] || { echo "image.sh: $conf missing (qemu-user-static)" >&2; exit 1; }
	registered=yes
	cat "$conf" > /proc/sys/fs/binfmt_misc/register
fi

ssh-keygen -q -t ed25519 -N '' -C pilebridge-board-test -f "$work/id_ed25519"
root="$work/root"
start=$(date +%s)
mmdebstrap --architectures=armhf --variant=minbase \
	--include=systemd-sysv,udev,kmod,linux-image-armmp,openssh-server,ca-certificates,iproute2 \
	--essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/etc/initramfs-tools/hooks"' \
	--essential-hook='echo MODULES=list > "$1/etc/initramfs-tools/conf.d/board"' \
	--essential-hook="install -m 0755 '$here/initramfs-hook' \"\$1/etc/initramfs-tools/hooks/board\"" \
	--customize-hook="install -m 0755 '$here/customize.sh' \"\$1/tmp/customize.sh\"" \
	--customize-hook='chroot "$1" /tmp/customize.sh && rm "$1/tmp/customize.sh"' \
	--customize-hook="install -D -m 0600 '$work/id_ed25519.pub' \"\$1/root/.ssh/authorized_keys\"" \
	bookworm "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" </dev/null
echo "image.sh: root built in $(( $(date +%s) - start )) s" >&2

cp "$root"/boot/vmlinuz-* "$work/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/initrd.img"
mke2fs -q -t ext4 -L board -d "$root" "$work/root.img" 2G
qemu-img convert -f raw -O qcow2 "$work/root.img" "$work/root.qcow2"
rm -f "$work/root.img"
rm -rf "$root"
sha256sum "$0" "$here/initramfs-hook" "$here/customize.sh" > "$work/built-from"
mkdir -p "$out"
mv "$work"/vmlinuz "$work"/initrd.img "$work"/root.qcow2 "$work"/id_ed25519 "$work"/id_ed25519.pub "$work"/built-from "$out/"
touch "$out/ready"
echo "image.sh: $out in $(( $(date +%s) - start )) s" >&2
echo "$out" >&3
