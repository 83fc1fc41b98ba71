package session

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func demoTariff(t *testing.T) *Tariff {
	tr, err := NewTariff("Asia/Shanghai", []PeriodSpec{
		{Start: "22:00", End: "08:00", Type: "valley", Electricity: "0.31", Service: "0.4"},
		{Start: "08:00", End: "10:00", Type: "flat", Electricity: "0.65", Service: "0.6"},
		{Start: "10:00", End: "17:00", Type: "peak", Electricity: "1.05", Service: "0.8"},
		{Start: "17:00", End: "19:00", Type: "sharp", Electricity: "1.2523", Service: "0.8"},
		{Start: "19:00", End: "22:00", Type: "peak", Electricity: "1.05", Service: "0.8"},
	})
	require.NoError(t, err)
	return tr
}

func cst(h, m int) time.Time {
	return time.Date(2026, 3, 14, h, m, 0, 0, time.FixedZone("CST", 8*3600))
}

func TestParsePrice(t *testing.T) {
	for in, want := range map[string]Price{"0.8523": 8523, "1": 10000, "0.3": 3000, "12.05": 120500, "0": 0} {
		got, err := ParsePrice(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"0.12345", "-1", "abc", "", "1.2.3"} {
		_, err := ParsePrice(bad)
		assert.Error(t, err, bad)
	}
}

func TestTariffValidation(t *testing.T) {
	cases := map[string][]PeriodSpec{
		"not covered":    {{Start: "00:00", End: "12:00", Type: "flat", Electricity: "1", Service: "1"}},
		"covered twice":  {{Start: "00:00", End: "13:00", Type: "flat", Electricity: "1", Service: "1"}, {Start: "12:00", End: "24:00", Type: "peak", Electricity: "1", Service: "1"}},
		"want HH:MM":     {{Start: "0:0:0", End: "24:00", Type: "flat", Electricity: "1", Service: "1"}},
		"type \"cheap\"": {{Start: "00:00", End: "24:00", Type: "cheap", Electricity: "1", Service: "1"}},
		"4 decimals":     {{Start: "00:00", End: "24:00", Type: "flat", Electricity: "1.00001", Service: "1"}},
	}
	for want, specs := range cases {
		_, err := NewTariff("Asia/Shanghai", specs)
		require.Error(t, err, want)
		assert.Contains(t, err.Error(), want)
	}
	_, err := NewTariff("Mars/Olympus", []PeriodSpec{{Start: "00:00", End: "24:00", Type: "flat", Electricity: "1", Service: "1"}})
	assert.ErrorContains(t, err, "time_zone")
}

func TestSplitAcrossBoundariesAndMidnight(t *testing.T) {
	tr := demoTariff(t)
	// 09:30 -> 10:30 local: half flat, half peak
	parts := tr.Split(cst(9, 30), cst(10, 30), 1001)
	require.Len(t, parts, 2)
	assert.Equal(t, "flat", parts[0].Period.Type)
	assert.EqualValues(t, 500, parts[0].Amount)
	assert.Equal(t, "peak", parts[1].Period.Type)
	assert.EqualValues(t, 501, parts[1].Amount, "parts sum exactly")
	// 21:00 -> 09:00 next day: 1 h peak, 10 h valley (over midnight), 1 h flat
	parts = tr.Split(cst(21, 0), cst(21, 0).Add(12*time.Hour), 1200)
	got := map[string]int64{}
	for _, p := range parts {
		got[p.Period.Type] += p.Amount
	}
	assert.Equal(t, map[string]int64{"peak": 100, "valley": 1000, "flat": 100}, got)
	// a reading inside one period
	parts = tr.Split(cst(12, 0), cst(12, 1), 7)
	require.Len(t, parts, 1)
	assert.Equal(t, "peak", parts[0].Period.Type)
}

// Fees against hand-computed fen: a 21:00-09:00 session of 12 kWh, evenly drawn.
func TestFeesHandComputed(t *testing.T) {
	tr := demoTariff(t)
	periods := map[string]*Billed{}
	start := cst(21, 0)
	for i := 0; i < 12; i++ { // hourly readings of 1000 Wh
		book(periods, tr, start.Add(time.Duration(i)*time.Hour), start.Add(time.Duration(i+1)*time.Hour), 1000_000)
	}
	b := BuildBill(periods)
	e, s := b.EnergyFen, b.ServiceFen
	// peak 1 kWh × 1.05 + valley 10 kWh × 0.31 + flat 1 kWh × 0.65 = 1.05 + 3.10 + 0.65 = 4.80 yuan
	assert.EqualValues(t, 480, e)
	// 1 × 0.8 + 10 × 0.4 + 1 × 0.6 = 5.40 yuan
	assert.EqualValues(t, 540, s)
	assert.EqualValues(t, 12000, b.QuantityWh)
}

func TestFeesRoundHalfUpOnce(t *testing.T) {
	tr := demoTariff(t)
	periods := map[string]*Billed{}
	// 17:00-19:00 sharp at 1.2523: 3 Wh × 1.2523 = 0.0037569 yuan = 0.37569 fen;
	// ten such readings: 4 fen (3.7569 rounded once), not 10 × round(0.37569) = 0
	for i := 0; i < 10; i++ {
		book(periods, tr, cst(17, i), cst(17, i+1), 3000)
	}
	e := BuildBill(periods).EnergyFen
	assert.EqualValues(t, 4, e)
	assert.EqualValues(t, 1, Fen(50_000), "half a fen rounds up")
	assert.EqualValues(t, 0, Fen(49_999))
}

// The wall clock decides the period, across daylight-saving changes; the
// split always ends (America/New_York springs forward at 02:00 on
// 2026-03-08: 03:05 EDT is 07:05 UTC).
func TestSplitDaylightSaving(t *testing.T) {
	tr, err := NewTariff("America/New_York", []PeriodSpec{
		{Start: "00:00", End: "03:00", Type: "valley", Electricity: "0.3", Service: "0"},
		{Start: "03:00", End: "24:00", Type: "peak", Electricity: "1", Service: "0"},
	})
	require.NoError(t, err)
	ny := tr.Loc
	done := make(chan []Part, 1)
	go func() {
		done <- tr.Split(time.Date(2026, 3, 8, 3, 5, 0, 0, ny), time.Date(2026, 3, 8, 3, 15, 0, 0, ny), 1000)
	}()
	select {
	case parts := <-done:
		require.Len(t, parts, 1)
		assert.Equal(t, "peak", parts[0].Period.Type)
		assert.EqualValues(t, 1000, parts[0].Amount)
	case <-time.After(5 * time.Second):
		t.Fatal("Split did not return")
	}
	// 01:30 EST → 03:30 EDT is one hour of elapsed time: 30 min valley, 30 min peak
	parts := tr.Split(time.Date(2026, 3, 8, 1, 30, 0, 0, ny), time.Date(2026, 3, 8, 3, 30, 0, 0, ny), 1000)
	require.Len(t, parts, 2)
	assert.EqualValues(t, 500, parts[0].Amount)
	assert.EqualValues(t, 500, parts[1].Amount)
	// the repeated hour in November: 00:30 EDT → 03:30 EST is 4 h, 3.5 h of it before 03:00 wall
	parts = tr.Split(time.Date(2026, 11, 1, 0, 30, 0, 0, ny), time.Date(2026, 11, 1, 3, 30, 0, 0, ny), 800)
	require.Len(t, parts, 2)
	assert.EqualValues(t, 700, parts[0].Amount)
	assert.EqualValues(t, 100, parts[1].Amount)
}

// Property: in any zone (30-minute DST shifts included), over any interval,
// the split ends, its parts sum to the amount, and each period's share is
// the share of seconds whose wall-clock minute falls in it (±1 for rounding).
func TestPropertySplitMatchesWallClockSeconds(t *testing.T) {
	zones := []string{"Asia/Shanghai", "America/New_York", "Australia/Lord_Howe", "Europe/London", "Asia/Kathmandu", "Pacific/Chatham"}
	dates := []time.Time{
		time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 4, 5, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 4, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 9, 27, 0, 0, 0, 0, time.UTC),
	}
	rng := rand.New(rand.NewPCG(7, 9))
	for i := 0; i < 300; i++ {
		zone := zones[rng.IntN(len(zones))]
		// random cut points on the half hour
		var cuts []int
		for m := 30; m < 1440; m += 30 {
			if rng.IntN(6) == 0 {
				cuts = append(cuts, m)
			}
		}
		cuts = append([]int{0}, append(cuts, 1440)...)
		var specs []PeriodSpec
		for k := 0; k+1 < len(cuts); k++ {
			specs = append(specs, PeriodSpec{Start: clock(cuts[k]), End: clock(cuts[k+1] % 1440), Type: []string{"valley", "flat", "peak", "sharp"}[k%4], Electricity: "1", Service: "1"})
		}
		tr, err := NewTariff(zone, specs)
		require.NoError(t, err, "case %d", i)
		from := dates[rng.IntN(len(dates))].Add(time.Duration(rng.IntN(48*3600)) * time.Second)
		to := from.Add(time.Duration(1+rng.IntN(6*3600)) * time.Second)
		amount := 1 + rng.Int64N(1_000_000)
		parts := tr.Split(from, to, amount)
		got, sum := map[string]int64{}, int64(0)
		for _, p := range parts {
			got[p.Period.Key()] += p.Amount
			sum += p.Amount
		}
		require.Equal(t, amount, sum, "case %d", i)
		secs, total := map[string]int64{}, int64(0)
		for at := from; at.Before(to); at = at.Add(time.Second) {
			lt := at.In(tr.Loc)
			secs[tr.find(lt.Hour()*60+lt.Minute()).Key()]++
			total++
		}
		for k, n := range secs {
			want := amount * n / total
			assert.InDelta(t, want, got[k], 1.5, "case %d zone %s %s→%s period %s", i, zone, from, to, k)
		}
	}
}

// Property: the bill's period Wh sum to the rounded total, and fees are the
// priced Wh rounded once.
func TestPropertyBillRoundsOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 5000; i++ {
		periods := map[string]*Billed{}
		var total int64
		var el, sv []int64
		for k := 0; k < 1+rng.IntN(5); k++ {
			mwh := rng.Int64N(50_000_000)
			p := &Billed{Type: "flat", MWh: mwh, Electricity: Price(rng.Int64N(30000)), Service: Price(rng.Int64N(10000))}
			periods[fmt.Sprintf("p%d", k)] = p
			total += mwh
			el, sv = append(el, int64(p.Electricity)), append(sv, int64(p.Service))
		}
		b := BuildBill(periods)
		require.Equal(t, (total+500)/1000, b.QuantityWh, "case %d", i)
		var sum, e, v int64
		for k, p := range b.Periods {
			sum += p.Wh
			e += p.Wh * el[k]
			v += p.Wh * sv[k]
		}
		require.Equal(t, b.QuantityWh, sum)
		require.Equal(t, (e+50_000)/100_000, b.EnergyFen)
		require.Equal(t, (v+50_000)/100_000, b.ServiceFen)
		ef, sf := (&Session{Periods: periods}).Fees()
		require.Equal(t, (e+50_000)/100_000, ef, "case %d: the fees the status board shows", i)
		require.Equal(t, (v+50_000)/100_000, sf, "case %d: the fees the status board shows", i)
	}
}

// The status board asks for a session's fees on every poll of every port:
// that costs no allocation.
func TestFeesAllocateNothing(t *testing.T) {
	s := &Session{Periods: map[string]*Billed{
		"a": {Type: "valley", MWh: 1_234_567, Electricity: 3123, Service: 4000},
		"b": {Type: "peak", MWh: 7_654_321, Electricity: 10511, Service: 8000},
		"c": {Type: "flat", MWh: 999, Electricity: 6500, Service: 6000},
	}}
	assert.Zero(t, testing.AllocsPerRun(100, func() { s.Fees() }))
}

// A period's key is type@hh:mm of its start, for every minute of the day:
// stored sessions name their periods by it.
func TestPeriodKeyEveryMinute(t *testing.T) {
	for _, typ := range []string{"sharp", "peak", "flat", "valley"} {
		for start := 0; start < 1440; start++ {
			p := Period{Start: start, End: 1440, Type: typ}
			want := fmt.Sprintf("%s@%02d:%02d", typ, start/60, start%60)
			if got := p.Key(); got != want {
				t.Fatalf("Key of %s at minute %d: %q, want %q", typ, start, got, want)
			}
		}
	}
}
