package session

import (
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
		_, err := NewTariff("", specs)
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
	assert.EqualValues(t, 500, parts[0].Wh)
	assert.Equal(t, "peak", parts[1].Period.Type)
	assert.EqualValues(t, 501, parts[1].Wh, "parts sum exactly")
	// 21:00 -> 09:00 next day: 1 h peak, 10 h valley (over midnight), 1 h flat
	parts = tr.Split(cst(21, 0), cst(21, 0).Add(12*time.Hour), 1200)
	got := map[string]int64{}
	for _, p := range parts {
		got[p.Period.Type] += p.Wh
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
	m := newTestMachine(t, tr, PortConfig{})
	m.sess = &Session{Periods: map[string]*Billed{}}
	start := cst(21, 0)
	for i := 0; i < 12; i++ { // hourly readings of 1000 Wh
		m.attribute(start.Add(time.Duration(i)*time.Hour), start.Add(time.Duration(i+1)*time.Hour), 1000)
	}
	e, s := m.sess.Fees()
	// peak 1 kWh × 1.05 + valley 10 kWh × 0.31 + flat 1 kWh × 0.65 = 1.05 + 3.10 + 0.65 = 4.80 yuan
	assert.EqualValues(t, 480, e)
	// 1 × 0.8 + 10 × 0.4 + 1 × 0.6 = 5.40 yuan
	assert.EqualValues(t, 540, s)
	assert.EqualValues(t, 12000, m.sess.Quantity)
}

func TestFeesRoundHalfUpOnce(t *testing.T) {
	tr := demoTariff(t)
	m := newTestMachine(t, tr, PortConfig{})
	m.sess = &Session{Periods: map[string]*Billed{}}
	// 17:00-19:00 sharp at 1.2523: 3 Wh × 1.2523 = 0.0037569 yuan = 0.37569 fen;
	// ten such readings: 4 fen (3.7569 rounded once), not 10 × round(0.37569) = 0
	for i := 0; i < 10; i++ {
		m.attribute(cst(17, i), cst(17, i+1), 3)
	}
	e, _ := m.sess.Fees()
	assert.EqualValues(t, 4, e)
	assert.EqualValues(t, 1, Fen(50_000), "half a fen rounds up")
	assert.EqualValues(t, 0, Fen(49_999))
}
