package station

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/driver"
	"pilebridge/meter"
	"pilebridge/simulator"
)

// lineConfig is n ref-ac ports on one serial line at baud.
func lineConfig(t *testing.T, dir, device string, baud, n int, extra string) string {
	var ports []string
	for i := 1; i <= n; i++ {
		ports = append(ports, fmt.Sprintf(`{port_no: "%d", slave: %d, profile: ref-ac%s}`, i, i, extra))
	}
	path := filepath.Join(dir, "line.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a
data_dir: %s
platform: {base_url: "https://api.4pyun.com", app_id: a, app_secret: s}
tariff: {periods: [{start: "00:00", end: "24:00", type: flat, electricity: "1", service: "0"}]}
buses: [{name: rs485-1, device: %s, baud: %d}]
piles: [{device_no: P1, energy_code: CN_AC, bus: rs485-1, rated_power_w: 7000, ports: [%s]}]
`, filepath.Join(dir, "data"), device, baud, strings.Join(ports, ", "))), 0o600))
	return path
}

// Sixteen piles on one 9600-baud line cannot be read once a second: check
// (and the daemon's start) says so, with the round time from the line's
// own arithmetic: 11 bits a character, request 8 bytes, reply 5 + 2 per
// register, 3.5 characters of silence before each frame.
func TestLineBudgetWarnsOfAnOverloadedLine(t *testing.T) {
	dir := t.TempDir()
	cfg, reg, err := Load(lineConfig(t, dir, "/dev/ttyUSB9", 9600, 16, ""))
	require.NoError(t, err)
	prof, _ := reg.Get("ref-ac")
	char := 11.0 / 9600
	perPort := 0.0
	for _, b := range prof.Blocks() {
		perPort += (8+5+2*float64(b.Count))*char + 2*3.5*char
	}
	want := fmt.Sprintf("rs485-1: 16 ports need %.2f s per round at 9600 baud; poll_interval 1s", 16*perPort)
	require.Greater(t, 16*perPort, 1.0, "the scenario: more than a second of line time")
	found := false
	for _, w := range cfg.Warnings {
		found = found || strings.Contains(w, want)
	}
	assert.True(t, found, "want %q in %q", want, cfg.Warnings)

	cfg, _, err = Load(lineConfig(t, dir, "/dev/ttyUSB9", 115200, 16, ""))
	require.NoError(t, err)
	for _, w := range cfg.Warnings {
		assert.NotContains(t, w, "per round", "115200 baud carries 16 ports a second")
	}
	cfg, _, err = Load(lineConfig(t, dir, "/dev/ttyUSB9", 9600, 4, ", poll_interval: 200ms"))
	require.NoError(t, err)
	assert.Contains(t, strings.Join(cfg.Warnings, "\n"), "4 ports need")
}

// The computed round against the line itself: a real bus on a pty, the
// simulator paced at 9600 baud, four piles polled in turn. The measured
// round is within 10 % of LineBudgets'.
func TestLineBudgetMatchesThePacedLine(t *testing.T) {
	if os.Getenv("PILEBRIDGE_QEMU") != "" {
		t.Skip("timing under qemu-user is not the line's")
	}
	dir := t.TempDir()
	reg, err := meter.LoadRegistry("")
	require.NoError(t, err)
	prof, _ := reg.Get("ref-ac")
	link := filepath.Join(dir, "tty")
	pty, err := simulator.OpenPty(link)
	require.NoError(t, err)
	defer pty.Close()
	srv := simulator.NewServer(zerolog.Nop())
	srv.Baud = 9600
	for id := uint8(1); id <= 4; id++ {
		sl := srv.AddSlave(id)
		require.NoError(t, prof.Encode(meter.Reading{Status: meter.StatusIdle, HasStatus: true}, meter.Ratios{}, sl.Bank.Set))
	}
	go srv.AttachPty(pty)
	cfg, reg, err := Load(lineConfig(t, dir, link, 9600, 4, ""))
	require.NoError(t, err)
	budgets := LineBudgets(cfg, reg)
	require.Len(t, budgets, 1)

	bus, err := driver.New(driver.Config{Name: "rs485-1", Device: link, Serial: driver.SerialParams{Baud: 9600, DataBits: 8, Parity: "N", StopBits: 1},
		Default: driver.SlavePolicy{Timeout: time.Second}, DeadAfter: 3, DeadBase: time.Second, DeadMax: time.Minute}, zerolog.Nop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go bus.Run(ctx)
	var pollers []*meter.Poller
	for id := uint8(1); id <= 4; id++ {
		pollers = append(pollers, meter.NewPoller(bus, id, prof, meter.Ratios{}))
	}
	round := func() {
		for _, p := range pollers {
			_, err := p.Poll(ctx, time.Now())
			require.NoError(t, err)
		}
	}
	round() // warm up: the line opened
	// the fastest of several rounds is the line's own time: a busy machine
	// only adds to a round, never takes from it
	measured := time.Hour
	for i := 0; i < 6; i++ {
		start := time.Now()
		round()
		measured = min(measured, time.Since(start))
	}
	t.Logf("round: computed %s, measured %s", budgets[0].Round, measured)
	assert.InEpsilon(t, budgets[0].Round.Seconds(), measured.Seconds(), 0.10)

	// the line's load as the daemon reports it (pilebridge_bus_busy_ratio):
	// rounds back to back keep it busy; a pause as long as a round halves it
	assert.Greater(t, bus.LineStats().BusyRatio, 0.85, "rounds back to back")
	bus2, err := driver.New(driver.Config{Name: "rs485-1", Device: link, Serial: driver.SerialParams{Baud: 9600, DataBits: 8, Parity: "N", StopBits: 1},
		Default: driver.SlavePolicy{Timeout: time.Second}, DeadAfter: 3, DeadBase: time.Second, DeadMax: time.Minute}, zerolog.Nop())
	require.NoError(t, err)
	cancel()
	<-bus.Done()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go bus2.Run(ctx2)
	pollers = pollers[:0]
	for id := uint8(1); id <= 4; id++ {
		pollers = append(pollers, meter.NewPoller(bus2, id, prof, meter.Ratios{}))
	}
	ctx = ctx2
	for i := 0; i < 5; i++ {
		round()
		time.Sleep(budgets[0].Round)
	}
	ratio := bus2.LineStats().BusyRatio
	t.Logf("busy ratio with a round's pause between rounds: %.2f", ratio)
	assert.InDelta(t, 0.5, ratio, 0.3, "half busy, not idle (0) nor back to back (1): on a loaded machine sleeps overshoot and exchanges stretch")
}
