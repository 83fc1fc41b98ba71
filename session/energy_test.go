package session

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var e0 = time.Date(2026, 3, 14, 4, 0, 0, 0, time.UTC)

func sec(n int) time.Time { return e0.Add(time.Duration(n) * time.Second) }

// A coarse register moves one step every many seconds: each step is energy,
// however long the register sat still before it.
func TestCoarseRegisterStepsAreCounted(t *testing.T) {
	l := Limits{RatedPowerW: 7000, HoldPolls: 3}
	// 0.01 kWh steps (10 Wh) at 3.5 kW: one step every ~10.3 s
	var e Energy
	e.Start(1_230_000, 10_000, sec(0))
	truth := int64(0) // mWh delivered, at 3.5 kW = 972.2 mWh/s
	for s := 1; s <= 600; s++ {
		truth = int64(s) * 3500 * 1000 / 3600
		reg := (1_230_000 + truth) / 10_000 * 10_000
		st := e.Observe(l, reg, 10_000, sec(s))
		require.NotEqual(t, Held, st.Outcome, "second %d", s)
	}
	want := (1_230_000+truth)/10_000*10_000 - 1_230_000
	assert.Equal(t, want, e.CountedMWh, "every step the register showed")
}

// A 0.1 kWh step (adl400 with ct 10) at 22 kW: a step every 16 s, and with
// rated power 22 kW a single step is larger than a second's worth.
func TestTenthKWhStepAt22kW(t *testing.T) {
	l := Limits{RatedPowerW: 22000, HoldPolls: 3}
	var e Energy
	e.Start(0, 100_000, sec(0))
	for s := 1; s <= 120; s++ {
		reg := int64(s) * 22000 * 1000 / 3600 / 100_000 * 100_000
		e.Observe(l, reg, 100_000, sec(s))
	}
	assert.EqualValues(t, 700_000, e.CountedMWh) // 733 Wh delivered; the register shows 700
}

// A register frozen for a while then catching up, consistently with rated
// power, is accepted whole (a 44 kW DC session: 85 Wh over 7 s).
func TestFrozenRegisterCatchesUp(t *testing.T) {
	l := Limits{RatedPowerW: 60000, HoldPolls: 3}
	var e Energy
	e.Start(1_000_000, 1000, sec(0))
	truth := func(s int) int64 { return 1_000_000 + int64(s)*44000*1000/3600/1000*1000 }
	e.Observe(l, truth(1), 1000, sec(1))
	for s := 2; s <= 6; s++ { // frozen 5 s
		assert.Equal(t, Unchanged, e.Observe(l, truth(1), 1000, sec(s)).Outcome)
	}
	st := e.Observe(l, truth(7), 1000, sec(7))
	assert.Equal(t, Increased, st.Outcome)
	assert.EqualValues(t, 85_000, e.CountedMWh)
}

// A spike is dropped; a persisting jump is a new register, counted from its
// first reading and reported as a reset, never dropped silently.
func TestResetAndSpike(t *testing.T) {
	l := Limits{RatedPowerW: 7000, HoldPolls: 3}
	var e Energy
	e.Start(5_000_000, 1000, sec(0))
	e.Observe(l, 5_002_000, 1000, sec(1))
	assert.Equal(t, Held, e.Observe(l, 9_000_000_000, 1000, sec(2)).Outcome)
	assert.Equal(t, Increased, e.Observe(l, 5_004_000, 1000, sec(3)).Outcome)
	assert.Nil(t, e.Hold)
	// meter swapped: reads 3, 4, 5 Wh
	assert.Equal(t, Held, e.Observe(l, 3000, 1000, sec(4)).Outcome)
	assert.Equal(t, Held, e.Observe(l, 4000, 1000, sec(5)).Outcome)
	st := e.Observe(l, 5000, 1000, sec(6))
	assert.Equal(t, Reset, st.Outcome)
	assert.EqualValues(t, 2000, st.DeltaMWh)
	assert.EqualValues(t, 5_004_000, st.LostFrom)
	assert.EqualValues(t, 3000, st.LostTo)
	assert.EqualValues(t, 6000, e.CountedMWh)
	assert.Equal(t, 1, e.Resets)
}

func TestFloatJitterIsNotADecrease(t *testing.T) {
	var e Energy
	e.Start(8_192_500_000, 1000, sec(0)) // float32 kWh past 8192 kWh: 1 Wh ULP
	st := e.Observe(Limits{HoldPolls: 3}, 8_192_499_000, 1000, sec(1))
	assert.Equal(t, Unchanged, st.Outcome)
	assert.Nil(t, e.Hold)
}

func TestRollover(t *testing.T) {
	l := Limits{RatedPowerW: 7000, HoldPolls: 3, WrapMWh: 1 << 32 * 1000}
	var e Energy
	e.Start((1<<32-3)*1000, 1000, sec(0))
	st := e.Observe(l, 2000, 1000, sec(3))
	assert.Equal(t, Increased, st.Outcome)
	assert.EqualValues(t, 5000, e.CountedMWh)
}

func TestLimitNeverOverflows(t *testing.T) {
	var e Energy
	e.Start(0, 1, sec(0))
	lim := e.limitMWh(Limits{RatedPowerW: 1<<63 - 1}, sec(0), e0.Add(200*365*24*time.Hour), 1)
	assert.Greater(t, lim, int64(0))
}

// Property: for any monotone register of any step and any poll pattern
// (including long silences) with power within the rated power, the counted
// energy is exactly the register's rise.
func TestPropertyMonotoneRegisterCountedExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	steps := []int64{1, 10, 100, 1000, 10_000, 100_000, 1_000_000}
	for i := 0; i < 2000; i++ {
		rated := []int64{3500, 7000, 22000, 120000}[rng.IntN(4)]
		step := steps[rng.IntN(len(steps))]
		l := Limits{RatedPowerW: rated, HoldPolls: 1 + rng.IntN(4)}
		var e Energy
		truth := rng.Int64N(1_000_000_000)
		reg := func() int64 { return truth / step * step }
		e.Start(reg(), step, sec(0))
		first := reg()
		at := 0
		for n := 0; n < 200; n++ {
			dt := 1 + rng.IntN(5)
			if rng.IntN(20) == 0 {
				dt = 60 + rng.IntN(600) // a silence
			}
			power := rng.Int64N(rated + 1)
			at += dt
			truth += power * int64(dt) * 1000 / 3600
			st := e.Observe(l, reg(), step, sec(at))
			require.NotEqual(t, Reset, st.Outcome, "case %d: a truthful register is never a reset", i)
		}
		require.Equal(t, reg()-first, e.CountedMWh, "case %d (step %d, rated %d)", i, step, rated)
	}
}
