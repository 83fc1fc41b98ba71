package station

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
	"pilebridge/simulator"
)

// The station built and run in-process, without a binary: a simulated
// pile on a real pseudo-terminal, the platform stand-in on real HTTP, the
// real store. One session: the bill at the stand-in is the pile's register
// delta, and the station stops cleanly when its context ends.
func TestStationInProcess(t *testing.T) {
	dir := t.TempDir()
	reg, err := meter.LoadRegistry("")
	require.NoError(t, err)
	prof, _ := reg.Get("ref-ac")
	link := filepath.Join(dir, "ttyUSB0")
	rig, err := simulator.ServeOnPty(link, prof, 2_000_000, 1)
	require.NoError(t, err)
	defer rig.Close()
	plat, err := simulator.NewPlatform("op_station", "s3cret", "")
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &http.Server{Handler: plat}
	go hs.Serve(ln)
	defer hs.Close()
	cfgPath := filepath.Join(dir, "pilebridge.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a
data_dir: %s
platform: {base_url: "http://%s", app_id: op_station, app_secret: s3cret, progress_interval: 1s}
buses: [{name: l1, device: %s, baud: 115200, timeout: 200ms}]
piles:
  - {device_no: ST01, energy_code: CN_AC, bus: l1, rated_power_w: 22000,
     ports: [{port_no: "1", slave: 1, profile: ref-ac, poll_interval: 200ms}]}
`, filepath.Join(dir, "data"), ln.Addr(), link)), 0o600))
	cfg, reg, err := Load(cfgPath)
	require.NoError(t, err)
	st, err := Build(cfg, reg, zerolog.Nop(), Options{Version: "test", Notify: func(string) error { return nil }})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()

	pile := rig.Piles[1]
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	charge := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); <-tick.C {
			_ = pile.Tick()
		}
	}
	charge(500 * time.Millisecond)
	start := pile.Reading().EnergyMWh / 1000 // ref-ac's register is whole Wh
	require.NoError(t, pile.Update(func(r *meter.Reading) { r.Status = meter.StatusStarting }))
	charge(500 * time.Millisecond)
	require.NoError(t, pile.Update(func(r *meter.Reading) { r.Status, r.PowerW = meter.StatusCharging, 22000 }))
	charge(2 * time.Second)
	require.NoError(t, pile.Update(func(r *meter.Reading) { r.Status, r.PowerW = meter.StatusFinished, 0 }))
	delta := pile.Reading().EnergyMWh/1000 - start
	var final map[string]any
	require.Eventually(t, func() bool {
		for _, r := range plat.Received(simulator.PathReplenish) {
			var m map[string]any
			if json.Unmarshal(r.Body, &m) == nil && m["state"] == float64(3) {
				final = m
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond)
	assert.EqualValues(t, delta, final["quantity"], "the bill is the register's delta")
	assert.Positive(t, delta)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	require.NoError(t, st.Close())
}
