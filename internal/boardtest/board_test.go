// Package boardtest runs the armhf package on an emulated ARM board: Debian
// bookworm under real systemd in qemu-system-arm, an emulated FTDI adapter
// wired to the simulated pile, the platform stand-in over TLS, and power
// cuts that lose the guest's page cache. `make test-board` runs it with the
// image deploy/board/image.sh builds; without that image it is skipped
// (and fails where PILEBRIDGE_REQUIRE_BOARD is set).
package boardtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/meter"
	"pilebridge/simulator"
)

const (
	appID  = "op_board"
	secret = "board-test-secret-6f1c"
	// the README's pile is a 7 kW AC pile; it charges a little below that
	powerW = 6600
)

type rig struct {
	t    *testing.T
	vm   *vm
	plat *standIn
	pile *simulator.Pile
	// the pile's slave on the line, which counts the requests it had
	slave *simulator.Slave
	work  string // the host's working directory for the README's steps
	// sessions billed so far, and what each should have been
	billed int
}

func TestBoard(t *testing.T) {
	image := boardImage(t, "the board test", "make test-board")
	for _, tool := range []string{"qemu-system-arm", "qemu-img", "socat", "ssh", "scp", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: apt-get install qemu-system-arm qemu-utils socat openssh-client dpkg", tool)
		}
	}
	cuts := 2 // and the cuts during dpkg -i and during salvage below
	if s := os.Getenv("CUTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CUTS=%q: want a number ≥ 1", s)
		}
		cuts = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("BOARD_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (BOARD_SEED=%d repeats the cut moments)", seed, seed)
	rnd := rand.New(rand.NewPCG(seed, seed))

	r := newRig(t, image)
	version := os.Getenv("PILEBRIDGE_BOARD_VERSION")
	if version == "" {
		version = "0.0.0+board"
	}
	r.buildDeb(version, filepath.Join(r.work, "dist")) // where the README's scp finds it
	upgrade := r.buildDeb(version+"+upgrade", filepath.Join(r.work, "upgrade"))
	upgradeCut := r.buildDeb(version+"+upgrade2", filepath.Join(r.work, "upgrade2"))

	r.vm.boot()
	r.deploy()
	r.checkInstalled(version)

	// one full session
	r.session("first session", func() { time.Sleep(20 * time.Second) })

	// power cuts at a random moment while charging; one at a session's end
	for i := 1; i <= cuts; i++ {
		if i == cuts {
			r.sessionCutAtEnd(fmt.Sprintf("cut %d/%d at the session's end", i, cuts), rnd)
			continue
		}
		r.session(fmt.Sprintf("cut %d/%d while charging", i, cuts), func() {
			time.Sleep(time.Duration(3000+rnd.IntN(12000)) * time.Millisecond)
			r.powerCut()
			time.Sleep(time.Duration(rnd.IntN(5000)) * time.Millisecond) // the pile charges on, the board is dark
			r.bootAgain()
			r.waitState("charging", 3*time.Minute)
			time.Sleep(5 * time.Second)
		})
	}

	// the package upgraded while a session charges
	r.session("upgrade mid-session", func() {
		time.Sleep(8 * time.Second)
		r.upgrade(upgrade, version+"+upgrade")
		r.waitState("charging", 2*time.Minute)
		time.Sleep(5 * time.Second)
	})

	// the daemon hangs: systemd's watchdog restarts it
	r.session("hung daemon", func() {
		time.Sleep(5 * time.Second)
		r.hang()
		r.waitState("charging", 2*time.Minute)
		time.Sleep(5 * time.Second)
	})

	// the power fails while dpkg -i upgrades the package mid-session: the
	// README's advice (copy again, dpkg -i again) finishes it
	r.session("power cut during dpkg -i", func() {
		time.Sleep(5 * time.Second)
		r.upgradeCutMidway(upgradeCut, version+"+upgrade2", rnd)
		r.waitState("charging", 2*time.Minute)
		time.Sleep(5 * time.Second)
	})

	r.noErrorsLogged()
	// last: its boot's journal holds the refusals the damage causes
	r.salvageAsRoot(rnd)

	orders, quantities := r.plat.finals(t)
	if len(orders) != r.billed {
		t.Errorf("%d final bills at the platform for %d sessions: %v", len(orders), r.billed, quantities)
	}
}

// boardImage is the image deploy/board/image.sh built; without one the
// test is skipped loudly, or fails where PILEBRIDGE_REQUIRE_BOARD is set.
func boardImage(t *testing.T, what, target string) string {
	t.Helper()
	image := os.Getenv("PILEBRIDGE_BOARD_IMAGE")
	if image == "" {
		msg := fmt.Sprintf("PILEBRIDGE_BOARD_IMAGE not set: %s needs the image deploy/board/image.sh builds (run `%s`, as root)", what, target)
		if os.Getenv("PILEBRIDGE_REQUIRE_BOARD") != "" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED LOUDLY: " + msg)
	}
	return image
}

func newRig(t *testing.T, image string) *rig {
	work := t.TempDir()
	if d := os.Getenv("BOARD_KEEP"); d != "" { // keep the consoles and logs
		work = d
		must(t, os.MkdirAll(work, 0o755))
	}
	reg, err := meter.LoadRegistry("")
	must(t, err)
	prof, err := reg.Get("ref-ac")
	must(t, err)

	// the line: the pile on RTU over TCP, paced at the README's 9600 baud;
	// qemu's usb-serial connects its host end here
	srv := simulator.NewServer(zerolog.Nop())
	srv.Baud = 9600
	slave := srv.AddSlave(1)
	pile, err := simulator.NewPile(prof, meter.Ratios{}, slave.Bank, 1_234_567)
	must(t, err)
	slave.Source = pile
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	go func() { _ = srv.ServeTCP(ln, true) }()
	t.Cleanup(func() { ln.Close() })

	plat := newStandIn(t, appID, secret)
	r := &rig{t: t, plat: plat, pile: pile, slave: slave, work: work}
	r.vm = newVM(t, image, work, ln.Addr().String(), plat.addr)
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := r.vm.ssh("journalctl -u pilebridge --no-pager -n 200", nil); err == nil {
				t.Logf("journal of the last boot:\n%s", out)
			}
		}
	})
	return r
}

// buildDeb builds the armhf binary and package at version into dir.
func (r *rig) buildDeb(version, dir string) string {
	t := r.t
	top := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "pilebridge-linux-armv7")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", bin, "./cmd/pilebridge")
	cmd.Dir = top
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build armv7: %v\n%s", err, out)
	}
	out := run(t, filepath.Join(top, "deploy/deb/build.sh"), "armhf", version, bin, dir)
	return strings.TrimSpace(out)
}

// deploy takes the README's "Deploy on a board" steps as written, but for
// `make deb` (the test built the package) and the editor (the test writes
// the README's minimal config with the station's values).
func (r *rig) deploy() {
	t := r.t
	steps := readmeBlock(t, "## Deploy on a board", "sh")
	byID := r.vm.on("ls /dev/serial/by-id/")
	if byID == "" || strings.Contains(byID, "\n") {
		t.Fatalf("want one adapter in /dev/serial/by-id, got %q", byID)
	}
	t.Logf("the adapter: /dev/serial/by-id/%s", byID)
	must(t, os.WriteFile(filepath.Join(r.work, "app_secret.txt"), []byte(secret+"\n"), 0o600))
	// the stand-in's CA, as a station's board trusts the platform's
	if _, err := r.vm.ssh("cat > /usr/local/share/ca-certificates/pilebridge-standin.crt && update-ca-certificates >/dev/null", bytes.NewReader(r.plat.caPEM)); err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, line := range strings.Split(steps, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "make deb"):
			// built above: deb
		case strings.Contains(line, "editor "):
			cfg := r.minimalConfig("/dev/serial/by-id/" + byID)
			if _, err := r.vm.ssh("cat > /etc/pilebridge/pilebridge.yaml", strings.NewReader(cfg)); err != nil {
				t.Fatal(err)
			}
			t.Logf("README step (the editor's work): /etc/pilebridge/pilebridge.yaml:\n%s", cfg)
			ran++
		default:
			out := r.vm.host(r.work, line, nil)
			t.Logf("README step: %s\n%s", line, out)
			for _, l := range strings.Split(out, "\n") {
				// no tariff is the README's minimal config's own warning
				if strings.HasPrefix(l, "warning:") && !strings.Contains(l, "no tariff") {
					t.Errorf("README step %q warns about the README's own setup: %s", line, l)
				}
			}
			ran++
		}
	}
	if ran < 5 {
		t.Fatalf("the README's deploy block had %d steps the test could take:\n%s", ran, steps)
	}
}

// minimalConfig is the README's minimal config with this station's values:
// the platform's address, the app id, the adapter's by-id path; and listen,
// so the host reaches /healthz (through qemu's forward).
func (r *rig) minimalConfig(device string) string {
	t := r.t
	cfg := readmeBlock(t, "The minimum:", "yaml")
	for _, sub := range []struct{ re, to string }{
		{`base_url: \S+`, "base_url: https://" + guestPlatform},
		{`app_id: \S+`, "app_id: " + appID},
		{`device: [^,}]+`, "device: " + device},
	} {
		re := regexp.MustCompile(sub.re)
		if !re.MatchString(cfg) {
			t.Fatalf("the README's minimal config has no %s:\n%s", sub.re, cfg)
		}
		cfg = re.ReplaceAllString(cfg, sub.to)
	}
	for _, k := range []string{"session:", "tariff:", "listen:"} {
		if strings.Contains(cfg, k) {
			t.Fatalf("the README's minimal config has %s: the test wants every default", k)
		}
	}
	return cfg + "listen: 0.0.0.0:9105\n"
}

// checkInstalled: the unit runs under systemd as shipped, and the board
// shows what it is.
func (r *rig) checkInstalled(version string) {
	t := r.t
	v := r.vm
	t.Logf("board: uname -m %s; kernel %s", v.on("uname -m"), v.on("uname -r"))
	if m := v.on("uname -m"); m != "armv7l" {
		t.Errorf("uname -m %q: want armv7l", m)
	}
	if got := v.on("dpkg-query -W -f='${Version}' pilebridge"); got != version {
		t.Errorf("installed version %q, want %q", got, version)
	}
	t.Logf("package: pilebridge %s; %s", v.on("dpkg-query -W -f='${Version}' pilebridge"), v.on("pilebridge --version"))
	r.waitActive()
	show := r.unit()
	t.Logf("unit: ActiveState=%s SubState=%s WatchdogUSec=%s WatchdogTimestamp=%q NRestarts=%s",
		show["ActiveState"], show["SubState"], show["WatchdogUSec"], show["WatchdogTimestamp"], show["NRestarts"])
	if show["WatchdogUSec"] != "30s" {
		t.Errorf("watchdog: WatchdogUSec=%q, want 30s", show["WatchdogUSec"])
	}
	if status := v.on("systemctl status pilebridge --no-pager | head -3"); !strings.Contains(status, "active (running)") {
		t.Errorf("systemctl status: %s", status)
	}
	// the watchdog is fed: systemd records each ping's time
	r.eventually("the watchdog's first ping", time.Minute, func() bool { return r.unit()["WatchdogTimestampMonotonic"] != "0" })

	timer := v.on("cat /sys/bus/usb-serial/devices/ttyUSB0/latency_timer")
	t.Logf("FTDI adapter: latency_timer %s ms (the udev rule); the daemon: %s", timer,
		v.on(`journalctl -u pilebridge -o cat --no-pager | grep '"low latency' | tail -1`))
	if timer != "1" {
		t.Errorf("latency_timer %q: want 1 (deploy/99-pilebridge-usb-serial.rules)", timer)
	}
	sec := v.on("systemd-analyze security pilebridge.service --no-pager | tail -1")
	t.Logf("on the board: %s", sec)
	m := regexp.MustCompile(`pilebridge\.service: (\d+\.\d+)`).FindStringSubmatch(sec)
	if m == nil {
		t.Errorf("systemd-analyze security: %q", sec)
	} else if x, _ := strconv.ParseFloat(m[1], 64); x > 2.0 {
		t.Errorf("exposure %s: want ≤ 2.0", m[1])
	}
	r.eventually("/healthz 200 from the host", 2*time.Minute, func() bool {
		code, _ := r.get("/healthz")
		return code == http.StatusOK
	})
	_, body := r.get("/healthz")
	t.Logf("/healthz from the host: 200 %s", strings.TrimSpace(body))
}

func (r *rig) unit() map[string]string {
	out, err := r.vm.ssh("systemctl show pilebridge -p ActiveState -p SubState -p MainPID -p NRestarts -p WatchdogUSec -p WatchdogTimestamp -p WatchdogTimestampMonotonic -p ExecMainStartTimestamp", nil)
	if err != nil {
		return map[string]string{}
	}
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, val, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			m[k] = val
		}
	}
	return m
}

func (r *rig) waitActive() {
	r.eventually("the unit active (running)", 3*time.Minute, func() bool {
		u := r.unit()
		return u["ActiveState"] == "active" && u["SubState"] == "running"
	})
}

// session runs one session on the pile, with during() while it charges,
// and checks its bill against the meter: the pile draws nothing while
// starting and once finished, so the energy the meter counted between
// those two moments is the whole session's, wherever the bridge read.
func (r *rig) session(name string, during func()) {
	deltaWh := r.charge(during)
	r.expectBill(name, deltaWh)
}

// sessionCutAtEnd cuts the power just after the pile finished: the
// bridge may have seen the end, committed it, sent it, or none of these.
func (r *rig) sessionCutAtEnd(name string, rnd *rand.Rand) {
	deltaWh := r.charge(func() { time.Sleep(10 * time.Second) })
	time.Sleep(time.Duration(rnd.IntN(2500)) * time.Millisecond)
	r.powerCut()
	r.bootAgain()
	r.expectBill(name, deltaWh)
}

// charge takes the pile from idle through a charge (during() while it
// charges) to finished, and returns what its meter counted meanwhile.
func (r *rig) charge(during func()) int64 {
	r.setStatus(meter.StatusIdle, 0, 0)
	r.waitState("idle", 2*time.Minute)
	start := r.meterWh()
	r.setStatus(meter.StatusStarting, 0, 0)
	r.waitState("starting", time.Minute)
	r.setStatus(meter.StatusCharging, powerW, 0)
	ctx, cancel := context.WithCancel(context.Background())
	go r.tick(ctx)
	during()
	r.setStatus(meter.StatusFinished, 0, 1)
	cancel()
	return r.meterWh() - start
}

func (r *rig) expectBill(name string, deltaWh int64) {
	t := r.t
	r.billed++
	var got []int64
	var order string
	r.eventually(name+": its final bill at the platform", 4*time.Minute, func() bool {
		orders, q := r.plat.finals(t)
		if len(orders) < r.billed {
			return false
		}
		order, got = orders[r.billed-1], q[orders[r.billed-1]]
		return true
	})
	t.Logf("%s: order %s: bill %v Wh, meter delta %d Wh", name, order, got, deltaWh)
	for _, q := range got {
		if q != deltaWh {
			t.Errorf("%s: order %s billed %d Wh; the meter delivered %d Wh", name, order, q, deltaWh)
		}
	}
	if deltaWh <= 0 {
		t.Errorf("%s: the meter delivered %d Wh", name, deltaWh)
	}
}

func (r *rig) powerCut() {
	r.noErrorsLogged() // the journal is in RAM (no /var/log/journal): read it before it goes
	r.t.Logf("power cut at %s (meter %d Wh)", time.Now().UTC().Format("15:04:05.000"), r.meterWh())
	r.vm.cut()
}

// bootAgain boots the board after a cut: the unit starts by itself.
func (r *rig) bootAgain() {
	r.vm.boot()
	r.waitActive()
	r.t.Logf("after the cut: unit %s (started by itself)", r.unit()["ActiveState"])
}

// upgrade installs a newer package while a session charges.
func (r *rig) upgrade(deb, version string) {
	t := r.t
	v := r.vm
	cfgBefore := v.on("sha256sum /etc/pilebridge/pilebridge.yaml")
	pidBefore := r.unit()["MainPID"]
	v.host(filepath.Dir(deb), fmt.Sprintf("scp %s board:", filepath.Base(deb)), nil)
	out := v.on("dpkg -i " + filepath.Base(deb))
	t.Logf("upgrade: dpkg -i %s:\n%s", filepath.Base(deb), out)
	if got := v.on("dpkg-query -W -f='${Version}' pilebridge"); got != version {
		t.Errorf("after the upgrade: version %q, want %q", got, version)
	}
	v.on("test -s /var/lib/pilebridge/pilebridge.db") // the data kept
	if after := v.on("sha256sum /etc/pilebridge/pilebridge.yaml"); after != cfgBefore {
		t.Errorf("the upgrade changed the config: %s → %s", cfgBefore, after)
	}
	r.waitActive()
	if pid := r.unit()["MainPID"]; pid == pidBefore {
		t.Errorf("the upgrade did not restart the daemon (MainPID %s)", pid)
	}
	t.Logf("upgrade: %s; MainPID %s → %s; config kept", v.on("pilebridge --version"), pidBefore, r.unit()["MainPID"])
}

// upgradeCutMidway cuts the power at a random moment of `dpkg -i`, boots,
// and takes the README's advice: copy the package again and run dpkg -i
// again, `dpkg --configure -a` first where dpkg asks for it.
func (r *rig) upgradeCutMidway(deb, version string, rnd *rand.Rand) {
	t := r.t
	v := r.vm
	name := filepath.Base(deb)
	v.host(filepath.Dir(deb), fmt.Sprintf("scp %s board:", name), nil)
	r.noErrorsLogged() // the journal is in RAM: read it before it goes
	v.on(fmt.Sprintf("nohup dpkg -i %s >/root/dpkg-cut.log 2>&1 </dev/null &", name))
	wait := time.Duration(300+rnd.IntN(6000)) * time.Millisecond
	time.Sleep(wait)
	t.Logf("power cut %s into dpkg -i (meter %d Wh)", wait, r.meterWh())
	v.cut()
	v.boot()
	t.Logf("after the cut: package %q, %s of %s left on the board",
		strings.TrimSpace(mustOut(v.ssh("dpkg-query -W -f='${Version} ${Status}' pilebridge", nil))),
		strings.TrimSpace(mustOut(v.ssh("stat -c %s "+name+" || true", nil))), name)
	// the README: copy it again, dpkg -i again
	v.host(filepath.Dir(deb), fmt.Sprintf("scp %s board:", name), nil)
	out, err := v.ssh("dpkg -i "+name, nil)
	if err != nil && strings.Contains(out, "--configure -a") {
		t.Logf("dpkg -i after the cut asked for dpkg --configure -a:\n%s", out)
		t.Logf("dpkg --configure -a:\n%s", v.on("dpkg --configure -a 2>&1"))
		out, err = v.ssh("dpkg -i "+name, nil)
	}
	if err != nil {
		t.Fatalf("dpkg -i again after the cut: %v", err)
	}
	t.Logf("dpkg -i again:\n%s", out)
	if got := v.on("dpkg-query -W -f='${Version} ${Status}' pilebridge"); got != version+" install ok installed" {
		t.Errorf("after the cut and dpkg -i again: %q, want %q installed", got, version)
	}
	r.waitActive()
}

// salvageAsRoot damages the database while a bill waits for the platform,
// and recovers it the way the README says, over ssh as root: stop, the
// README's two lines. The first salvage loses its power at a random
// moment; the second must finish it from what the first left. The
// service (user pilebridge) then opens what root wrote and delivers the
// bill once, exactly.
func (r *rig) salvageAsRoot(rnd *rand.Rand) {
	t := r.t
	v := r.vm
	const db = "/var/lib/pilebridge/pilebridge.db"
	r.plat.Inject(simulator.PlatformFault{Path: simulator.PathReplenish, Kind: "502", Count: 1 << 30})
	deltaWh := r.charge(func() { time.Sleep(10 * time.Second) })
	r.waitState("finished", time.Minute)
	r.eventually("the bill pending at the bridge (the platform answers 502)", time.Minute, func() bool {
		_, body := r.get("/status")
		var doc struct {
			Outbox struct {
				OldestBill *time.Time `json:"oldest_pending_bill_at"`
			} `json:"outbox"`
		}
		return json.Unmarshal([]byte(body), &doc) == nil && doc.Outbox.OldestBill != nil
	})
	owner := v.on("stat -c '%U:%G %a' " + db)
	v.on("systemctl stop pilebridge")
	// both meta pages gone: bbolt cannot open it, the bill is in a leaf
	v.on("dd if=/dev/zero of=" + db + " bs=4096 count=2 conv=notrunc status=none && sync")
	restarts := r.unit()["NRestarts"]
	if out, err := v.ssh("systemctl start pilebridge", nil); err == nil {
		t.Errorf("systemctl start on a database without meta pages succeeded: %s", out)
	}
	r.eventually("the unit to refuse the damaged database", time.Minute, func() bool {
		u := r.unit()
		return u["ActiveState"] == "failed" || u["ActiveState"] == "inactive"
	})
	status := v.on("systemctl show pilebridge -p ExecMainStatus -p NRestarts")
	t.Logf("damaged database: %s; %s", strings.ReplaceAll(status, "\n", " "),
		v.on(`journalctl -u pilebridge -o cat --no-pager -n 20 | grep -m1 -o 'salvage[^"]*' || true`))
	if !strings.Contains(status, "ExecMainStatus=75") || !strings.Contains(status, "NRestarts="+restarts) {
		t.Errorf("a damaged database: %s, want exit 75 and no restart (NRestarts=%s before)", status, restarts)
	}

	// salvage, cut off at a random moment
	v.on("nohup pilebridge db salvage --config /etc/pilebridge/pilebridge.yaml >/root/salvage-cut.log 2>&1 </dev/null &")
	// salvage of a small file is over within about half a second here
	// (ssh's return and the binary's start included): cut inside that
	wait := time.Duration(rnd.IntN(400)) * time.Millisecond
	time.Sleep(wait)
	t.Logf("power cut %s into db salvage", wait)
	v.cut()
	v.boot()
	t.Logf("after the cut: data_dir %s; unit %s", strings.ReplaceAll(v.on("ls /var/lib/pilebridge"), "\n", " "), r.unit()["ActiveState"])

	// the README's steps, as root, with the daemon stopped
	v.on("systemctl stop pilebridge")
	since := v.on("date +%s")
	steps := readmeBlock(t, "**When the card fails.**", "sh")
	ran := 0
	for _, line := range strings.Split(steps, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "systemctl start") {
			r.plat.ClearFaults() // the platform is back
		}
		out := v.on(line + " 2>&1")
		t.Logf("README step as root: %s\n%s", line, out)
		ran++
	}
	if ran != 2 {
		t.Fatalf("the README's salvage block has %d steps, want 2:\n%s", ran, steps)
	}
	r.waitActive()
	if got := v.on("stat -c '%U:%G %a' " + db); got != owner {
		t.Errorf("after salvage as root: %s is %s, want %s as before", db, got, owner)
	}
	restarts = r.unit()["NRestarts"]
	time.Sleep(15 * time.Second) // a restart loop would show here
	if u := r.unit(); u["ActiveState"] != "active" || u["NRestarts"] != restarts {
		t.Errorf("after salvage as root: unit %s, NRestarts %s → %s", u["ActiveState"], restarts, u["NRestarts"])
	}
	r.expectBill("damaged database salvaged as root", deltaWh)
	out := v.on(`journalctl -u pilebridge -o cat --no-pager --since @` + since + ` | grep -E '"level":"(error|fatal|panic)"' || true`)
	if out != "" {
		t.Errorf("errors after salvage:\n%s", out)
	}
}

func mustOut(s string, err error) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// hang stops the daemon: the watchdog must restart it.
func (r *rig) hang() {
	t := r.t
	u := r.unit()
	restarts := u["NRestarts"]
	r.vm.on("kill -STOP " + u["MainPID"])
	stopped := time.Now()
	t.Logf("kill -STOP %s at %s", u["MainPID"], stopped.UTC().Format("15:04:05.000"))
	// WatchdogSec 30 s, then SIGABRT, and SIGKILL after TimeoutStopSec
	// (15 s) since a stopped process takes no signal but that; RestartSec 2 s
	r.eventually("systemd to restart the hung daemon", 30*time.Second+15*time.Second+2*time.Second+30*time.Second, func() bool {
		u := r.unit()
		return u["NRestarts"] != restarts && u["ActiveState"] == "active" && u["SubState"] == "running"
	})
	t.Logf("the watchdog restarted it %s after SIGSTOP (NRestarts %s → %s)", time.Since(stopped).Round(time.Second), restarts, r.unit()["NRestarts"])
}

// noErrorsLogged: no error in the daemon's journal but the ones the test
// caused (a hung daemon's abort, cut-off lines).
func (r *rig) noErrorsLogged() {
	out := r.vm.on(`journalctl -u pilebridge -o cat --no-pager -b | grep -E '"level":"(error|fatal|panic)"' || true`)
	if out != "" {
		r.t.Errorf("errors in journalctl -u pilebridge (this boot):\n%s", out)
	}
}

func (r *rig) setStatus(st meter.Status, power, stop int64) {
	must(r.t, r.pile.Update(func(m *meter.Reading) {
		m.Status, m.PowerW, m.StopCode = st, power, stop
	}))
}

func (r *rig) tick(ctx context.Context) {
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			_ = r.pile.Tick()
		}
	}
}

func (r *rig) meterWh() int64 {
	wh, err := r.pile.MeterWh()
	must(r.t, err)
	return wh
}

// waitState waits until the bridge's /status shows the port in state.
func (r *rig) waitState(state string, d time.Duration) {
	r.t.Helper()
	r.eventually("the bridge to see the port "+state, d, func() bool {
		code, body := r.get("/status")
		if code != http.StatusOK {
			return false
		}
		var doc struct {
			Ports []struct {
				State string `json:"state"`
			} `json:"ports"`
		}
		return json.Unmarshal([]byte(body), &doc) == nil && len(doc.Ports) == 1 && doc.Ports[0].State == state
	})
}

func (r *rig) get(path string) (int, string) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", r.vm.webPort, path))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *rig) eventually(what string, d time.Duration, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(time.Second)
	}
}

// readmeBlock is the first fenced block of lang after the line holding marker.
func readmeBlock(t *testing.T, marker, lang string) string {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	must(t, err)
	s := string(b)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q", marker)
	}
	s = s[i:]
	open := "```" + lang + "\n"
	j := strings.Index(s, open)
	if j < 0 {
		t.Fatalf("README.md: no ```%s block after %q", lang, marker)
	}
	s = s[j+len(open):]
	k := strings.Index(s, "```")
	return s[:k]
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
