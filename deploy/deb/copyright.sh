#!/usr/bin/env bash
# copyright.sh: the package's copyright file on stdout. pilebridge's own
# notice, then every Go module linked into the binary with its license
# text, read from the module cache (go mod download has put them there).
set -euo pipefail
cd "$(dirname "$0")/../.."
cat <<'HEAD'
pilebridge: EV charging piles over Modbus to the P云 platform

Copyright 2025-2026 the pilebridge developers. All rights reserved.

The binary /usr/bin/pilebridge is statically linked with the Go standard
library and the Go modules below, each under its own license, reproduced
in full.

HEAD
go_root=$(go env GOROOT)
echo "=== Go standard library ($(go env GOVERSION)) ==="
echo
cat "$go_root/LICENSE"
echo
go list -deps -f '{{if .Module}}{{.Module.Path}} {{.Module.Version}} {{.Module.Dir}}{{end}}' ./cmd/pilebridge |
	sort -u | while read -r path version dir; do
		[ "$path" = pilebridge ] && continue
		lic=$(ls "$dir" | grep -i -m1 -E '^(licen[cs]e|copying)' || true)
		[ -n "$lic" ] || { echo "copyright.sh: $path $version has no license file" >&2; exit 1; }
		echo "=== $path $version ==="
		echo
		if grep -q 'TERMS AND CONDITIONS FOR USE, REPRODUCTION' "$dir/$lic"; then
			# Debian keeps the Apache 2.0 text once, in common-licenses
			echo "Licensed under the Apache License, Version 2.0; on Debian systems the"
			echo "full text is in /usr/share/common-licenses/Apache-2.0."
			[ -f "$dir/NOTICE" ] && { echo; cat "$dir/NOTICE"; }
		else
			cat "$dir/$lic"
		fi
		echo
	done
