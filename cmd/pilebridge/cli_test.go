package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
	"pilebridge/simulator"
)

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}

// `pilebridge read` reads every shipped profile end to end from the simulator.
func TestReadEveryProfileFromPilesim(t *testing.T) {
	reg, err := meter.LoadRegistry("")
	require.NoError(t, err)
	for _, name := range reg.Names() {
		t.Run(name, func(t *testing.T) {
			p, _ := reg.Get(name)
			link := filepath.Join(t.TempDir(), "tty")
			line, err := simulator.OpenPty(link)
			require.NoError(t, err)
			defer line.Close()
			srv := simulator.NewServer(zerolog.Nop())
			pile, err := simulator.NewPile(p, meter.Ratios{}, srv.AddSlave(9).Bank, 7654320)
			require.NoError(t, err)
			require.NoError(t, pile.Update(func(r *meter.Reading) { r.PowerW, r.Status = 11000, meter.StatusCharging }))
			go srv.AttachPty(line)

			out, errs, code := runCLI(t, "read", "--device", link, "--slave", "9", "--profile", name, "--baud", "9600", "--parity", "N", "--json")
			require.Equal(t, 0, code, errs)
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &m), out)
			assert.EqualValues(t, 7654320, m["energy_wh"])
			assert.EqualValues(t, 11000, m["power_w"])
			if p.HasStatus() {
				assert.Equal(t, "charging", m["status"])
			}

			out, _, code = runCLI(t, "read", "--device", link, "--slave", "9", "--profile", name, "--baud", "9600", "--parity", "N")
			require.Equal(t, 0, code)
			assert.Contains(t, out, "energy")
			assert.Contains(t, out, "Wh")
		})
	}
}

func TestReadErrorsAreClear(t *testing.T) {
	_, errs, code := runCLI(t, "read", "--device", "/nonexistent/tty", "--profile", "ref-ac")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "/nonexistent/tty")
	_, errs, code = runCLI(t, "read", "--device", "/dev/null", "--profile", "nope")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `no profile named "nope"`)
}

func TestProfilesAndScan(t *testing.T) {
	out, _, code := runCLI(t, "profiles")
	require.Equal(t, 0, code)
	for _, n := range []string{"ref-ac", "ref-dc", "dtsu666", "ddsu666", "djsf1352", "adl400", "sdm120", "sdm630", "abb-b23"} {
		assert.Contains(t, out, n)
	}
	assert.Contains(t, out, "embedded:profiles/ref-ac.yaml")
	out, errs, code := runCLI(t, "scan")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "USB VID:PID")
}

// Records queued while the platform is down survive kill -9 and are delivered
// after restart; `outbox list` shows them, offline and through the running daemon.
func TestOutboxAcrossKillAndCLI(t *testing.T) {
	s := newStation(t, "listen: 127.0.0.1:0\n")
	// a free port for the daemon's listen address
	listen := freeAddr(t)
	cfg, err := os.ReadFile(s.config)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(s.config, bytes.Replace(cfg, []byte("listen: 127.0.0.1:0"), []byte("listen: "+listen), 1), 0o600))

	s.plat.Inject(simulator.PlatformFault{Kind: "502", Count: 1_000_000}) // the platform is down
	b := s.startBridge()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.charging(ctx)
	start := s.pile.Reading().EnergyWh
	s.set(meter.StatusCharging, 60000, 0)
	time.Sleep(1500 * time.Millisecond)
	s.set(meter.StatusFinished, 0, 3)
	delta := s.pile.Reading().EnergyWh - start

	// while it runs, the CLI goes through the daemon
	var out string
	s.waitFor("the bill queued and tried", 10*time.Second, func() bool {
		o, _, code := runCLI(t, "outbox", "list", "--config", s.config)
		out = o
		return code == 0 && strings.Contains(o, "final") && strings.Contains(o, "HTTP 502")
	})
	assert.Contains(t, out, "pending")

	_ = b.stop(syscall.SIGKILL)
	out, errs, code := runCLI(t, "outbox", "list", "--config", s.config)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "final", "still queued on disk after kill -9")

	s.plat.ClearFaults()
	b = s.startBridge()
	s.waitFor("delivery after restart", 10*time.Second, func() bool { return len(s.finals()) == 1 })
	require.NoError(t, b.stop(syscall.SIGTERM))
	f := s.finals()[0]
	assert.Equal(t, delta, f.Quantity)
	assert.Equal(t, "急停", f.StateDesc)
	out, _, code = runCLI(t, "outbox", "list", "--all", "--config", s.config)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "delivered")
	assert.NotContains(t, out, "pending ")

	logData, err := os.ReadFile(filepath.Join(s.dir, "bridge.log"))
	require.NoError(t, err)
	assert.NotContains(t, string(logData), "e2e-secret", "the app secret is never logged")
}

func freeAddr(t *testing.T) string {
	l, err := netListen()
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	return addr
}
