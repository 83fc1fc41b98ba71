package meter_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/driver"
	"pilebridge/meter"
	"pilebridge/simulator"
)

// Every shipped profile is served by the simulator on a pty and read back
// through the real driver.
func TestEveryProfileOverTheWire(t *testing.T) {
	reg, err := meter.LoadRegistry("")
	require.NoError(t, err)
	for _, name := range reg.Names() {
		t.Run(name, func(t *testing.T) {
			p, _ := reg.Get(name)
			link := filepath.Join(t.TempDir(), "tty")
			rig, err := simulator.ServeOnPty(link, p, 1234560, 7)
			require.NoError(t, err)
			defer rig.Close()
			pile := rig.Piles[7]
			require.NoError(t, pile.Update(func(r *meter.Reading) {
				r.Status, r.PowerW, r.VIN = meter.StatusCharging, 22000, "LSTOP103212132001"
			}))

			bus, err := driver.New(driver.Config{Name: "t", Device: link,
				Serial:  driver.SerialParams{Baud: 9600, DataBits: 8, Parity: "N", StopBits: 1},
				Default: driver.SlavePolicy{Timeout: 300 * time.Millisecond, Retries: 1}, DeadAfter: 3, DeadBase: 2 * time.Second, DeadMax: time.Minute}, zerolog.Nop())
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer func() { cancel(); <-bus.Done() }()
			go bus.Run(ctx)

			r, err := meter.NewPoller(bus, 7, p, meter.Ratios{}).Poll(ctx, time.Now())
			require.NoError(t, err)
			want := pile.Reading()
			step := int64(10) // 0.01 kWh registers
			assert.InDelta(t, want.EnergyWh, r.EnergyWh, float64(step))
			assert.InDelta(t, 22000, r.PowerW, 1)
			if p.HasStatus() {
				assert.Equal(t, meter.StatusCharging, r.Status)
				assert.Equal(t, "LSTOP103212132001", r.VIN)
			}
			assert.EqualValues(t, len(p.Blocks()), bus.Stats()[7].OK, "one exchange per planned block")
		})
	}
}
