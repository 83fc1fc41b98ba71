package session

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
	"pilebridge/uploader"
)

func flat(t *testing.T) *Tariff {
	tr, err := NewTariff("Asia/Shanghai", []PeriodSpec{{Start: "00:00", End: "24:00", Type: "flat", Electricity: "1.0", Service: "0.5"}})
	require.NoError(t, err)
	return tr
}

func newTestMachine(t *testing.T, tr *Tariff, cfg PortConfig) *Machine {
	n := 0
	if cfg.DeviceNo == "" {
		cfg.DeviceNo, cfg.PortNo, cfg.EnergyCode, cfg.Mobile = "D1", "1", "CN_AC", "local"
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = 10 * time.Second
	}
	return NewMachine(cfg, tr, func(time.Time) (string, error) { n++; return fmt.Sprintf("ORD%03d", n), nil }, zerolog.Nop())
}

// feed drives a machine with one reading per second from t0.
type feed struct {
	t    *testing.T
	m    *Machine
	now  time.Time
	recs []uploader.Record
}

var t0 = time.Date(2026, 3, 14, 4, 0, 0, 0, time.UTC) // 12:00 in Shanghai

func newFeed(t *testing.T, cfg PortConfig) *feed {
	return &feed{t: t, m: newTestMachine(t, flat(t), cfg), now: t0}
}

func (f *feed) step(st meter.Status, wh, w int64) []uploader.Record {
	f.now = f.now.Add(time.Second)
	r := meter.Reading{Time: f.now, EnergyWh: wh, HasEnergy: true, PowerW: w, HasPower: true, Status: st, HasStatus: st != meter.StatusUnknown}
	recs, _ := f.m.Step(r, nil, f.now)
	f.recs = append(f.recs, recs...)
	return recs
}

func (f *feed) with(r meter.Reading) []uploader.Record {
	f.now = f.now.Add(time.Second)
	r.Time, r.HasEnergy, r.HasStatus = f.now, true, true
	recs, _ := f.m.Step(r, nil, f.now)
	f.recs = append(f.recs, recs...)
	return recs
}

func (f *feed) fail(d time.Duration) []uploader.Record {
	f.now = f.now.Add(d)
	recs, _ := f.m.Step(meter.Reading{}, fmt.Errorf("timeout"), f.now)
	f.recs = append(f.recs, recs...)
	return recs
}

func (f *feed) final() uploader.Record {
	f.t.Helper()
	require.NotEmpty(f.t, f.recs)
	last := f.recs[len(f.recs)-1]
	require.True(f.t, last.Terminal(), "last record is %s", last.Kind)
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
	require.Len(t, first, 1, "a progress record when charging begins")
	assert.Equal(t, uploader.KindProgress, first[0].Kind)
	assert.Equal(t, uploader.StateCharging, first[0].State)
	e := f.charge(1000, 2, 25)
	f.with(meter.Reading{Status: meter.StatusFinished, EnergyWh: e, StopReason: "SOC已充满", SOC: 100, HasSOC: true})
	bill := f.final()
	assert.Equal(t, uploader.KindFinal, bill.Kind)
	assert.Equal(t, uploader.StateFinished, bill.State)
	assert.EqualValues(t, 50, bill.QuantityWh)
	assert.Equal(t, "SOC已充满", bill.StateDesc)
	assert.Equal(t, t0.Add(3*time.Second), bill.StartTime, "start is when the pile began starting")
	assert.Equal(t, f.now, bill.EndTime)
	assert.EqualValues(t, 5, bill.EnergyFen)  // 50 Wh × 1.0 yuan/kWh = 5 fen
	assert.EqualValues(t, 3, bill.ServiceFen) // 2.5 fen rounds up
	require.NotNil(t, bill.SOC)
	assert.Equal(t, 100, *bill.SOC)
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
		assert.Equal(t, uploader.KindStartFailed, r.Kind)
		assert.Equal(t, uploader.StateStartFailed, r.State)
		assert.Equal(t, "启动失败:车辆未响应", r.StateDesc)
		assert.Zero(t, r.QuantityWh)
		assert.Len(t, f.recs, 1)
	})
	t.Run("charging never begins", func(t *testing.T) {
		f := newFeed(t, PortConfig{StartTimeout: 5 * time.Second})
		for i := 0; i < 10; i++ {
			f.step(meter.StatusStarting, 500, 0)
		}
		require.Len(t, f.recs, 1, "the pile stuck in starting fails once")
		assert.Equal(t, "启动失败:超时未开始充电", f.recs[0].StateDesc)
	})
	t.Run("seen only as failed", func(t *testing.T) {
		f := newFeed(t, PortConfig{})
		f.step(meter.StatusIdle, 500, 0)
		f.with(meter.Reading{Status: meter.StatusStartFailed, EnergyWh: 500})
		assert.Equal(t, uploader.KindStartFailed, f.final().Kind)
		f.with(meter.Reading{Status: meter.StatusStartFailed, EnergyWh: 500})
		assert.Len(t, f.recs, 1, "one record per failure, not per poll")
		f.step(meter.StatusIdle, 500, 0)
		f.with(meter.Reading{Status: meter.StatusStartFailed, EnergyWh: 500})
		assert.Len(t, f.recs, 2, "a new failure after the pile recovered")
	})
}

func TestFaultWhileCharging(t *testing.T) {
	f := newFeed(t, PortConfig{})
	f.step(meter.StatusCharging, 100, 7000)
	e := f.charge(100, 2, 5)
	f.with(meter.Reading{Status: meter.StatusFault, EnergyWh: e, FaultCode: 2, FaultText: "绝缘故障"})
	r := f.final()
	assert.Equal(t, uploader.StateStartFailed, r.State, "abnormal end is -1")
	assert.Equal(t, "故障停止:绝缘故障", r.StateDesc)
	assert.EqualValues(t, 10, r.QuantityWh, "the energy delivered is still billed")
}

func TestUnplugWithoutFinished(t *testing.T) {
	f := newFeed(t, PortConfig{})
	f.step(meter.StatusCharging, 100, 7000)
	e := f.charge(100, 1, 3)
	f.step(meter.StatusIdle, e, 0)
	r := f.final()
	assert.Equal(t, uploader.StateFinished, r.State)
	assert.Equal(t, DescUserStop, r.StateDesc)
	assert.EqualValues(t, 3, r.QuantityWh)
}

func TestEnergyEdges(t *testing.T) {
	t.Run("momentary zero is held", func(t *testing.T) {
		f := newFeed(t, PortConfig{})
		f.step(meter.StatusCharging, 5000, 7000)
		f.step(meter.StatusCharging, 5002, 7000)
		f.step(meter.StatusCharging, 0, 7000)
		f.step(meter.StatusCharging, 5004, 7000)
		assert.EqualValues(t, 4, f.m.Session().Quantity)
	})
	t.Run("meter reset continues from the new register", func(t *testing.T) {
		f := newFeed(t, PortConfig{HoldPolls: 3})
		f.step(meter.StatusCharging, 5000, 7000)
		f.step(meter.StatusCharging, 5010, 7000)
		for _, e := range []int64{3, 4, 5} { // persists: reset
			f.step(meter.StatusCharging, e, 7000)
		}
		assert.EqualValues(t, 12, f.m.Session().Quantity, "kept 10, then counted from the first new reading")
		f.step(meter.StatusCharging, 8, 7000)
		f.step(meter.StatusFinished, 9, 0)
		// 10 before the reset, then 3 -> 9 on the new register
		assert.EqualValues(t, 16, f.final().QuantityWh)
	})
	t.Run("u32 wrap", func(t *testing.T) {
		f := newFeed(t, PortConfig{WrapWh: 1 << 32})
		f.step(meter.StatusCharging, 1<<32-3, 7000)
		f.step(meter.StatusCharging, 1<<32-1, 7000)
		f.step(meter.StatusCharging, 2, 7000)
		assert.EqualValues(t, 5, f.m.Session().Quantity)
	})
	t.Run("implausible jump is rejected", func(t *testing.T) {
		f := newFeed(t, PortConfig{RatedPowerW: 7000})
		f.step(meter.StatusCharging, 1000, 7000)
		f.step(meter.StatusCharging, 1002, 7000)
		f.step(meter.StatusCharging, 901002, 7000) // 900 kWh in a second
		f.step(meter.StatusCharging, 1004, 7000)
		assert.EqualValues(t, 4, f.m.Session().Quantity)
		// a swapped meter that really reads higher is followed once it persists
		for _, e := range []int64{500000, 500002, 500004} {
			f.step(meter.StatusCharging, e, 7000)
		}
		assert.EqualValues(t, 8, f.m.Session().Quantity)
	})
	t.Run("energy never goes down in records", func(t *testing.T) {
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
	t.Run("short loss mid-session resumes, gap by time", func(t *testing.T) {
		f := newFeed(t, PortConfig{OfflineAfter: 10 * time.Second})
		f.step(meter.StatusCharging, 1000, 7000)
		f.fail(5 * time.Second)
		assert.Equal(t, Charging, f.m.State())
		f.fail(20 * time.Second)
		assert.Equal(t, Offline, f.m.State())
		require.NotNil(t, f.m.Session(), "session kept while offline")
		f.step(meter.StatusCharging, 1050, 7000)
		assert.EqualValues(t, 50, f.m.Session().Quantity)
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
		assert.Equal(t, DescCommLost, r.StateDesc)
		assert.Equal(t, uploader.StateFinished, r.State)
		assert.EqualValues(t, 20, r.QuantityWh)
		assert.Equal(t, lastAt, r.EndTime)
	})
}

func restored(t *testing.T, cfg PortConfig) (*feed, *Session) {
	f := newFeed(t, cfg)
	f.step(meter.StatusCharging, 1000, 7000)
	f.charge(1000, 2, 5)
	s := *f.m.Session()
	f2 := newFeed(t, cfg)
	f2.now = f.now.Add(time.Minute)
	f2.m.Restore(&s)
	return f2, &s
}

func TestRecoveryAfterRestart(t *testing.T) {
	t.Run("still charging: same order, nothing lost or doubled", func(t *testing.T) {
		f, s := restored(t, PortConfig{})
		f.step(meter.StatusCharging, 1100, 7000)
		assert.Equal(t, s.Order, f.m.Session().Order)
		assert.EqualValues(t, 100, f.m.Session().Quantity)
		f.step(meter.StatusFinished, 1101, 0)
		assert.EqualValues(t, 101, f.final().QuantityWh)
		assert.Equal(t, s.Order, f.final().Order)
	})
	t.Run("pile stopped meanwhile: closed with the last stored reading", func(t *testing.T) {
		f, s := restored(t, PortConfig{})
		f.step(meter.StatusIdle, 1500, 0)
		r := f.final()
		assert.Equal(t, DescRecovered, r.StateDesc)
		assert.Equal(t, uploader.StateFinished, r.State)
		assert.EqualValues(t, 10, r.QuantityWh)
		assert.Equal(t, s.LastAt, r.EndTime)
		assert.Equal(t, s.Order, r.Order)
	})
	t.Run("pile silent after restart", func(t *testing.T) {
		f, s := restored(t, PortConfig{OfflineAfter: 5 * time.Second})
		f.fail(time.Second)
		assert.Empty(t, f.recs)
		f.fail(10 * time.Second)
		r := f.final()
		assert.Equal(t, DescRecovered, r.StateDesc)
		assert.Equal(t, s.LastAt, r.EndTime)
	})
}

func TestMeterOnlyPort(t *testing.T) {
	cfg := PortConfig{StartPowerW: 1000, StartFor: 3 * time.Second, StopPowerW: 100, StopFor: 3 * time.Second}
	f := newFeed(t, cfg)
	step := func(wh, w int64) { f.step(meter.StatusUnknown, wh, w) }
	step(100, 0)
	step(100, 5000) // crosses: baseline here
	crossed := f.now
	step(101, 5000)
	step(103, 5000)
	assert.Nil(t, f.m.Session())
	step(105, 5000)
	require.NotNil(t, f.m.Session())
	assert.Equal(t, crossed, f.m.Session().StartTime)
	step(107, 50)
	step(107, 50)
	step(107, 50)
	step(107, 50)
	r := f.final()
	assert.EqualValues(t, 7, r.QuantityWh, "from the crossing, not from the detection")
	assert.Equal(t, uploader.StateFinished, r.State)
}

func TestClockSettles(t *testing.T) {
	f := newFeed(t, PortConfig{})
	f.m.ClockUnsettled()
	f.now = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	f.step(meter.StatusCharging, 1000, 7000)
	f.charge(1000, 10, 10)
	s := f.m.Session()
	assert.True(t, s.Provisional)
	assert.EqualValues(t, 100, s.PendingWh)
	assert.Empty(t, f.recs, "no progress with provisional times")
	jump := t0.Sub(f.now)
	start := s.StartTime
	assert.True(t, f.m.ClockSettled(jump))
	assert.Equal(t, start.Add(jump), s.StartTime)
	assert.Zero(t, s.PendingWh)
	assert.EqualValues(t, 100, s.Quantity)
	e, _ := s.Fees()
	assert.EqualValues(t, 10, e)
}

func TestPlateFromVIN(t *testing.T) {
	f := newFeed(t, PortConfig{DeviceNo: "D", PortNo: "2", EnergyCode: "CN_DC", Mobile: "u1", Plates: map[string]string{"LSVIN00000000001": "川A12345"}, WantsPlate: true})
	f.with(meter.Reading{Status: meter.StatusCharging, EnergyWh: 10, VIN: "LSVIN00000000001"})
	f.with(meter.Reading{Status: meter.StatusFinished, EnergyWh: 12})
	r := f.final()
	assert.Equal(t, "川A12345", r.Plate)
	assert.Equal(t, "LSVIN00000000001", r.VIN)
	assert.Equal(t, "u1", r.Mobile, "the local user id when the pile has no mobile")
	assert.Equal(t, "CN_DC", r.EnergyCode)

	f.with(meter.Reading{Status: meter.StatusCharging, EnergyWh: 20, Mobile: "13800138001"})
	f.with(meter.Reading{Status: meter.StatusFinished, EnergyWh: 22})
	assert.Equal(t, "13800138001", f.final().Mobile, "the pile's mobile register wins")
}
