#!/bin/sh
# Run inside the board's root once its packages are installed.
set -eu
echo board > /etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 board\n' > /etc/hosts
printf '/dev/vda / ext4 errors=remount-ro 0 1\n' > /etc/fstab
# qemu's user network: DHCP from 10.0.2.2; nothing beyond it is reachable
mkdir -p /etc/systemd/network
printf '[Match]\nName=e*\n\n[Network]\nDHCP=ipv4\n' > /etc/systemd/network/10-wired.network
systemctl enable systemd-networkd.service
# the README deploys over ssh as root, with a key
sed -i 's/^#\?PermitRootLogin.*/PermitRootLogin prohibit-password/' /etc/ssh/sshd_config
printf 'UseDNS no\n' > /etc/ssh/sshd_config.d/board.conf
# the console logs in nobody; the test speaks ssh
systemctl mask serial-getty@ttyAMA0.service
# the board's clock comes from the host's RTC (PL031); no NTP to reach
systemctl mask systemd-timesyncd.service 2>/dev/null || true
passwd -l root
