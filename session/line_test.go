package session_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
	"pilebridge/session"
	"pilebridge/uploader"
)

// One loop polls a line's ports, each at its own interval, and every
// charging port's reading reaches the store: the rounds' shared commits
// keep no port's back.
func TestRunLinePollsEachPortAtItsInterval(t *testing.T) {
	t.Parallel()
	rig, bus, prof := ptyLine(t, 1, 2, 3)
	ports := map[string]uploader.Port{}
	for id := 1; id <= 3; id++ {
		ports[fmt.Sprintf("D%d/1", id)] = uploader.Port{DeviceNo: fmt.Sprintf("D%d", id), PortNo: "1", EnergyCode: "CN_AC"}
	}
	_, _, store := openStore(t, filepath.Join(t.TempDir(), "db"), session.BoltOptions(), ports)
	tr := flatTariff(t)
	intervals := []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 150 * time.Millisecond}
	var line []*session.Port
	for i, every := range intervals {
		m, err := session.NewMachine(session.FilledPortConfig(session.PortConfig{ProgressInterval: time.Hour}), tr, store.NextOrder, zerolog.Nop())
		require.NoError(t, err)
		line = append(line, &session.Port{Key: fmt.Sprintf("D%d/1", i+1), Machine: m,
			Poller: meter.NewPoller(bus, uint8(i+1), prof, meter.Ratios{}), Interval: every})
	}
	var observed [3]atomic.Int64
	run := session.NewRunner(store, session.Clock{}, func(port string, _ session.PortState, _ *session.Session, _ meter.Reading, _ error) {
		var i int
		fmt.Sscanf(port, "D%d/1", &i)
		observed[i-1].Add(1)
	}, zerolog.Nop())
	for id := uint8(1); id <= 3; id++ {
		require.NoError(t, rig.Piles[id].Update(func(r *meter.Reading) { r.Status = meter.StatusCharging; r.SetEnergyMWh(1_000_000) }))
	}
	lctx, lcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); run.RunLine(lctx, line) }()
	t.Cleanup(func() { lcancel(); <-done })

	// every port's session opens and each reading is stored
	require.Eventually(t, func() bool { open, _ := store.Open(); return len(open) == 3 }, 5*time.Second, 10*time.Millisecond)
	for id := uint8(1); id <= 3; id++ {
		require.NoError(t, rig.Piles[id].Update(func(r *meter.Reading) { r.SetEnergyMWh(1_000_000 + 1000*int64(id)) }))
	}
	require.Eventually(t, func() bool {
		open, _ := store.Open()
		for id := 1; id <= 3; id++ {
			s := open[fmt.Sprintf("D%d/1", id)]
			if s == nil || s.QuantityWh() != int64(id) {
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond)

	// polls counted over a window of 1.5 s: 30, 30 and 10 intervals
	before := [3]int64{observed[0].Load(), observed[1].Load(), observed[2].Load()}
	time.Sleep(1500 * time.Millisecond)
	for i, every := range intervals {
		want := float64(1500*time.Millisecond) / float64(every)
		got := float64(observed[i].Load() - before[i])
		assert.InDelta(t, want, got, want*0.25+1, "port %d at %s: %v polls in 1.5 s, want about %v", i+1, every, got, want)
	}
}

// A round's writes go to the disk together; one the store refuses (a port
// the outbox does not know) fails alone and keeps the others' from no one.
func TestCommitAllFailsOnlyTheRefusedWrite(t *testing.T) {
	t.Parallel()
	ports := map[string]uploader.Port{
		"A/1": {DeviceNo: "A", PortNo: "1", EnergyCode: "CN_AC"},
		"C/1": {DeviceNo: "C", PortNo: "1", EnergyCode: "CN_AC"},
	}
	_, box, st := openStore(t, filepath.Join(t.TempDir(), "db"), session.BoltOptions(), ports)
	now := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	sess := func(order string, wh int64) *session.Session {
		s := &session.Session{Order: order, State: session.Charging, StartTime: now, OpenedAt: now, Charged: true,
			Periods: map[string]*session.Billed{}}
		s.Energy.BaseMWh, s.Energy.LastMWh, s.Energy.CountedMWh = 5_000_000, 5_000_000+wh*1000, wh*1000
		return s
	}
	progress := func(order string, wh int64) []session.Event {
		return []session.Event{{Kind: session.EventProgress, Order: order, Seq: 1, Start: now, End: now, QuantityWh: wh}}
	}
	ws := []session.Write{
		{Port: "A/1", Sess: sess("OA", 10), Recs: progress("OA", 10)},
		{Port: "B/1", Sess: sess("OB", 20), Recs: progress("OB", 20)}, // not configured: refused
		{Port: "C/1", Sess: sess("OC", 30)},
	}
	errs := make([]error, len(ws))
	st.CommitAll(ws, errs)
	assert.NoError(t, errs[0])
	require.Error(t, errs[1])
	assert.Contains(t, errs[1].Error(), "B/1")
	assert.NoError(t, errs[2])

	open, err := st.Open()
	require.NoError(t, err)
	assert.Len(t, open, 2)
	assert.EqualValues(t, 10, open["A/1"].QuantityWh())
	assert.EqualValues(t, 30, open["C/1"].QuantityWh())
	assert.Nil(t, open["B/1"], "nothing of the refused write is stored")
	pending, _, _, err := box.List(false)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	assert.Equal(t, "OA", pending[0].Record.Order)
	h := st.Health()
	assert.Equal(t, 1, h.Unsaved, "the refused port is the one held in memory only")
	assert.False(t, h.UnsavedSince.IsZero())

	// the next round with the port fixed: everything stored, health clear
	ws[1] = session.Write{Port: "A/1", Sess: sess("OA", 11)}
	st.CommitAll(ws[:1], errs)
	st.CommitAll([]session.Write{{Port: "B/1", Sess: nil}, {Port: "C/1", Sess: sess("OC", 31)}}, errs)
	assert.NoError(t, errs[0])
	assert.NoError(t, errs[1])
	h = st.Health()
	assert.Zero(t, h.Unsaved)
	assert.NoError(t, h.LastErr)
	open, err = st.Open()
	require.NoError(t, err)
	assert.EqualValues(t, 31, open["C/1"].QuantityWh())
}
