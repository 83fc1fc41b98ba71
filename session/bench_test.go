package session_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/bbolt"

	"pilebridge/internal/blockdev"
	"pilebridge/meter"
	"pilebridge/session"
	"pilebridge/uploader"
)

// BenchmarkStepCharging: one accepted reading of a charging session (no I/O).
func BenchmarkStepCharging(b *testing.B) {
	n := 0
	m, err := session.NewMachine(session.FilledPortConfig(session.PortConfig{ProgressInterval: time.Hour, RatedPowerW: 7000}), flatB(b),
		func(time.Time) string { n++; return fmt.Sprint(n) }, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
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
// accepted reading (one fsynced bbolt transaction), with 1 port's and 16
// ports' sessions in the store. B_device/op is what reached the block device
// per commit, journal included, on an ext4 image of its own (loop device,
// needs root; see internal/blockdev for why not /proc/self/io).
func BenchmarkCommit(b *testing.B) {
	for _, ports := range []int{1, 16} {
		b.Run(fmt.Sprintf("ports=%d", ports), func(b *testing.B) { benchCommit(b, ports) })
	}
}

func benchCommit(b *testing.B, ports int) {
	dir, dev := benchDir(b)
	db, _, st := openStore(b, filepath.Join(dir, "db"), session.BoltOptions(), map[string]uploader.Port{})
	defer db.Close()
	now := time.Now()
	sessions := make([]*session.Session, ports)
	for i := range sessions {
		sessions[i] = benchSession(i, now)
		if err := st.Commit(fmt.Sprintf("P%d/1", i), sessions[i], nil); err != nil {
			b.Fatal(err)
		}
	}
	before, _ := dev.Written()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := sessions[i%ports]
		now = now.Add(time.Second / time.Duration(ports))
		s.Energy.LastMWh += 2000
		s.Energy.CountedMWh += 2000
		s.Energy.LastAt, s.Energy.ChangedAt, s.Energy.RoseFrom = now, now, now.Add(-time.Second)
		s.Periods["flat@00:00"].MWh += 2000
		if err := st.Commit(fmt.Sprintf("P%d/1", i%ports), s, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportDevice(b, dev, before)
}

// reportDevice reports the bytes that reached dev since before, per op.
func reportDevice(b *testing.B, dev blockdev.Device, before int64) {
	if dev.Name == "" {
		return
	}
	after, err := dev.Written()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(after-before)/float64(b.N), "B_device/op")
}

// benchSession is a charging session as the runner stores it: a VIN, SOC,
// a period, the energy stamps.
func benchSession(i int, now time.Time) *session.Session {
	s := &session.Session{
		Order: fmt.Sprintf("20261129103000B1%06d", i), State: session.Charging, StartTime: now, OpenedAt: now, Charged: true,
		VIN: "LSTOP103212132001", SOC: 35, HasSOC: true, Seq: 3, LastSent: now,
		Periods: map[string]*session.Billed{"flat@00:00": {Type: "flat", Electricity: 6500, Service: 6000}},
	}
	s.Energy.BaseMWh, s.Energy.LastMWh, s.Energy.ResMWh = 1_234_567_000, 1_234_567_000, 1000
	s.Energy.BaseAt, s.Energy.LastAt, s.Energy.ChangedAt, s.Energy.RoseFrom = now, now, now, now
	return s
}

// benchDir is a directory on a device of its own when root can mount one;
// otherwise a temporary directory and no device figure.
func benchDir(b *testing.B) (string, blockdev.Device) {
	if os.Geteuid() == 0 {
		l, err := blockdev.MountLoop(context.Background(), b.TempDir(), 512)
		if err == nil {
			b.Cleanup(func() {
				if err := l.Close(); err != nil {
					b.Error(err)
				}
			})
			return l.Dir, l.Device
		}
		b.Logf("no device figure: %v", err)
	} else {
		b.Log("no device figure: a loop device needs root")
	}
	return b.TempDir(), blockdev.Device{}
}

// outageDB makes a database that held n outbox records (an outage) in dir:
// queued in large transactions, then delivered and removed as the sender
// does, leaving the free pages an outage leaves behind. keep: leave them
// queued instead.
func outageDB(b *testing.B, path string, opts *bbolt.Options, n int, keep bool) {
	db, err := bbolt.Open(path, 0o600, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	box, err := uploader.NewOutbox(db, n, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := 0; i < n; i += 5000 {
		err := db.Update(func(tx *bbolt.Tx) error {
			for k := i; k < min(i+5000, n); k++ {
				r := uploader.Record{Kind: uploader.KindFinal, Order: fmt.Sprintf("20261129103000B1%06d", k), DeviceNo: "SCALE01001", PortNo: "1",
					StartTime: now, EndTime: now, QuantityWh: 12345, EnergyFen: 800, ServiceFen: 740, State: 3, StateDesc: "用户停止", VIN: "LSTOP103212132001"}
				if err := box.EnqueueTx(tx, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if keep {
		return
	}
	for _, name := range []string{"outbox", "outbox_closed"} {
		if err := db.Update(func(tx *bbolt.Tx) error {
			if err := tx.DeleteBucket([]byte(name)); err != nil {
				return err
			}
			_, err := tx.CreateBucket([]byte(name))
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen: opening the daemon's database with 100 000 records queued
// (outbox_max_records' default), as a restart during a long outage does.
// Without a stored freelist bbolt rebuilds it by walking every page.
// PILEBRIDGE_BENCH_COLD=1 (root) drops the page cache before each open.
func BenchmarkOpen(b *testing.B) {
	for _, synced := range []bool{true, false} {
		b.Run(fmt.Sprintf("records=100000/freelist_synced=%t", synced), func(b *testing.B) {
			opts := session.BoltOptions()
			opts.NoFreelistSync = !synced
			path := filepath.Join(b.TempDir(), "db")
			outageDB(b, path, opts, 100_000, true)
			st, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			cold := os.Getenv("PILEBRIDGE_BENCH_COLD") != ""
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if cold { // as after a reboot: nothing of the file in memory (root only)
					b.StopTimer()
					if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				db, err := bbolt.Open(path, 0o600, opts)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := uploader.NewOutbox(db, 100_000, zerolog.Nop()); err != nil {
					b.Fatal(err)
				}
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(st.Size())/1e6, "MB_file")
		})
	}
}

// BenchmarkCommitAfterOutage: one port's commit once an outage of 100 000
// records has drained, with and without bbolt's stored freelist (which then
// lists thousands of free pages and is rewritten by every commit).
func BenchmarkCommitAfterOutage(b *testing.B) {
	for _, synced := range []bool{true, false} {
		b.Run(fmt.Sprintf("freelist_synced=%t", synced), func(b *testing.B) {
			dir, dev := benchDir(b)
			opts := session.BoltOptions()
			opts.NoFreelistSync = !synced
			path := filepath.Join(dir, "db")
			outageDB(b, path, opts, 100_000, false)
			db, _, st := openStore(b, path, opts, map[string]uploader.Port{})
			defer db.Close()
			now := time.Now()
			s := benchSession(0, now)
			before, _ := dev.Written()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				now = now.Add(time.Second)
				s.Energy.LastMWh += 2000
				s.Energy.CountedMWh += 2000
				s.Energy.LastAt = now
				if err := st.Commit("P0/1", s, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			reportDevice(b, dev, before)
		})
	}
}
