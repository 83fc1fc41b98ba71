package session

import (
	"testing"
	"time"

	"pilebridge/meter"
)

// BenchmarkStepCharging: one accepted reading of a charging session (no I/O).
func BenchmarkStepCharging(b *testing.B) {
	m := newTestMachine(&testing.T{}, flatB(b), PortConfig{ProgressInterval: time.Hour})
	now := t0
	r := meter.Reading{HasEnergy: true, HasStatus: true, Status: meter.StatusCharging, PowerW: 7000, HasPower: true, EnergyWh: 1000}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Second)
		r.Time, r.EnergyWh = now, r.EnergyWh+2
		m.Step(r, nil, now)
	}
}

func flatB(b *testing.B) *Tariff {
	tr, err := NewTariff("Asia/Shanghai", []PeriodSpec{{Start: "00:00", End: "24:00", Type: "flat", Electricity: "1.0", Service: "0.5"}})
	if err != nil {
		b.Fatal(err)
	}
	return tr
}
