package session

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
)

func flat(t *testing.T) *Tariff {
	tr, err := NewTariff("Asia/Shanghai", []PeriodSpec{{Start: "00:00", End: "24:00", Type: "flat", Electricity: "1.0", Service: "0.5"}})
	require.NoError(t, err)
	return tr
}

// orderSeq numbers orders across the machines of a test, as the store's
// counter does across restarts.
var orderSeq atomic.Int64

func newTestMachine(t *testing.T, tr *Tariff, cfg PortConfig) *Machine {
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = 10 * time.Second
	}
	return mustMachine(t, cfg, tr, func(time.Time) string { return fmt.Sprintf("ORD%03d", orderSeq.Add(1)) })
}

// closed is the terminal events fed so far.
func (f *feed) closed() []Event {
	var out []Event
	for _, e := range f.recs {
		if e.Terminal() {
			out = append(out, e)
		}
	}
	return out
}

// feed drives a machine with one reading per second from t0.
type feed struct {
	t    *testing.T
	m    *Machine
	now  time.Time
	recs []Event
}

var t0 = time.Date(2026, 3, 14, 4, 0, 0, 0, time.UTC) // 12:00 in Shanghai

func newFeed(t *testing.T, cfg PortConfig) *feed {
	return &feed{t: t, m: newTestMachine(t, flat(t), cfg), now: t0}
}

// whReading is a reading of a 1 Wh register.
func whReading(wh int64) meter.Reading {
	r := meter.Reading{HasEnergy: true, EnergyResMWh: 1000}
	r.SetEnergyMWh(wh * 1000)
	return r
}

func (f *feed) step(st meter.Status, wh, w int64) []Event {
	f.now = f.now.Add(time.Second)
	r := whReading(wh)
	r.Time, r.PowerW, r.HasPower, r.Status, r.HasStatus = f.now, w, true, st, st != meter.StatusUnknown
	recs, _ := f.m.Step(r, nil, f.now)
	f.recs = append(f.recs, recs...)
	return recs
}

func (f *feed) with(r meter.Reading) []Event {
	f.now = f.now.Add(time.Second)
	r.SetEnergyMWh(r.EnergyWh * 1000)
	r.Time, r.HasEnergy, r.HasStatus, r.EnergyResMWh = f.now, true, true, 1000
	recs, _ := f.m.Step(r, nil, f.now)
	f.recs = append(f.recs, recs...)
	return recs
}

func (f *feed) fail(d time.Duration) []Event {
	f.now = f.now.Add(d)
	recs, _ := f.m.Step(meter.Reading{}, fmt.Errorf("timeout"), f.now)
	f.recs = append(f.recs, recs...)
	return recs
}

func (f *feed) final() Event {
	f.t.Helper()
	require.NotEmpty(f.t, f.recs)
	last := f.recs[len(f.recs)-1]
	require.True(f.t, last.Terminal(), "last event is %s", last.Kind)
	return last
}

func (f *feed) charge(from, perSec int64, secs int) int64 {
	e := from
	for i := 0; i < secs; i++ {
		e += perSec
		f.step(meter.StatusCharging, e, perSec*3600)
	}
	return e
}

func TestNormalSession(t *testing.T) {
	f := newFeed(t, PortConfig{})
	f.step(meter.StatusIdle, 1000, 0)
	f.step(meter.StatusPlugged, 1000, 0)
	f.step(meter.StatusStarting, 1000, 0)
	assert.Equal(t, Starting, f.m.State())
	first := f.step(meter.StatusCharging, 1000, 7000)
	require.Len(t, first, 1, "progress when charging begins")
	assert.Equal(t, EventProgress, first[0].Kind)
	e := f.charge(1000, 2, 25)
	f.with(meter.Reading{Status: meter.StatusFinished, EnergyWh: e, StopReason: "SOC已充满", SOC: 100, HasSOC: true})
	bill := f.final()
	assert.Equal(t, EventClosed, bill.Kind)
	assert.Equal(t, ReasonCompleted, bill.Reason)
	assert.EqualValues(t, 50, bill.QuantityWh)
	assert.Equal(t, "SOC已充满", bill.Detail)
	assert.Equal(t, t0.Add(3*time.Second), bill.Start, "start is when the pile began starting")
	assert.Equal(t, f.now, bill.End)
	assert.EqualValues(t, 5, bill.EnergyFen)  // 50 Wh × 1.0 yuan/kWh = 5 fen
	assert.EqualValues(t, 3, bill.ServiceFen) // 2.5 fen rounds up
	assert.True(t, bill.HasSOC)
	assert.Equal(t, 100, bill.SOC)
	for _, r := range f.recs {
		assert.Equal(t, bill.Order, r.Order, "one order for the whole session")
	}
	// progress every 10 s: at 0, 10, 20 s of charging
	assert.Len(t, f.recs, 4)
	assert.Nil(t, f.m.Session())
	assert.Equal(t, Finished, f.m.State())
}

func TestStartFailures(t *testing.T) {
	t.Run("pile reports it", func(t *testing.T) {
		f := newFeed(t, PortConfig{})
		f.step(meter.StatusStarting, 500, 0)
		f.with(meter.Reading{Status: meter.StatusStartFailed, EnergyWh: 500, StopReason: "车辆未响应"})
		r := f.final()
		assert.Equal(t, EventStartFailed, r.Kind)
		assert.Equal(t, "车辆未响应", r.Detail)
		assert.Zero(t, r.QuantityWh)
		assert.Len(t, f.recs, 1)
	})
	t.Run("charging never begins", func(t *testing.T) {
		f := newFeed(t, PortConfig{StartTimeout: 5 * time.Second})
		for i := 0; i < 10; i++ {
			f.step(meter.StatusStarting, 500, 0)
		}
		require.Len(t, f.recs, 1, "the pile stuck in starting fails once")
		assert.Equal(t, ReasonTimeout, f.recs[0].Reason)
	})
	t.Run("seen only as failed", func(t *testing.T) {
		f := newFeed(t, PortConfig{})
		f.step(meter.StatusIdle, 500, 0)
		f.with(meter.Reading{Status: meter.StatusStartFailed, EnergyWh: 500})
		assert.Equal(t, EventStartFailed, f.final().Kind)
		f.with(meter.Reading{Status: meter.StatusStartFailed, EnergyWh: 500})
		assert.Len(t, f.recs, 1, "one record per failure, not per poll")
		f.step(meter.StatusIdle, 500, 0)
		f.with(meter.Reading{Status: meter.StatusStartFailed, EnergyWh: 500})
		assert.Len(t, f.recs, 2, "a new failure after the pile recovered")
	})
	t.Run("energy counted while starting is billed, not dropped", func(t *testing.T) {
		f := newFeed(t, PortConfig{})
		f.step(meter.StatusStarting, 500, 0)
		f.step(meter.StatusStarting, 503, 0)
		f.with(meter.Reading{Status: meter.StatusStartFailed, EnergyWh: 503, StopReason: "绝缘检测失败"})
		r := f.final()
		assert.Equal(t, EventClosed, r.Kind)
		assert.Equal(t, ReasonAborted, r.Reason)
		assert.EqualValues(t, 3, r.QuantityWh)
	})
}

func TestFaultWhileCharging(t *testing.T) {
	f := newFeed(t, PortConfig{})
	f.step(meter.StatusCharging, 100, 7000)
	e := f.charge(100, 2, 5)
	f.with(meter.Reading{Status: meter.StatusFault, EnergyWh: e, FaultCode: 2, FaultText: "绝缘故障"})
	r := f.final()
	assert.Equal(t, ReasonFault, r.Reason)
	assert.True(t, r.Reason.Abnormal())
	assert.Equal(t, "绝缘故障", r.Detail)
	assert.EqualValues(t, 10, r.QuantityWh, "the energy delivered is still billed")
}

func TestUnplugWithoutFinished(t *testing.T) {
	f := newFeed(t, PortConfig{})
	f.step(meter.StatusCharging, 100, 7000)
	e := f.charge(100, 1, 3)
	f.step(meter.StatusIdle, e, 0)
	r := f.final()
	assert.Equal(t, ReasonUnplugged, r.Reason)
	assert.EqualValues(t, 3, r.QuantityWh)
}

func TestEnergyEdges(t *testing.T) {
	t.Run("momentary zero is held", func(t *testing.T) {
		f := newFeed(t, PortConfig{})
		f.step(meter.StatusCharging, 5000, 7000)
		f.step(meter.StatusCharging, 5002, 7000)
		f.step(meter.StatusCharging, 0, 7000)
		f.step(meter.StatusCharging, 5004, 7000)
		assert.EqualValues(t, 4, f.m.Session().QuantityWh())
	})
	t.Run("meter reset continues from the new register", func(t *testing.T) {
		f := newFeed(t, PortConfig{HoldPolls: 3})
		f.step(meter.StatusCharging, 5000, 7000)
		f.step(meter.StatusCharging, 5010, 7000)
		for _, e := range []int64{3, 4, 5} { // persists: reset
			f.step(meter.StatusCharging, e, 7000)
		}
		assert.EqualValues(t, 12, f.m.Session().QuantityWh(), "kept 10, then counted from the first new reading")
		assert.EqualValues(t, 1, f.m.MeterResets())
		f.step(meter.StatusCharging, 8, 7000)
		f.step(meter.StatusFinished, 9, 0)
		// 10 before the reset, then 3 -> 9 on the new register
		assert.EqualValues(t, 16, f.final().QuantityWh)
	})
	t.Run("u32 wrap", func(t *testing.T) {
		f := newFeed(t, PortConfig{WrapMWh: 1 << 32 * 1000})
		f.step(meter.StatusCharging, 1<<32-3, 7000)
		f.step(meter.StatusCharging, 1<<32-1, 7000)
		f.step(meter.StatusCharging, 2, 7000)
		assert.EqualValues(t, 5, f.m.Session().QuantityWh())
	})
	t.Run("implausible spike is ignored, a persisting new register is followed", func(t *testing.T) {
		f := newFeed(t, PortConfig{RatedPowerW: 7000})
		f.step(meter.StatusCharging, 1000, 7000)
		f.step(meter.StatusCharging, 1002, 7000)
		f.step(meter.StatusCharging, 901002, 7000) // 900 kWh in a second
		f.step(meter.StatusCharging, 1004, 7000)
		assert.EqualValues(t, 4, f.m.Session().QuantityWh())
		// a swapped meter that really reads higher is followed once it persists
		for _, e := range []int64{500000, 500002, 500004} {
			f.step(meter.StatusCharging, e, 7000)
		}
		assert.EqualValues(t, 8, f.m.Session().QuantityWh())
	})
	t.Run("energy never goes down in events", func(t *testing.T) {
		f := newFeed(t, PortConfig{ProgressInterval: time.Second})
		f.step(meter.StatusCharging, 1000, 7000)
		for _, e := range []int64{1001, 1003, 999, 1000, 1004, 0, 1006} {
			f.step(meter.StatusCharging, e, 7000)
		}
		last := int64(0)
		for _, r := range f.recs {
			assert.GreaterOrEqual(t, r.QuantityWh, last)
			last = r.QuantityWh
		}
		assert.EqualValues(t, 6, last)
	})
}

func TestCommLoss(t *testing.T) {
	t.Run("short loss mid-session resumes", func(t *testing.T) {
		f := newFeed(t, PortConfig{OfflineAfter: 10 * time.Second, RatedPowerW: 7000})
		f.step(meter.StatusCharging, 1000, 7000)
		f.fail(5 * time.Second)
		assert.Equal(t, Charging, f.m.State())
		f.fail(20 * time.Second)
		assert.Equal(t, Offline, f.m.State())
		require.NotNil(t, f.m.Session(), "session kept while offline")
		f.step(meter.StatusCharging, 1050, 7000) // 50 Wh in 26 s at 7 kW: plausible
		assert.EqualValues(t, 50, f.m.Session().QuantityWh())
		assert.Equal(t, Charging, f.m.State())
	})
	t.Run("long loss closes with the last reading", func(t *testing.T) {
		f := newFeed(t, PortConfig{OfflineAfter: 10 * time.Second, OfflineClose: time.Hour})
		f.step(meter.StatusCharging, 1000, 7000)
		f.step(meter.StatusCharging, 1020, 7000)
		lastAt := f.now
		f.fail(30 * time.Minute)
		assert.Empty(t, f.recs[1:])
		f.fail(31 * time.Minute)
		r := f.final()
		assert.Equal(t, ReasonCommLost, r.Reason)
		assert.EqualValues(t, 20, r.QuantityWh)
		assert.Equal(t, lastAt, r.End)
	})
}

// restored charges 10 Wh (1000 → 1010 over 5 s), then hands a copy of the
// session to a new machine a minute later, as a restart would.
func restored(t *testing.T, cfg PortConfig) (*feed, *Session) {
	f := newFeed(t, cfg)
	f.with(meter.Reading{Status: meter.StatusStarting, EnergyWh: 1000, SessionCount: 7, HasSessionCount: true, VIN: "LSVIN00000000001"})
	f.with(meter.Reading{Status: meter.StatusCharging, EnergyWh: 1000, SessionCount: 7, HasSessionCount: true})
	for e := int64(1002); e <= 1010; e += 2 {
		f.with(meter.Reading{Status: meter.StatusCharging, EnergyWh: e, SessionCount: 7, HasSessionCount: true})
	}
	s := *f.m.Session()
	f2 := newFeed(t, cfg)
	f2.now = f.now.Add(time.Minute)
	f2.m.Restore(&s)
	return f2, &s
}

func TestRecoveryAfterRestart(t *testing.T) {
	count := func(st meter.Status, wh, n int64) meter.Reading {
		return meter.Reading{Status: st, EnergyWh: wh, SessionCount: n, HasSessionCount: true}
	}
	t.Run("still charging: same order, nothing lost or doubled", func(t *testing.T) {
		f, s := restored(t, PortConfig{})
		f.with(count(meter.StatusCharging, 1100, 7))
		assert.Equal(t, s.Order, f.m.Session().Order)
		assert.EqualValues(t, 100, f.m.Session().QuantityWh())
		f.with(count(meter.StatusFinished, 1101, 7))
		assert.EqualValues(t, 101, f.final().QuantityWh)
		assert.Equal(t, s.Order, f.final().Order)
	})
	t.Run("pile finished meanwhile: closed with the live reading", func(t *testing.T) {
		f, s := restored(t, PortConfig{RatedPowerW: 7000})
		f.with(count(meter.StatusFinished, 1040, 7))
		r := f.final()
		assert.Equal(t, ReasonRecovered, r.Reason)
		assert.EqualValues(t, 40, r.QuantityWh, "the meter still shows the session's energy")
		assert.Equal(t, f.now, r.End, "the last increase the meter proves is at the restart")
		assert.Equal(t, s.Order, r.Order)
		assert.Len(t, f.recs, 1)
	})
	t.Run("pile idle, nothing more counted: ends at the last increase", func(t *testing.T) {
		f, s := restored(t, PortConfig{})
		f.with(count(meter.StatusIdle, 1010, 7))
		r := f.final()
		assert.EqualValues(t, 10, r.QuantityWh)
		assert.Equal(t, s.Energy.ChangedAt, r.End)
	})
	t.Run("meter not continuous: closed at the stored reading", func(t *testing.T) {
		f, s := restored(t, PortConfig{})
		f.with(count(meter.StatusIdle, 3, 7))
		r := f.final()
		assert.EqualValues(t, 10, r.QuantityWh)
		assert.Equal(t, s.Energy.ChangedAt, r.End)
	})
	t.Run("pile silent after restart: offline_close, not offline_after", func(t *testing.T) {
		f, s := restored(t, PortConfig{OfflineAfter: 5 * time.Second, OfflineClose: time.Hour})
		f.fail(time.Second)
		f.fail(10 * time.Minute)
		assert.Empty(t, f.recs, "still open after offline_after")
		f.with(count(meter.StatusCharging, 1200, 7))
		assert.Equal(t, s.Order, f.m.Session().Order, "the same order resumes")
		f.fail(2 * time.Hour)
		r := f.final()
		assert.Equal(t, ReasonCommLost, r.Reason)
		assert.EqualValues(t, 200, r.QuantityWh)
	})
	t.Run("pile still starting, never charged: same order, no failure", func(t *testing.T) {
		f := newFeed(t, PortConfig{})
		f.with(count(meter.StatusStarting, 1000, 3))
		s := *f.m.Session()
		f2 := newFeed(t, PortConfig{})
		f2.now = f.now.Add(5 * time.Minute) // longer than start_timeout: the clock restarts with the bridge
		f2.m.Restore(&s)
		f2.with(count(meter.StatusStarting, 1000, 3))
		assert.Empty(t, f2.recs)
		f2.with(count(meter.StatusCharging, 1000, 3))
		f2.with(count(meter.StatusCharging, 1005, 3))
		f2.with(count(meter.StatusFinished, 1006, 3))
		r := f2.final()
		assert.Equal(t, s.Order, r.Order)
		assert.EqualValues(t, 6, r.QuantityWh)
		assert.Len(t, f2.recs, 2, "progress and the bill; no start-failed")
	})
	t.Run("charged, now starting: old bill with the live reading, new order", func(t *testing.T) {
		f, s := restored(t, PortConfig{})
		f.with(count(meter.StatusStarting, 1030, 7))
		require.Len(t, f.recs, 1)
		assert.Equal(t, s.Order, f.recs[0].Order)
		assert.EqualValues(t, 30, f.recs[0].QuantityWh)
		require.NotNil(t, f.m.Session())
		assert.NotEqual(t, s.Order, f.m.Session().Order)
	})
	t.Run("new session began while down (counter): two orders", func(t *testing.T) {
		f, s := restored(t, PortConfig{})
		f.with(count(meter.StatusCharging, 1500, 8))
		closed := f.closed()
		require.Len(t, closed, 1)
		assert.Equal(t, s.Order, closed[0].Order)
		assert.Equal(t, ReasonSuperseded, closed[0].Reason)
		assert.EqualValues(t, 10, closed[0].QuantityWh, "only what the stored readings prove")
		next := f.m.Session()
		require.NotNil(t, next)
		assert.NotEqual(t, s.Order, next.Order)
		f.with(count(meter.StatusFinished, 1520, 8))
		assert.EqualValues(t, 20, f.final().QuantityWh, "counted from its first reading")
	})
	t.Run("new session began while down (VIN)", func(t *testing.T) {
		f, s := restored(t, PortConfig{})
		f.with(meter.Reading{Status: meter.StatusCharging, EnergyWh: 1500, VIN: "LSVIN00000000002"})
		closed := f.closed()
		require.Len(t, closed, 1)
		assert.Equal(t, s.Order, closed[0].Order)
		assert.Equal(t, "LSVIN00000000002", f.m.Session().VIN)
	})
}

func TestNewSessionWhileRunning(t *testing.T) {
	f := newFeed(t, PortConfig{OfflineAfter: 5 * time.Second})
	f.with(meter.Reading{Status: meter.StatusCharging, EnergyWh: 100, SessionCount: 1, HasSessionCount: true})
	f.with(meter.Reading{Status: meter.StatusCharging, EnergyWh: 110, SessionCount: 1, HasSessionCount: true})
	first := f.m.Session().Order
	f.fail(time.Minute) // the line was down while the car left and another came
	f.with(meter.Reading{Status: meter.StatusCharging, EnergyWh: 300, SessionCount: 2, HasSessionCount: true})
	var closed []Event
	for _, e := range f.recs {
		if e.Terminal() {
			closed = append(closed, e)
		}
	}
	require.Len(t, closed, 1)
	assert.Equal(t, first, closed[0].Order)
	assert.EqualValues(t, 10, closed[0].QuantityWh)
	assert.NotEqual(t, first, f.m.Session().Order)
}

func TestMeterOnlyPort(t *testing.T) {
	cfg := PortConfig{StartPowerW: 1000, StartFor: 3 * time.Second, StopPowerW: 100, StopFor: 3 * time.Second}
	f := newFeed(t, cfg)
	step := func(wh, w int64) { f.step(meter.StatusUnknown, wh, w) }
	step(100, 0)
	lastLow := f.now
	step(102, 5000) // crossed between the two readings: 2 Wh already flowed
	step(103, 5000)
	step(105, 5000)
	assert.Nil(t, f.m.Session())
	step(107, 5000)
	require.NotNil(t, f.m.Session())
	assert.Equal(t, lastLow, f.m.Session().StartTime, "the baseline is the last reading before the edge")
	step(109, 50)
	fell := f.now
	step(109, 50)
	step(109, 50)
	step(109, 50)
	r := f.final()
	assert.EqualValues(t, 9, r.QuantityWh, "from the last low reading, not from the first high one")
	assert.Equal(t, ReasonPowerFell, r.Reason)
	assert.Equal(t, fell, r.End, "the end is when power fell, not when the stop was decided")
	for _, e := range f.recs {
		assert.False(t, e.End.After(fell), "no event runs past the power edge")
	}
}

func TestClockSettles(t *testing.T) {
	f := newFeed(t, PortConfig{})
	f.m.ClockUnsettled()
	f.now = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	f.step(meter.StatusCharging, 1000, 7000)
	f.charge(1000, 10, 10)
	s := f.m.Session()
	assert.True(t, s.Provisional)
	assert.EqualValues(t, 100_000, s.PendingMWh)
	assert.Empty(t, f.recs, "no progress with provisional times")
	jump := t0.Sub(f.now)
	start := s.StartTime
	assert.True(t, f.m.ClockSettled(jump))
	assert.Equal(t, start.Add(jump), s.StartTime)
	assert.Zero(t, s.PendingMWh)
	assert.EqualValues(t, 100, s.QuantityWh())
	e, _ := s.Fees()
	assert.EqualValues(t, 10, e)
}

func TestPlateFromVIN(t *testing.T) {
	f := newFeed(t, PortConfig{Plates: map[string]string{"LSVIN00000000001": "川A12345"}})
	f.with(meter.Reading{Status: meter.StatusCharging, EnergyWh: 10, VIN: "LSVIN00000000001"})
	f.with(meter.Reading{Status: meter.StatusFinished, EnergyWh: 12})
	r := f.final()
	assert.Equal(t, "川A12345", r.Plate)
	assert.Equal(t, "LSVIN00000000001", r.VIN)
	assert.Empty(t, r.Mobile, "no mobile from the pile")

	f.with(meter.Reading{Status: meter.StatusCharging, EnergyWh: 20, Mobile: "13800138001"})
	f.with(meter.Reading{Status: meter.StatusFinished, EnergyWh: 22})
	assert.Equal(t, "13800138001", f.final().Mobile, "the pile's mobile register")
}

// The machine takes values, not defaults: a zero where a rule needs a value
// is an error naming it (the config owns every default).
func TestNewMachineRejectsZeros(t *testing.T) {
	tr := flat(t)
	orders := func(time.Time) string { return "O" }
	full := FilledPortConfig(PortConfig{})
	_, err := NewMachine(full, tr, orders, zerolog.Nop())
	require.NoError(t, err)
	for name, zero := range map[string]func(*PortConfig){
		"progress_interval": func(c *PortConfig) { c.ProgressInterval = 0 },
		"start_timeout":     func(c *PortConfig) { c.StartTimeout = 0 },
		"offline_after":     func(c *PortConfig) { c.OfflineAfter = 0 },
		"offline_close":     func(c *PortConfig) { c.OfflineClose = 0 },
		"hold_polls":        func(c *PortConfig) { c.HoldPolls = 0 },
	} {
		c := full
		zero(&c)
		_, err := NewMachine(c, tr, orders, zerolog.Nop())
		assert.ErrorContains(t, err, name)
	}
	_, err = NewMachine(full, nil, orders, zerolog.Nop())
	assert.ErrorContains(t, err, "tariff")
}
