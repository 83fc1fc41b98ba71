package session_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"pilebridge/driver"
	"pilebridge/meter"
	"pilebridge/session"
	"pilebridge/simulator"
)

// ptyLine serves simulated ref-ac piles (1 000 Wh on their meters) at the
// given slave ids on a real pty, with a running bus on its other end.
func ptyLine(t *testing.T, slaves ...uint8) (*simulator.Rig, *driver.Bus, *meter.Profile) {
	t.Helper()
	reg, err := meter.LoadRegistry("")
	require.NoError(t, err)
	prof, err := reg.Get("ref-ac")
	require.NoError(t, err)
	rig, err := simulator.ServeOnPty("", prof, 1000, slaves...)
	require.NoError(t, err)
	t.Cleanup(func() { rig.Close() })
	bus, err := driver.New(driver.Config{Name: "b", Device: rig.Line.SlavePath,
		Serial:  driver.SerialParams{Baud: 115200, DataBits: 8, Parity: "N", StopBits: 1},
		Default: driver.SlavePolicy{Timeout: 200 * time.Millisecond}, DeadAfter: 3, DeadBase: 2 * time.Second, DeadMax: time.Minute}, zerolog.Nop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go bus.Run(ctx)
	t.Cleanup(func() { cancel(); <-bus.Done() })
	return rig, bus, prof
}

// flatTariff: 1 yuan a kWh for electricity and 1 for service, all day.
func flatTariff(t *testing.T) *session.Tariff {
	t.Helper()
	tr, err := session.NewTariff("Asia/Shanghai", []session.PeriodSpec{{Start: "00:00", End: "24:00", Type: "flat", Electricity: "1", Service: "1"}})
	require.NoError(t, err)
	return tr
}
