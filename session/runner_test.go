package session_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"pilebridge/meter"
	"pilebridge/session"
	"pilebridge/simulator"
	"pilebridge/uploader"
)

type bench struct {
	live  atomic.Int64 // the open session's quantity, as the runner last saw it
	pile  *simulator.Pile
	store *session.Store
	box   *uploader.Outbox
	port  *session.Port
	run   *session.Runner
}

// newBench wires one port from a simulated pile on a pty to a bbolt store.
func newBench(t *testing.T, persistEvery time.Duration) *bench {
	dir := t.TempDir()
	rig, bus, prof := ptyLine(t, 1)
	pile := rig.Piles[1]
	db, err := bbolt.Open(filepath.Join(dir, "db"), 0o600, nil)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	box, err := uploader.NewOutbox(db, 100_000, zerolog.Nop())
	require.NoError(t, err)
	tr := flatTariff(t)
	sink := &uploader.Translator{Outbox: box, Ports: map[string]uploader.Port{"D/1": {DeviceNo: "D", PortNo: "1", EnergyCode: "CN_AC"}}, LocalUserID: "u"}
	store, err := session.NewStore(db, sink, tr.Loc, "")
	require.NoError(t, err)
	m, err := session.NewMachine(session.FilledPortConfig(session.PortConfig{ProgressInterval: time.Hour}),
		tr, store.NextOrder, zerolog.Nop())
	require.NoError(t, err)
	port := &session.Port{Key: "D/1", Machine: m, Poller: meter.NewPoller(bus, 1, prof, meter.Ratios{}),
		Interval: 20 * time.Millisecond, PersistEvery: persistEvery}
	b := &bench{pile: pile, store: store, box: box, port: port}
	b.run = session.NewRunner(store, session.Clock{}, func(_ string, _ session.PortState, s *session.Session, _ meter.Reading, _ error) {
		if s != nil {
			b.live.Store(s.QuantityWh()) // on the runner's goroutine: the machine is never touched from the test's
		}
	}, zerolog.Nop())
	return b
}

func (b *bench) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.run.RunLine(ctx, []*session.Port{b.port}) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (b *bench) stored(t *testing.T) *session.Session {
	open, err := b.store.Open()
	require.NoError(t, err)
	return open["D/1"]
}

func (b *bench) setEnergy(t *testing.T, st meter.Status, wh int64) {
	require.NoError(t, b.pile.Update(func(r *meter.Reading) { r.Status = st; r.SetEnergyMWh(wh * 1000) }))
}

func TestRunnerStoresEveryReadingByDefault(t *testing.T) {
	b := newBench(t, 0)
	b.start(t)
	b.setEnergy(t, meter.StatusCharging, 1000)
	require.Eventually(t, func() bool { return b.stored(t) != nil }, 5*time.Second, 10*time.Millisecond)
	b.setEnergy(t, meter.StatusCharging, 1042)
	require.Eventually(t, func() bool { s := b.stored(t); return s != nil && s.Energy.LastMWh == 1042_000 }, 5*time.Second, 10*time.Millisecond)
	assert.EqualValues(t, 42, b.stored(t).QuantityWh())
}

func TestRunnerPersistIntervalBatchesReadingsNotRecords(t *testing.T) {
	b := newBench(t, time.Hour)
	b.start(t)
	b.setEnergy(t, meter.StatusCharging, 1000)
	require.Eventually(t, func() bool { return b.stored(t) != nil }, 5*time.Second, 10*time.Millisecond, "opening is stored at once")
	order := b.stored(t).Order
	b.setEnergy(t, meter.StatusCharging, 1042)
	require.Eventually(t, func() bool { return b.live.Load() == 42 }, 5*time.Second, 10*time.Millisecond)
	assert.EqualValues(t, 0, b.stored(t).QuantityWh(), "a plain reading waits for the interval")
	b.setEnergy(t, meter.StatusFinished, 1050)
	require.Eventually(t, func() bool { return b.stored(t) == nil }, 5*time.Second, 10*time.Millisecond, "closing is stored at once")
	pending, _, _, err := b.box.List(false)
	require.NoError(t, err)
	var final *uploader.Record
	for _, e := range pending {
		if e.Record.Kind == uploader.KindFinal {
			final = &e.Record
		}
	}
	require.NotNil(t, final, "the bill committed with the close")
	assert.Equal(t, order, final.Order)
	assert.EqualValues(t, 50, final.QuantityWh)
}
