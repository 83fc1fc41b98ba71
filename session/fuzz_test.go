package session

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"pilebridge/meter"
)

// The engine fed any sequence of readings, failed polls and restarts: no
// panic, one terminal event per order and nothing after it, quantities
// never negative or going down within an order, fees never negative.
func FuzzMachine(f *testing.F) {
	f.Add([]byte{3, 0, 10, 3, 5, 50, 3, 5, 60, 6, 0, 0, 1, 0, 0})
	f.Add([]byte{0, 1, 0, 3, 200, 200, 9, 0, 0, 3, 1, 3, 5, 7, 0})
	f.Add([]byte{4, 0, 0, 4, 100, 255, 4, 0, 255, 255, 0, 0, 8, 2, 2})
	f.Fuzz(func(t *testing.T, ops []byte) {
		tr, err := NewTariff("America/New_York", []PeriodSpec{
			{Start: "00:00", End: "02:30", Type: "valley", Electricity: "0.3", Service: "0.1"},
			{Start: "02:30", End: "24:00", Type: "peak", Electricity: "1.2", Service: "0.8"}})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		orders := func(time.Time) string { n++; return fmt.Sprintf("O%d", n) }
		cfg := PortConfig{RatedPowerW: 22000, ProgressInterval: 3 * time.Second, OfflineAfter: 5 * time.Second,
			OfflineClose: time.Minute, StartPowerW: 500, StartFor: 2 * time.Second, StopPowerW: 100, StopFor: 2 * time.Second}
		m := mustMachine(t, cfg, tr, orders)
		now := time.Date(2026, 3, 8, 6, 55, 0, 0, time.UTC) // DST begins in New York at 07:00 UTC
		energy := int64(1_000_000_000)
		closed, last := map[string]bool{}, map[string]int64{}
		for i := 0; i+2 < len(ops); i += 3 {
			op, a, b := ops[i], ops[i+1], ops[i+2]
			now = now.Add(time.Duration(1+int(a%8)) * time.Second)
			var evs []Event
			switch op % 10 {
			case 9: // restart: the stored session meets a new machine
				if s := m.Session(); s != nil {
					data, err := json.Marshal(s)
					if err != nil {
						t.Fatal(err)
					}
					var back Session
					if err := json.Unmarshal(data, &back); err != nil {
						t.Fatal(err)
					}
					m = mustMachine(t, cfg, tr, orders)
					m.Restore(&back)
				} else {
					m = mustMachine(t, cfg, tr, orders)
				}
				continue
			case 8:
				evs, _ = m.Step(meter.Reading{}, fmt.Errorf("timeout"), now)
			default:
				switch b % 16 {
				case 15:
					energy = int64(a) * 1000 // a meter swap
				default:
					energy += int64(b) * 100
				}
				r := meter.Reading{Time: now, HasEnergy: true, EnergyResMWh: []int64{1, 1000, 10_000}[a%3], PowerW: int64(b) * 100, HasPower: true,
					SessionCount: int64(a % 3), HasSessionCount: a%5 == 0}
				r.SetEnergyMWh(energy)
				if op%10 < 8 {
					r.Status, r.HasStatus = meter.Status(op%9), op%7 != 0
				}
				evs, _ = m.Step(r, nil, now)
			}
			for _, e := range evs {
				if closed[e.Order] {
					t.Fatalf("event %s after order %s closed", e.Kind, e.Order)
				}
				if e.QuantityWh < 0 || e.EnergyFen < 0 || e.ServiceFen < 0 {
					t.Fatalf("negative amounts: %+v", e)
				}
				if e.Kind != EventStartFailed && e.QuantityWh < last[e.Order] {
					t.Fatalf("order %s went from %d to %d Wh", e.Order, last[e.Order], e.QuantityWh)
				}
				last[e.Order] = e.QuantityWh
				if e.Terminal() {
					closed[e.Order] = true
				}
				if e.End.Before(e.Start) {
					t.Fatalf("ends before it starts: %+v", e)
				}
			}
		}
	})
}
