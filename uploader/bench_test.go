package uploader_test

import (
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"pilebridge/uploader"
)

// BenchmarkEnqueue: one committed (fsynced) record per call, as the daemon
// does for every record; reports the p99 latency.
func BenchmarkEnqueue(b *testing.B) {
	r := openRigB(b)
	defer r.db.Close()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := r.box.Enqueue(rec(fmt.Sprintf("E%07d", i), uploader.KindFinal, int64(i))); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}

// BenchmarkDrain10k: 10 000 queued records (distinct orders) delivered to
// the platform stand-in over loopback HTTP, signed, each checked.
func BenchmarkDrain10k(b *testing.B) {
	const n = 10_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		si := newStandIn(b)
		r := openRigB(b)
		var err error
		r.sender, err = uploader.NewSender(r.box, clientFor(si.url()), uploader.SenderConfig{Workers: 4, Batch: 64, BaseBackoff: time.Second, MaxBackoff: 5 * time.Minute}, nopLog)
		if err != nil {
			b.Fatal(err)
		}
		err = r.db.Update(func(tx *bbolt.Tx) error {
			for k := 0; k < n; k++ {
				if err := r.box.EnqueueTx(tx, rec(fmt.Sprintf("D%07d", k), uploader.KindFinal, int64(k))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		r.start()
		for pendingCount(b, r.box) > 0 {
			time.Sleep(5 * time.Millisecond)
		}
		el := time.Since(start)
		b.StopTimer()
		r.stop()
		si.down()
		if got := len(si.plat.Received("")); got != n {
			b.Fatalf("platform got %d records, want %d", got, n)
		}
		b.ReportMetric(n/el.Seconds(), "records/s")
	}
}

func openRigB(b *testing.B) *rig {
	return openRig(b, filepath.Join(b.TempDir(), "db"), "http://127.0.0.1:1", 1_000_000)
}
