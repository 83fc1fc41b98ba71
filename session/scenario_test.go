package session_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
	"pilebridge/session"
	"pilebridge/uploader"
)

// meterOnly is the daemon's default meter-only configuration.
func meterOnly(rated int64) session.PortConfig {
	return session.PortConfig{RatedPowerW: rated, StartPowerW: 500, StartFor: 30 * time.Second,
		StopPowerW: 100, StopFor: 2 * time.Minute, HoldPolls: 3}
}

// chargeMeter runs one meter-only session: idle, power for d at w (rising
// and falling between polls), idle again until the stop is decided. It
// returns the true energy before and after, and the instants of the edges.
func chargeMeter(r *rig, w int64, d time.Duration) (before, after int64, rise, fall time.Time) {
	r.run(20 * time.Second)
	r.poll = 400 * time.Millisecond // the edge falls between two 1 s polls
	r.run(400 * time.Millisecond)
	r.poll = time.Second
	before, rise = r.dev.truthMWh(), r.now
	r.dev.powerW = w
	r.run(d + 300*time.Millisecond)
	r.dev.powerW = 0
	after, fall = r.dev.truthMWh(), r.now
	r.run(3 * time.Minute)
	return before, after, rise, fall
}

// Issue 9, item 1: coarse registers are billed to their resolution at every
// power, never thrown away.
func TestScenarioCoarseRegisters(t *testing.T) {
	cases := []struct {
		profile string
		ratios  meter.Ratios
		shows   func(int64) int64
	}{
		{"adl400", meter.Ratios{}, stepShows(10_000)},               // 0.01 kWh
		{"adl400", meter.Ratios{CT: 10}, stepShows(100_000)},        // 0.1 kWh: ct 10
		{"abb-b23", meter.Ratios{}, stepShows(10_000)},              // 0.01 kWh, u64
		{"sdm630", meter.Ratios{}, float32KWhShows},                 // float32 kWh
		{"dtsu666", meter.Ratios{PT: 1, CT: 40}, float32KWhShows40}, // float32 kWh × CT 40
	}
	for _, c := range cases {
		for _, w := range []int64{3500, 7000, 22000} {
			t.Run(fmt.Sprintf("%s ct%d %dW", c.profile, c.ratios.CT, w), func(t *testing.T) {
				r := newRig(t, c.profile, c.ratios, meterOnly(max(7400, w)), nil) // the pile's own rating
				before, after, _, _ := chargeMeter(r, w, 10*time.Minute)
				fin, _ := r.records()
				require.Len(t, fin, 1)
				want := whOf(c.shows(after) - c.shows(before))
				assert.Equal(t, want, fin[0].QuantityWh, "truth %d → %d mWh", before, after)
				assert.Equal(t, uploader.StateFinished, fin[0].State)
				assert.Equal(t, fenOf(want, 10000), fin[0].EnergyFen)
				assert.Equal(t, fenOf(want, 5000), fin[0].ServiceFen)
			})
		}
	}
}

// dtsu666 with CT 40: the float holds primary kWh / 40.
func float32KWhShows40(mwh int64) int64 {
	f := float32(float64(mwh) / 40 / 1e6)
	return int64(math.Round(float64(f) * 40 * 1e6))
}

// Issue 9, item 1: a register that freezes for 5 s and then catches up is
// accepted whole.
func TestScenarioFrozenRegister(t *testing.T) {
	r := newRig(t, "ref-dc", meter.Ratios{}, session.PortConfig{RatedPowerW: 60000, HoldPolls: 3}, nil)
	r.set(meter.StatusStarting, 0)
	r.run(3 * time.Second)
	before := r.dev.truthMWh()
	r.set(meter.StatusCharging, 44000)
	r.run(30 * time.Second)
	r.dev.frozen, r.dev.frozenAt = true, r.dev.truthMWh()
	r.run(5 * time.Second)
	r.dev.frozen = false
	r.run(30 * time.Second)
	r.set(meter.StatusFinished, 0)
	after := r.dev.truthMWh()
	r.run(5 * time.Second)
	fin, _ := r.records()
	require.Len(t, fin, 1)
	assert.Equal(t, regWh(after, before), fin[0].QuantityWh)
}

// Issue 9, items 2 and 3: a meter-only session counts from the last reading
// before power rose and ends when power fell, within one poll.
func TestScenarioMeterOnlyEdges(t *testing.T) {
	for i, d := range []time.Duration{90 * time.Second, 7 * time.Minute, 23*time.Minute + 500*time.Millisecond, 61 * time.Minute} {
		t.Run(d.String(), func(t *testing.T) {
			r := newRig(t, "sdm120", meter.Ratios{}, meterOnly(7400), nil)
			before, after, rise, fall := chargeMeter(r, 7000-int64(i)*1000, d)
			fin, prog := r.records()
			require.Len(t, fin, 1)
			assert.Equal(t, whOf(float32KWhShows(after)-float32KWhShows(before)), fin[0].QuantityWh)
			assert.WithinDuration(t, rise, fin[0].StartTime, time.Second, "start at the rising edge")
			assert.WithinDuration(t, fall, fin[0].EndTime, time.Second, "end at the falling edge, not stop_for later")
			for _, p := range prog {
				assert.False(t, p.EndTime.After(fall.Add(time.Second)), "progress does not run on past the edge")
			}
		})
	}
}

// Back-to-back meter-only sessions each get their own order and bill.
func TestScenarioMeterOnlyConsecutive(t *testing.T) {
	r := newRig(t, "adl400", meter.Ratios{}, meterOnly(7400), nil)
	for i := 0; i < 3; i++ {
		before, after, _, _ := chargeMeter(r, 7000, 20*time.Minute)
		fin, _ := r.records()
		require.Len(t, fin, i+1)
		assert.Equal(t, whOf(stepShows(10_000)(after)-stepShows(10_000)(before)), fin[i].QuantityWh, "session %d", i)
	}
}

// pileSession runs a full pile session around f, which charges.
func pileSession(r *rig, charge func()) (before, after int64) {
	r.set(meter.StatusPlugged, 0)
	r.dev.vin = "LSVCH2B40NN000001"
	r.run(3 * time.Second)
	r.dev.count++
	r.set(meter.StatusStarting, 0)
	r.run(4 * time.Second)
	before = r.dev.truthMWh()
	charge()
	after = r.dev.truthMWh()
	return before, after
}

// regWh is what a whole-Wh register (the reference map's) shows between two
// true energies.
func regWh(after, before int64) int64 {
	shows := stepShows(1000)
	return whOf(shows(after) - shows(before))
}

func finish(r *rig) {
	r.set(meter.StatusFinished, 0)
	r.dev.stopCode = 1
	r.run(5 * time.Second)
	r.set(meter.StatusIdle, 0)
	r.dev.vin, r.dev.stopCode = "", 0
	r.run(5 * time.Second)
}

func pileCfg() session.PortConfig {
	return session.PortConfig{RatedPowerW: 7400, HoldPolls: 3, OfflineAfter: 30 * time.Second, OfflineClose: 6 * time.Hour}
}

// Issue 9, item 4: the pile finished while the bridge was down; the live
// reading still shows the session's energy and it is billed.
func TestScenarioRestartPileFinished(t *testing.T) {
	for _, downFor := range []time.Duration{10 * time.Second, 3 * time.Minute, 2 * time.Hour} {
		t.Run(downFor.String(), func(t *testing.T) {
			r := newRig(t, "ref-ac", meter.Ratios{}, pileCfg(), nil)
			before, after := pileSession(r, func() {
				r.set(meter.StatusCharging, 7000)
				r.run(5 * time.Minute)
				r.kill()
				r.down(20 * time.Second) // still charging, then it finishes
				r.set(meter.StatusFinished, 0)
				r.dev.stopCode = 1
				r.down(downFor)
			})
			restart := r.now
			r.start()
			r.run(10 * time.Second)
			fin, _ := r.records()
			require.Len(t, fin, 1)
			assert.Equal(t, regWh(after, before), fin[0].QuantityWh, "the live reading's energy is the session's")
			assert.False(t, fin[0].EndTime.After(restart.Add(time.Second)), "ends no later than the restart")
		})
	}
}

// Issue 9, item 5: the pile is silent for longer than offline_after after a
// restart; the session waits (offline_close) and resumes as one order.
func TestScenarioRestartPileSilent(t *testing.T) {
	r := newRig(t, "ref-ac", meter.Ratios{}, pileCfg(), nil)
	before, after := pileSession(r, func() {
		r.set(meter.StatusCharging, 7000)
		r.run(2 * time.Minute)
		r.kill()
		r.down(15 * time.Second)
		r.start()
		r.dev.silent = true
		r.run(2 * time.Minute)
		r.dev.silent = false
		r.run(3 * time.Minute)
	})
	finish(r)
	fin, _ := r.records()
	require.Len(t, fin, 1, "one order")
	assert.Equal(t, regWh(after, before), fin[0].QuantityWh)
}

// Issue 9, item 6: a restart while the pile is starting keeps the order and
// sends no start failure.
func TestScenarioRestartWhileStarting(t *testing.T) {
	r := newRig(t, "ref-ac", meter.Ratios{}, pileCfg(), nil)
	r.set(meter.StatusPlugged, 0)
	r.run(3 * time.Second)
	r.dev.count++
	r.set(meter.StatusStarting, 0)
	r.run(3 * time.Second)
	r.kill()
	r.down(5 * time.Second)
	r.start()
	r.run(4 * time.Second)
	before := r.dev.truthMWh()
	r.set(meter.StatusCharging, 7000)
	r.run(10 * time.Minute)
	after := r.dev.truthMWh()
	finish(r)
	fin, _ := r.records()
	require.Len(t, fin, 1, "no start-failed record, no second order")
	assert.Equal(t, uploader.KindFinal, fin[0].Kind)
	assert.Equal(t, regWh(after, before), fin[0].QuantityWh)
}

// Issue 9, item 7: a session that ends and a new one that starts while the
// bridge is down get two orders; the old is billed to the last reading it
// can prove, the new from its first reading.
func TestScenarioNewSessionWhileDown(t *testing.T) {
	r := newRig(t, "ref-ac", meter.Ratios{}, pileCfg(), nil)
	var killedAt time.Time
	before1, _ := pileSession(r, func() {
		r.set(meter.StatusCharging, 7000)
		r.run(4 * time.Minute)
		killedAt = r.now
		r.kill()
		r.down(time.Minute)
	})
	r.set(meter.StatusFinished, 0)
	r.down(time.Minute)
	r.set(meter.StatusIdle, 0)
	r.down(time.Minute)
	r.dev.vin = "LSVCH2B40NN000002"
	r.dev.count++
	r.set(meter.StatusCharging, 3500)
	r.down(2 * time.Minute)
	r.start()
	r.run(5 * time.Minute)
	after2 := r.dev.truthMWh()
	finish(r)

	fin, _ := r.records()
	require.Len(t, fin, 2, "two orders")
	assert.NotEqual(t, fin[0].Order, fin[1].Order)
	proven := r.lastPollBefore(killedAt).truth
	assert.Equal(t, regWh(proven, before1), fin[0].QuantityWh, "the old order: what the stored readings prove")
	first2 := r.firstPollAfter(killedAt).truth
	assert.Equal(t, regWh(after2, first2), fin[1].QuantityWh, "the new order: from its first reading")
	assert.Equal(t, "LSVCH2B40NN000002", fin[1].VIN)
}

// Issue 9, item 8: a session across a daylight-saving change bills, with the
// periods taken from the wall clock.
func TestScenarioDaylightSaving(t *testing.T) {
	tr, err := session.NewTariff("America/New_York", []session.PeriodSpec{
		{Start: "00:00", End: "03:00", Type: "valley", Electricity: "0.3", Service: "0"},
		{Start: "03:00", End: "24:00", Type: "peak", Electricity: "1.0", Service: "0"},
	})
	require.NoError(t, err)
	r := newRig(t, "ref-ac", meter.Ratios{}, pileCfg(), tr)
	r.now = time.Date(2026, 3, 8, 1, 50, 0, 0, tr.Loc) // EST; 02:00 → 03:00 EDT
	var boundary int64
	before, after := pileSession(r, func() {
		r.set(meter.StatusCharging, 7000)
		for r.now.Before(time.Date(2026, 3, 8, 3, 0, 0, 0, tr.Loc)) {
			r.run(time.Second)
		}
		boundary = r.dev.truthMWh()
		r.run(15 * time.Minute)
	})
	finish(r)
	fin, _ := r.records()
	require.Len(t, fin, 1)
	wh := regWh(after, before)
	assert.Equal(t, wh, fin[0].QuantityWh)
	valley := regWh(boundary, before)
	// the split is by time between readings: within a Wh of the truth at the boundary
	lo, hi := fenOf(valley+1, 3000)+fenOf(wh-valley-1, 10000), fenOf(valley-1, 3000)+fenOf(wh-valley+1, 10000)
	assert.GreaterOrEqual(t, fin[0].EnergyFen, lo)
	assert.LessOrEqual(t, fin[0].EnergyFen, hi)
}

// Issue 9, item 9: no rated power is large enough to overflow the limit.
func TestScenarioHugeRatedPower(t *testing.T) {
	cfg := pileCfg()
	cfg.RatedPowerW = math.MaxInt64
	r := newRig(t, "ref-ac", meter.Ratios{}, cfg, nil)
	before, after := pileSession(r, func() {
		r.set(meter.StatusCharging, 7000)
		r.run(3 * time.Minute)
	})
	finish(r)
	fin, _ := r.records()
	require.Len(t, fin, 1)
	assert.Equal(t, regWh(after, before), fin[0].QuantityWh)
}

// Issue 9, item 10: a float register is differenced at its own resolution
// and rounded once: never 1 Wh off its own delta.
func TestScenarioFloatRegisterRoundsOnce(t *testing.T) {
	for i := 0; i < 6; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			r := newRig(t, "sdm120", meter.Ratios{}, meterOnly(7400), nil)
			r.dev.baseMWh = 812_345_678 + int64(i)*333_333 // 812 kWh: float32 steps of 61 mWh
			before, after, _, _ := chargeMeter(r, 3300+int64(i)*500, time.Duration(2+i)*time.Minute+time.Duration(i)*137*time.Millisecond)
			fin, _ := r.records()
			require.Len(t, fin, 1)
			assert.Equal(t, whOf(float32KWhShows(after)-float32KWhShows(before)), fin[0].QuantityWh)
		})
	}
}

// Already passing before v2, kept: a plain pile session and a short comm loss.
func TestScenarioPlainSessionAndCommLoss(t *testing.T) {
	r := newRig(t, "ref-ac", meter.Ratios{}, pileCfg(), nil)
	before, after := pileSession(r, func() {
		r.set(meter.StatusCharging, 7000)
		r.run(4 * time.Minute)
		r.dev.silent = true
		r.run(90 * time.Second)
		r.dev.silent = false
		r.run(4 * time.Minute)
	})
	finish(r)
	fin, prog := r.records()
	require.Len(t, fin, 1)
	assert.Equal(t, regWh(after, before), fin[0].QuantityWh)
	assert.Equal(t, "SOC已充满", fin[0].StateDesc)
	assert.Equal(t, "LSVCH2B40NN000001", fin[0].VIN)
	assert.Contains(t, prog, fin[0].Order)
}
