package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
	"pilebridge/simulator"
)

var bridgeBin string

func TestMain(m *testing.M) {
	waitingParallel()
	dir, err := os.MkdirTemp("", "pilebridge-e2e")
	if err != nil {
		panic(err)
	}
	bridgeBin = filepath.Join(dir, "pilebridge")
	args := []string{"build", "-o", bridgeBin}
	if raceBuild {
		args = append(args, "-race") // a data race makes the daemon exit 66: the tests fail
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// station is one simulated pile on a pty, the platform stand-in on loopback
// HTTP, and a config for the real bridge binary.
type testStation struct {
	t      *testing.T
	dir    string
	config string
	plat   *simulator.Platform
	pile   *simulator.Pile
	rig    *simulator.Rig
	// started is when the last bridge was started: its listen.addr is
	// newer than that
	started time.Time
}

var dataDirRe = regexp.MustCompile(`(?m)^data_dir: (\S+)$`)

// listenAddr is the address the running bridge listens on: its config says
// listen: 127.0.0.1:0, so the kernel picked a free port, and the daemon
// wrote it down in data_dir/listen.addr (no port is raced for).
func (s *testStation) listenAddr() string {
	s.t.Helper()
	cfg, err := os.ReadFile(s.config)
	require.NoError(s.t, err)
	m := dataDirRe.FindSubmatch(cfg)
	require.NotNil(s.t, m, "data_dir in the config")
	file := filepath.Join(string(m[1]), "listen.addr")
	var addr string
	s.waitFor("the bridge's listen address", 15*time.Second, func() bool {
		st, err := os.Stat(file)
		if err != nil || st.ModTime().Before(s.started.Add(-time.Second)) {
			return false
		}
		b, err := os.ReadFile(file)
		addr = strings.TrimSpace(string(b))
		return err == nil && addr != ""
	})
	return addr
}

func newStation(t *testing.T, extra string) *testStation {
	return newStationWith(t, "ref-dc", extra)
}

// newStationWith is a station whose pile presents profile (ref-dc: a DC
// pile, CN_DC; ref-ac: an AC pile, CN_AC).
func newStationWith(t *testing.T, profile, extra string) *testStation {
	dir := t.TempDir()
	reg, err := meter.LoadRegistry("")
	require.NoError(t, err)
	prof, _ := reg.Get(profile)
	energyCode := map[string]string{"ref-dc": "CN_DC", "ref-ac": "CN_AC"}[profile]
	link := filepath.Join(dir, "ttyV0")
	rig, err := simulator.ServeOnPty(link, prof, 5_000_000, 3)
	require.NoError(t, err)
	t.Cleanup(func() { rig.Close() })

	plat, err := simulator.NewPlatform("op_e2e", "e2e-secret", "")
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &http.Server{Handler: plat}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	cfg := fmt.Sprintf(`station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a
data_dir: %s/data
log: {level: debug, format: json}
platform:
  base_url: http://%s
  app_id: op_e2e
  app_secret: e2e-secret
  progress_interval: 1s
  device_sync_interval: 1m
  retry_base: 100ms
  retry_max: 1s
tariff:
  periods:
    - {start: "00:00", end: "24:00", type: flat, electricity: "0.8", service: "0.6"}
session: {offline_after: 2s}
buses:
  - {name: l1, device: %s, baud: 115200, timeout: 200ms, retries: 1}
piles:
  - device_no: E2E01
    device_type: 0
    energy_code: %s
    bus: l1
    rated_power_w: 120000
    ports:
      - {port_no: "1", slave: 3, profile: %s, poll_interval: 200ms}
%s`, dir, ln.Addr(), link, energyCode, profile, extra)
	path := filepath.Join(dir, "pilebridge.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	return &testStation{t: t, dir: dir, config: path, plat: plat, pile: rig.Piles[3], rig: rig}
}

// token is the local API's bearer token the running daemon created.
func (s *testStation) token() string {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "data", "listen_token"))
	require.NoError(s.t, err)
	return strings.TrimSpace(string(b))
}

type bridge struct {
	cmd *exec.Cmd
	log *os.File
}

func (s *testStation) startBridge() *bridge {
	logf, err := os.OpenFile(filepath.Join(s.dir, "bridge.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(s.t, err)
	cmd := exec.Command(bridgeBin, "run", "--config", s.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = dieWithTheTest()
	s.started = time.Now()
	require.NoError(s.t, cmd.Start())
	b := &bridge{cmd: cmd, log: logf}
	s.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		log, _ := os.ReadFile(logf.Name())
		if bytes.Contains(log, []byte("DATA RACE")) {
			s.t.Errorf("the daemon reported a data race:\n%s", log)
		}
		// personal data is masked in every log line (issue 28): the VIN
		// the simulated piles report never appears whole
		for _, vin := range []string{"LDC12345678901234", "LSTOP103212132001"} {
			if bytes.Contains(log, []byte(vin)) {
				s.t.Errorf("the daemon logged the VIN %s in full", vin)
			}
		}
	})
	return b
}

func (b *bridge) stop(sig syscall.Signal) error {
	_ = b.cmd.Process.Signal(sig)
	return b.cmd.Wait()
}

type bill struct {
	Order       string `json:"order"`
	State       int    `json:"state"`
	StateDesc   string `json:"state_desc"`
	Quantity    int64  `json:"quantity"`
	EnergyValue int64  `json:"energy_value"`
	FeeValue    int64  `json:"fee_value"`
	StartTime   string `json:"start_time"`
	EndTime     string `json:"end_time"`
	VIN         string `json:"vin"`
	Plate       string `json:"plate"`
	SOC         *int   `json:"soc"`
}

func (s *testStation) bills() []bill {
	var out []bill
	for _, r := range s.plat.Received(simulator.PathReplenish) {
		var b bill
		require.NoError(s.t, json.Unmarshal(r.Body, &b))
		out = append(out, b)
	}
	return out
}

func (s *testStation) finals() []bill {
	var out []bill
	for _, b := range s.bills() {
		if b.State != 2 {
			out = append(out, b)
		}
	}
	return out
}

func (s *testStation) waitFor(what string, d time.Duration, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "bridge.log"))
			s.t.Fatalf("timed out waiting for %s\nbridge log:\n%s", what, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// charging runs the pile at power until the context ends (energy integrates in the simulator).
func (s *testStation) charging(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.pile.Tick()
		}
	}
}

// meterWh is what the pile's whole-Wh energy register shows: the true
// energy, truncated (ref-dc's register is whole Wh).
func (s *testStation) meterWh() int64 { return s.pile.Reading().EnergyMWh / 1000 }

func (s *testStation) set(st meter.Status, powerW int64, stop int64) {
	require.NoError(s.t, s.pile.Update(func(r *meter.Reading) {
		r.Status, r.PowerW, r.StopCode = st, powerW, stop
		r.VIN, r.SOC, r.HasSOC = "LDC12345678901234", 40, true
	}))
}

// startSession takes the pile through starting to charging at powerW, as
// a pile does when a session starts: charging begins once the bridge has
// seen the pile starting (its baseline is that reading).
func (s *testStation) startSession(powerW int64) {
	s.setAndSee(meter.StatusStarting, 0, 0, "starting")
	s.set(meter.StatusCharging, powerW, 0)
}

// setAndSee sets the pile's status and waits until the bridge logs that
// its port went to state: an event, not a sleep.
func (s *testStation) setAndSee(st meter.Status, powerW, stop int64, state string) {
	s.t.Helper()
	seen := strings.Count(s.log(), `"to":"`+state+`"`)
	s.set(st, powerW, stop)
	s.waitFor("the bridge to see the port "+state, 10*time.Second, func() bool {
		return strings.Count(s.log(), `"to":"`+state+`"`) > seen
	})
}

// The foundation's promise: simulator → pty → bridge → signed upload → stand-in,
// and the bill is exactly the meter's delta.
func TestEndToEndSession(t *testing.T) {
	t.Parallel()
	s := newStation(t, "")
	b := s.startBridge()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.charging(ctx)
	start := s.meterWh()
	s.startSession(60000)
	s.waitFor("progress records", 10*time.Second, func() bool { return len(s.bills()) >= 3 })
	s.set(meter.StatusFinished, 0, 1)
	delta := s.meterWh() - start
	s.waitFor("the final bill", 10*time.Second, func() bool { return len(s.finals()) == 1 })
	require.NoError(t, b.stop(syscall.SIGTERM))

	f := s.finals()[0]
	assert.Equal(t, 3, f.State)
	assert.Equal(t, "SOC已充满", f.StateDesc)
	assert.Equal(t, delta, f.Quantity, "bill equals the meter's delta")
	assert.Positive(t, delta)
	assert.Equal(t, (delta*8000+50000)/100000, f.EnergyValue)
	assert.Equal(t, (delta*6000+50000)/100000, f.FeeValue)
	assert.Equal(t, "LDC12345678901234", f.VIN)
	require.NotNil(t, f.SOC)
	assert.Zero(t, s.plat.Rejected(), "every signature and field accepted")
	for _, r := range s.bills() {
		assert.Equal(t, f.Order, r.Order)
		_, err := time.Parse("2006-01-02T15:04:05.000Z", r.StartTime)
		assert.NoError(t, err)
	}
	assert.NotEmpty(t, s.plat.Received(simulator.PathDevice), "device/sync reported")

	// the log: one line per state change, by name; UTC millisecond stamps
	log, err := os.ReadFile(filepath.Join(s.dir, "bridge.log"))
	require.NoError(t, err)
	assert.Regexp(t, `"message":"port state"[^\n]*"to":"charging"|"to":"charging"[^\n]*"message":"port state"`, string(log))
	assert.Regexp(t, `"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`, string(log))
	assert.Equal(t, 1, strings.Count(string(log), `"to":"charging"`), "one line per change, not per poll")
}

// kill -9 mid-session with the pile still charging: after restart the same
// order continues and exactly one bill carries the whole delta.
func TestKillNineMidSession(t *testing.T) {
	t.Parallel()
	s := newStation(t, "")
	b := s.startBridge()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.charging(ctx)
	start := s.meterWh()
	s.startSession(90000) // the session's first reading is before any energy flows
	s.waitFor("charging seen", 10*time.Second, func() bool { return len(s.bills()) >= 2 })
	_ = b.stop(syscall.SIGKILL)
	time.Sleep(1500 * time.Millisecond) // energy flows while the bridge is dead
	b = s.startBridge()
	s.waitFor("resumed progress", 10*time.Second, func() bool {
		bs := s.bills()
		return len(bs) >= 4 && bs[len(bs)-1].Quantity > bs[1].Quantity
	})
	s.set(meter.StatusFinished, 0, 2)
	delta := s.meterWh() - start
	s.waitFor("the final bill", 10*time.Second, func() bool { return len(s.finals()) >= 1 })
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, b.stop(syscall.SIGTERM))
	finals := s.finals()
	require.Len(t, finals, 1, "one bill")
	assert.Equal(t, delta, finals[0].Quantity, "nothing lost or double-counted across the kill")
	assert.Equal(t, "用户停止", finals[0].StateDesc)
	for _, r := range s.bills() {
		assert.Equal(t, finals[0].Order, r.Order, "same order before and after the restart")
	}
}

// Power loss of the board while the pile charges on and then stops: after
// the restart the pile's meter still shows the session's energy, and the bill
// carries all of it, ending no later than the restart.
func TestPowerLossPileStopped(t *testing.T) {
	t.Parallel()
	s := newStation(t, "")
	b := s.startBridge()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.charging(ctx)
	start := s.meterWh()
	s.startSession(90000) // the session's first reading is before any energy flows
	s.waitFor("charging seen", 10*time.Second, func() bool { return len(s.bills()) >= 2 })
	_ = b.stop(syscall.SIGKILL)
	time.Sleep(time.Second) // the pile charges on, then stops, while the board is down
	s.set(meter.StatusIdle, 0, 0)
	delta := s.meterWh() - start
	restart := time.Now()
	b = s.startBridge()
	s.waitFor("recovery bill", 10*time.Second, func() bool { return len(s.finals()) == 1 })
	require.NoError(t, b.stop(syscall.SIGTERM))
	f := s.finals()[0]
	assert.Equal(t, "断电恢复结算", f.StateDesc)
	assert.Equal(t, 3, f.State)
	assert.Equal(t, delta, f.Quantity, "the live reading's energy is the session's")
	end, err := time.Parse("2006-01-02T15:04:05.000Z", f.EndTime)
	require.NoError(t, err)
	assert.WithinDuration(t, restart, end, 3*time.Second, "ends at the restart: the last increase the meter proves")
}

// A bad config stops the daemon before any port is opened, naming the key.
func TestBadConfigNamesTheKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := map[string]string{
		"station_uuid: x\ndata_dir: /tmp/x\nplatform: {base_url: 'ftp://x', app_id: a, app_secret: s}\n":                                                                                                                                              "platform.base_url",
		"station_uuid: x\ndata_dir: /tmp/x\nplatform: {base_url: 'https://x', app_id: a, app_secret: s}\nbuses: [{name: a, device: /dev/x, parity: Q}]\n":                                                                                             "buses[0].parity",
		"station_uuid: x\ndata_dir: /tmp/x\nplatform: {base_url: 'https://x', app_id: a, app_secret: s}\nbogus: 1\n":                                                                                                                                  "bogus: unknown key",
		"station_uuid: x\ndata_dir: /tmp/x\nplatform: {base_url: 'https://x', app_id: a, app_secret: s}\nbuses: [{name: a, device: /dev/x}]\npiles: [{device_no: P, energy_code: CN_AC, bus: a, ports: [{port_no: '1', slave: 1, profile: nope}]}]\n": "piles[0].ports[0].profile",
	}
	for doc, want := range cases {
		p := filepath.Join(dir, "c.yaml")
		doc = strings.ReplaceAll(doc, "data_dir: /tmp/x", "data_dir: "+filepath.Join(dir, "data")) // a path of the test's own
		require.NoError(t, os.WriteFile(p, []byte(doc), 0o600))
		for _, cmd := range []string{"run", "check"} {
			out, err := exec.Command(bridgeBin, cmd, "--config", p).CombinedOutput()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, cmd)
			assert.Equal(t, 78, ee.ExitCode(), "%s exits EX_CONFIG so systemd does not restart-loop", cmd)
			assert.Contains(t, string(out), want, cmd)
			assert.NotContains(t, string(out), "app_secret: s")
		}
	}
}

// check and run accept and refuse the same files: check is the daemon's
// own validation, warnings included.
func TestCheckWarnsOfAReadableSecret(t *testing.T) {
	t.Parallel()
	s := newStation(t, "")
	secret := filepath.Join(s.dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("e2e-secret\n"), 0o644))
	data, err := os.ReadFile(s.config)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(s.config, bytes.Replace(data, []byte("app_secret: e2e-secret"), []byte("app_secret_file: "+secret), 1), 0o600))
	out, err := exec.Command(bridgeBin, "check", "--config", s.config).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "warning: platform.app_secret_file "+secret+" has mode 0644")
	assert.NotContains(t, string(out), "e2e-secret")
}

// waitingParallel runs 8 tests at a time unless -test.parallel says
// otherwise: these tests wait on real time (a pty's pace, timeouts, a
// daemon's polls), not on the two cores, so GOMAXPROCS (the default) would
// leave the machine idle.
func waitingParallel() {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "8")
	}
}

// dieWithTheTest: a daemon (or Prometheus) a test started is killed when
// the test binary dies, even by a panic that runs no Cleanup; an orphan
// would hold its pseudo-terminal, whose number a later test's pty gets.
func dieWithTheTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
