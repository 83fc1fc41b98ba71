package session_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
)

// A meter swapped mid-session: the bill's evidence shows the start and end
// readings and the gap across the swap, and the figures add up to the
// quantity; the truth (what both meters counted) is the test's own.
func TestEvidenceOfAMeterSwap(t *testing.T) {
	r := newRig(t, "ref-ac", meter.Ratios{}, pileCfg(), nil)
	var first, second int64
	before, _ := pileSession(r, func() {
		r.set(meter.StatusCharging, 7000)
		a := r.dev.truthMWh()
		r.run(3 * time.Minute)
		first = r.dev.truthMWh() - a
		r.dev.resetTo(500_000) // a new meter reading 500 Wh
		b := r.dev.truthMWh()
		r.run(4 * time.Minute)
		second = r.dev.truthMWh() - b
	})
	finish(r)
	fin, _ := r.records()
	require.Len(t, fin, 1)
	ev := fin[0].Evidence
	require.NotNil(t, ev)
	require.Len(t, ev.Gaps, 1, "one swap")
	assert.Equal(t, 1, ev.Resets)
	assert.True(t, ev.Gaps[0].NewMWh >= 500_000 && ev.Gaps[0].NewMWh <= 500_000+2*7000*1000/3600,
		"the new meter's first reading, a poll after the swap: %d", ev.Gaps[0].NewMWh)
	// what the two meters counted, less what fell between the last
	// reading of the old and the first of the new (a poll or two at 7 kW)
	truth := first + second
	assert.InDelta(t, truth, ev.ComputedMWh(), float64(4*7000*1000/3600), "the readings' delta is what the meters counted, but for the swap's gap")
	assert.Equal(t, fin[0].QuantityWh, (ev.ComputedMWh()+500)/1000)
	assert.Equal(t, before-before%1000, ev.StartMWh, "the register (whole Wh) at the session's start")
	assert.Equal(t, int64(1000), ev.ResMWh, "the reference map's register is whole Wh")
	var periodWh int64
	for _, p := range ev.Periods {
		periodWh += p.Wh
	}
	assert.Equal(t, fin[0].QuantityWh, periodWh, "the periods' Wh add up to the quantity")
	assert.Positive(t, r.evidenced)
}
