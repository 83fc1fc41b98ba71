package session_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/bbolt"

	"pilebridge/meter"
	"pilebridge/session"
	"pilebridge/uploader"
)

// BenchmarkStepCharging: one accepted reading of a charging session (no I/O).
func BenchmarkStepCharging(b *testing.B) {
	n := 0
	m := session.NewMachine(session.PortConfig{ProgressInterval: time.Hour, RatedPowerW: 7000}, flatB(b),
		func(time.Time) (string, error) { n++; return fmt.Sprint(n), nil }, zerolog.Nop())
	now := time.Date(2026, 3, 14, 4, 0, 0, 0, time.UTC)
	r := meter.Reading{HasEnergy: true, HasStatus: true, Status: meter.StatusCharging, PowerW: 7000, HasPower: true, EnergyResMWh: 1000}
	r.SetEnergyMWh(1_000_000)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Second)
		r.Time = now
		r.SetEnergyMWh(r.EnergyMWh + 2000)
		m.Step(r, nil, now)
	}
}

func flatB(b *testing.B) *session.Tariff {
	tr, err := session.NewTariff("Asia/Shanghai", []session.PeriodSpec{{Start: "00:00", End: "24:00", Type: "flat", Electricity: "1.0", Service: "0.5"}})
	if err != nil {
		b.Fatal(err)
	}
	return tr
}

// BenchmarkCommit: storing an open session, as the runner does on an
// accepted reading (one fsynced bbolt transaction). Reports the bytes the
// process had written to storage per commit (Linux /proc/self/io), the
// figure behind session.persist_interval.
func BenchmarkCommit(b *testing.B) {
	db, err := bbolt.Open(filepath.Join(b.TempDir(), "db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	box, err := uploader.NewOutbox(db, 0, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	sink := &uploader.Translator{Outbox: box, Ports: map[string]uploader.Port{}}
	st, err := session.NewStore(db, sink, time.UTC, "")
	if err != nil {
		b.Fatal(err)
	}
	s := &session.Session{Order: "20261127000000000001", Periods: map[string]*session.Billed{"flat@00:00": {Type: "flat"}}}
	for i := 0; i < 10; i++ { // ten ports' sessions in the bucket
		if err := st.Commit(fmt.Sprintf("P%d/1", i), s, nil); err != nil {
			b.Fatal(err)
		}
	}
	before := writtenBytes()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Energy.CountedMWh += 1000
		s.Energy.LastAt = time.Now()
		if err := st.Commit(fmt.Sprintf("P%d/1", i%10), s, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if after := writtenBytes(); before >= 0 && after >= 0 {
		b.ReportMetric(float64(after-before)/float64(b.N)/1024, "KB_written/op")
	}
}

func writtenBytes() int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}
