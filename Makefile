# pilebridge — see README.md
SHELL     := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO        ?= go
PKGS      := ./...
RACE_PKGS := ./driver/... ./simulator/... ./uploader/... ./session/... ./internal/station/... ./cmd/...
# One version everywhere: both binaries' --version and the Debian packages.
# A tag vX.Y.Z gives X.Y.Z (+N.gHASH after it); before any tag, 0.0.0+N.gHASH
# (N the commit count, so versions sort).
VERSION   ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo "$${v\#v}" | sed 's/-/+/;s/-/./' || echo "0.0.0+$$(git rev-list --count HEAD 2>/dev/null || echo 0).g$$(git rev-parse --short HEAD 2>/dev/null || echo dev)")
LDFLAGS   := -s -w -X main.version=$(VERSION)
export CGO_ENABLED ?= 0
# The toolchain every build and test uses: the patched release go.mod names
# (machines here run with GOTOOLCHAIN=local, which would ignore it); the go
# command fetches it from the module proxy once.
export GOTOOLCHAIN := $(shell sed -n 's/^toolchain //p' go.mod)

.PHONY: all build vulncheck staticcheck test test-race test-arm cross deb test-deb demo bench bench-scale lint clean soak soak-line soak-model fuzz test-board soak-board bench-board

all: lint test build

build:
	@mkdir -p dist
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/pilebridge ./cmd/pilebridge
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/pilesim ./cmd/pilesim

# Unit and end-to-end tests (real pty, TCP and HTTP), with the race detector
# on the packages that run goroutines. The session package's scenario and
# property runs (one goroutine, simulated time) run in the first pass; the
# race pass skips them with -short. The 60 s soaks (kills, and failing
# lines) run beside the race pass, side by side (whose end-to-end package
# is the long pole on two cores); their reports are printed after it.
test: lint
	$(GO) test -count=1 -parallel 8 ./meter/... ./internal/... ./session/...
	@soak=$$(mktemp); \
	(PILEBRIDGE_SOAK=60s PILEBRIDGE_LINE_SOAK=60s $(GO) test -count=1 -run '^(TestSoak|TestLineSoak)$$' -v ./cmd/pilebridge/ > $$soak 2>&1; echo "exit $$?" >> $$soak) & \
	echo "CGO_ENABLED=1 $(GO) test -race -short -count=1 -parallel 8 -timeout 8m $(RACE_PKGS)"; \
	CGO_ENABLED=1 $(GO) test -race -short -count=1 -parallel 8 -timeout 8m $(RACE_PKGS); race=$$?; \
	wait; echo "== the soaks, run beside the race pass: PILEBRIDGE_SOAK=60s PILEBRIDGE_LINE_SOAK=60s go test -run '^(TestSoak|TestLineSoak)$$' ./cmd/pilebridge/"; \
	grep -Ev '^=== (RUN|PAUSE|CONT)|^exit ' $$soak; soakrc=$$(tail -n 1 $$soak | cut -d' ' -f2); rm -f $$soak; \
	[ $$race -eq 0 ] && [ "$$soakrc" = 0 ]

# The real daemon under random kill -9, against simulated piles and a
# failing platform; prints sessions, kills and bills exact/wrong/lost.
SOAK ?= 10m
soak:
	PILEBRIDGE_SOAK=$(SOAK) $(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./cmd/pilebridge/ | grep -Ev '^=== RUN'

# The real daemon behind failing lines (simulator.FaultLine: flapping,
# connections cut after a few replies, delays, corruption, wrong slave,
# stalls, in random spells up to LINE_SPELL) for LINE_SOAK; prints the
# seed, every session against its pile's meter and the unattributed Wh.
# PILEBRIDGE_LINE_SEED=… repeats a run.
LINE_SOAK  ?= 30m
LINE_SPELL ?= 1m
soak-line:
	PILEBRIDGE_LINE_SOAK=$(LINE_SOAK) PILEBRIDGE_LINE_SPELL=$(LINE_SPELL) $(GO) test -count=1 -timeout 0 -run '^TestLineSoak$$' -v ./cmd/pilebridge/ | grep -Ev '^=== (RUN|PAUSE|CONT)'

# Each fuzz target for FUZZTIME (make test runs their seed corpora). A
# crasher lands in the package's testdata/fuzz and stays a regression test.
FUZZTIME ?= 60s
FUZZ := ./driver:FuzzRTUReply ./driver:FuzzMBAPReply ./meter:FuzzProfileDecodeEncode \
	./internal/config:FuzzParse ./uploader:FuzzParseAnswer ./session:FuzzMachine
fuzz:
	@for t in $(FUZZ); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) 2>&1 | tail -n 3 || exit 1; \
	done

# More random timelines through the session engine: make soak-model SEED=7 N=2000
SEED ?= 1
N    ?= 1000
soak-model:
	PILEBRIDGE_MODEL_SEED=$(SEED) PILEBRIDGE_MODEL_N=$(N) $(GO) test -count=1 -timeout 60m -run 'TestPropertyRandomTimelines' -v ./session/ | grep -E '^(---|ok|FAIL|\s+property_test)' 

# Tests under qemu-user for both ARM targets (the e2e tests, which build and
# run the host binary, stay on the host).
ARM_PKGS := ./driver/... ./meter/... ./session/... ./uploader/... ./internal/...
test-arm:
	PILEBRIDGE_QEMU=1 GOARCH=arm GOARM=7 $(GO) test -count=1 -exec qemu-arm-static $(ARM_PKGS)
	PILEBRIDGE_QEMU=1 GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64-static $(ARM_PKGS)

cross:
	@mkdir -p dist
	GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/pilebridge-linux-armv7 ./cmd/pilebridge
	GOOS=linux GOARCH=arm64       $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/pilebridge-linux-arm64 ./cmd/pilebridge
	GOOS=linux GOARCH=amd64       $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/pilebridge-linux-amd64 ./cmd/pilebridge
	GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/pilesim-linux-armv7 ./cmd/pilesim
	GOOS=linux GOARCH=arm64       $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/pilesim-linux-arm64 ./cmd/pilesim
	@file dist/pilebridge-linux-* 2>/dev/null || ls -l dist

# Debian packages for the three targets (dpkg-deb, nothing fetched), and
# their test: fields, contents, an install into a throwaway root, upgrade
# and removal. Versions sort by commit count until there are tags.
DEBVERSION ?= $(VERSION)
deb: cross
	deploy/deb/build.sh armhf $(DEBVERSION) dist/pilebridge-linux-armv7 dist
	deploy/deb/build.sh arm64 $(DEBVERSION) dist/pilebridge-linux-arm64 dist
	deploy/deb/build.sh amd64 $(DEBVERSION) dist/pilebridge-linux-amd64 dist

test-deb: deb
	deploy/deb/test.sh $(DEBVERSION) dist

# The armhf package on an emulated ARM board, as root: Debian bookworm under
# systemd in qemu-system-arm, an emulated FTDI adapter wired to the simulated
# pile, the platform stand-in over TLS. Deployed by the README's steps; then
# a session, CUTS power cuts (qemu killed: the page cache is lost), an
# upgrade and a hung daemon mid-session, a cut during dpkg -i, and a damaged
# database salvaged as root by the README's lines with a cut mid-salvage;
# each bill against the meter's delta. The image (deploy/board/image.sh) is
# built once and cached.
CUTS ?= 2
test-board:
	@img=$$(deploy/board/image.sh) && \
	PILEBRIDGE_BOARD_IMAGE=$$img PILEBRIDGE_BOARD_VERSION=$(DEBVERSION) CUTS=$(CUTS) \
		$(GO) test -count=1 -timeout 90m -run '^TestBoard$$' -v ./internal/boardtest/ | grep --line-buffered -Ev '^=== RUN'
soak-board: CUTS = 30
soak-board: test-board

# The bridge on the emulated board against a bare client (pilesim floor)
# making the same reads of the same pile over the same adapter: CPU idle and
# charging as a ratio to it, RSS, boot-to-READY (docs/bench.md). As root,
# with test-board's image; BENCH_WINDOW sets each window (default 1m).
bench-board:
	@img=$$(deploy/board/image.sh) && \
	PILEBRIDGE_BOARD_IMAGE=$$img PILEBRIDGE_BOARD_VERSION=$(DEBVERSION) \
		$(GO) test -count=1 -timeout 40m -run '^TestBoardBench$$' -v ./internal/boardtest/ | grep --line-buffered -Ev '^=== RUN'

# One complete session: stand-in + simulated pile + bridge, then exit.
demo: build
	./dist/pilesim demo --bridge ./dist/pilebridge --config configs/demo.yaml

# Go benchmarks. As root, the storage ones run on an ext4 image of their own
# and report B_device/op: bytes that reached the device (internal/blockdev).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./driver/... ./meter/... ./session/... ./uploader/...

# The bridge at station size: 16 Modbus TCP lines × 16 piles, 45 s idle and
# 45 s all charging, then every bill checked; a bare client (pilesim floor)
# on the same lines before and after; one port charging for a minute.
# Prints CPU as a ratio to the bare client, peak and 1-port RSS, device
# bytes/s and exchanges per poll; fails when a target of docs/bench.md is
# missed. SCALEFLAGS=--pprof=DIR keeps the bridge's profiles instead.
bench-scale: build
	./dist/pilesim scale --bridge ./dist/pilebridge $(SCALEFLAGS)

lint: vulncheck staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@.ci/tracked-binaries

# staticcheck's default checks; anything it reports fails the build.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
staticcheck:
	@mkdir -p $(TOOLS)
	@GOBIN=$(TOOLS) $(GO) install $(STATICCHECK)
	$(TOOLS)/staticcheck ./...

# Known vulnerabilities reachable from the code, with the toolchain above:
# govulncheck against the Go vulnerability database, built from the newest
# golang.org/x/vulndb module (the module proxy serves it; vuln.go.dev is
# not reachable from here). A reachable finding fails the build.
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.9.0
TOOLS       := $(HOME)/.cache/pilebridge-tools
VULNDB      := $(HOME)/.cache/pilebridge-vulndb
vulncheck:
	@mkdir -p $(TOOLS)
	@GOBIN=$(TOOLS) $(GO) install $(GOVULNCHECK)
	@dir=$$($(GO) mod download -json golang.org/x/vulndb@latest | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'); \
		[ -n "$$dir" ] || { echo "vulncheck: golang.org/x/vulndb could not be downloaded"; exit 1; }; \
		rm -rf $(VULNDB) && python3 .ci/vulndb.py "$$dir" $(VULNDB)
	$(TOOLS)/govulncheck -db file://$(VULNDB) ./...

clean:
	rm -rf dist
