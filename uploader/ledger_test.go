package uploader_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"pilebridge/simulator"
	"pilebridge/uploader"
)

func ledgerByOrder(t *testing.T, box *uploader.Outbox) map[string]uploader.LedgerEntry {
	all, err := box.Ledger(time.Time{}, time.Time{})
	require.NoError(t, err)
	out := map[string]uploader.LedgerEntry{}
	for _, e := range all {
		out[e.Record.Order] = e
	}
	return out
}

// Every bill is in the ledger from the moment it is queued, with where its
// delivery stands: delivered with the platform's seqno, parked with the
// platform's reason, pending again after a retry. Progress records are not.
func TestLedgerFollowsDelivery(t *testing.T) {
	si := newStandIn(t)
	path := filepath.Join(t.TempDir(), "db")
	r := openRig(t, path, si.url(), 0)
	require.NoError(t, r.box.Enqueue(rec("P", uploader.KindProgress, 1)))
	require.NoError(t, r.box.Enqueue(rec("A", uploader.KindFinal, 5)))
	l := ledgerByOrder(t, r.box)
	require.Len(t, l, 1, "only the bill")
	assert.Equal(t, uploader.LedgerPending, l["A"].Status)
	assert.Nil(t, l["A"].DeliveredAt)

	r.start()
	waitFor(t, "A delivered", func() bool { return ledgerByOrder(t, r.box)["A"].Status == uploader.LedgerDelivered })
	a := ledgerByOrder(t, r.box)["A"]
	assert.Regexp(t, regexp.MustCompile(`^\d{32}$`), a.Seqno, "the stand-in's answer id")
	require.NotNil(t, a.DeliveredAt)
	assert.EqualValues(t, 5, a.Record.QuantityWh)

	si.plat.Inject(simulator.PlatformFault{Kind: "401", Count: 1})
	require.NoError(t, r.box.Enqueue(rec("B", uploader.KindStartFailed, 0)))
	waitFor(t, "B parked", func() bool { return ledgerByOrder(t, r.box)["B"].Status == uploader.LedgerParked })
	assert.Contains(t, ledgerByOrder(t, r.box)["B"].Reason, "401")

	n, _, err := r.box.Requeue("B")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	waitFor(t, "B delivered after the retry", func() bool { return ledgerByOrder(t, r.box)["B"].Status == uploader.LedgerDelivered })
	b := ledgerByOrder(t, r.box)["B"]
	assert.Empty(t, b.Reason)
	assert.Equal(t, 2, b.Attempts)
	r.stop()

	// a new process finds the ledger as it was
	r = openRig(t, path, si.url(), 0)
	defer r.stop()
	l = ledgerByOrder(t, r.box)
	assert.Equal(t, uploader.LedgerDelivered, l["A"].Status)
	assert.Equal(t, uploader.LedgerDelivered, l["B"].Status)
}

func TestLedgerRangeAndPrune(t *testing.T) {
	si := newStandIn(t)
	r := openRig(t, filepath.Join(t.TempDir(), "db"), si.url(), 0)
	defer r.stop()
	day := func(d int) time.Time { return time.Date(2026, 11, d, 12, 0, 0, 0, time.UTC) }
	for i, d := range []int{1, 2, 3, 4} {
		x := rec(string(rune('A'+i)), uploader.KindFinal, int64(d))
		x.StartTime, x.EndTime = day(d).Add(-time.Hour), day(d)
		require.NoError(t, r.box.Enqueue(x))
	}
	got, err := r.box.Ledger(day(2), day(4))
	require.NoError(t, err)
	require.Len(t, got, 2, "ended on the 2nd and 3rd: since inclusive, until exclusive")
	assert.Equal(t, []string{"B", "C"}, []string{got[0].Record.Order, got[1].Record.Order})

	// undelivered bills are never pruned, however old
	n, err := r.box.PruneLedger(context.Background(), day(3))
	require.NoError(t, err)
	assert.Zero(t, n)
	r.start()
	waitFor(t, "all delivered", func() bool {
		for _, e := range ledgerByOrder(t, r.box) {
			if e.Status != uploader.LedgerDelivered {
				return false
			}
		}
		return true
	})
	n, err = r.box.PruneLedger(context.Background(), day(3))
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	l := ledgerByOrder(t, r.box)
	assert.Len(t, l, 2)
	assert.Contains(t, l, "C")
	assert.Contains(t, l, "D")

	last, err := r.box.LedgerLast(1)
	require.NoError(t, err)
	require.Len(t, last, 1)
	assert.Equal(t, "D", last[0].Record.Order)
}

// A ledger entry that no longer decodes never holds up the bill's
// delivery: it is rebuilt from the record as the delivery settles.
func TestLedgerUnreadableEntryDoesNotBlockDelivery(t *testing.T) {
	si := newStandIn(t)
	r := openRig(t, filepath.Join(t.TempDir(), "db"), si.url(), 0)
	defer r.stop()
	require.NoError(t, r.box.Enqueue(rec("A", uploader.KindFinal, 7)))
	require.NoError(t, r.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("ledger")).Put([]byte("A"), []byte("{not json"))
	}))
	r.start()
	waitFor(t, "the bill delivered", func() bool { return len(si.byOrder()["A"]) == 1 })
	waitFor(t, "the entry rebuilt as delivered", func() bool {
		l, err := r.box.Ledger(time.Time{}, time.Time{})
		return err == nil && len(l) == 1 && l[0].Status == uploader.LedgerDelivered
	})
	l, _ := r.box.Ledger(time.Time{}, time.Time{})
	assert.EqualValues(t, 7, l[0].Record.QuantityWh)
	assert.Equal(t, 1, l[0].Attempts)
}

// Retention of personal data: a delivered progress record is not kept; after
// pii_days a delivered bill keeps its amounts but loses VIN, plate and
// mobile, in the ledger and the recent deliveries; a bill not delivered
// keeps them (the platform still needs the plate).
func TestPersonalDataRetention(t *testing.T) {
	si := newStandIn(t)
	r := openRig(t, filepath.Join(t.TempDir(), "db"), si.url(), 0)
	withPII := func(x uploader.Record, ended time.Time) uploader.Record {
		x.VIN, x.Plate, x.Mobile, x.EndTime = "LSTOP103212132001", "川A660N11", "13800138000", ended
		return x
	}
	old, recent := time.Now().AddDate(0, 0, -40), time.Now().AddDate(0, 0, -1)
	require.NoError(t, r.box.Enqueue(withPII(rec("OLD", uploader.KindProgress, 1), old)))
	require.NoError(t, r.box.Enqueue(withPII(rec("OLD", uploader.KindFinal, 7), old)))
	require.NoError(t, r.box.Enqueue(withPII(rec("NEW", uploader.KindFinal, 8), recent)))
	r.start()
	defer r.stop()
	waitFor(t, "delivered", func() bool { return pendingCount(t, r.box) == 0 })
	si.plat.Inject(simulator.PlatformFault{Kind: "1500", Count: 1000}) // the next bill stays pending
	require.NoError(t, r.box.Enqueue(withPII(rec("WAIT", uploader.KindFinal, 9), old)))
	_, _, delivered, err := r.box.List(true)
	require.NoError(t, err)
	for _, e := range delivered {
		assert.True(t, e.Record.Terminal(), "no delivered progress record kept (%s %s)", e.Record.Order, e.Record.Kind)
	}
	n, err := r.box.BlankPII(context.Background(), time.Now().AddDate(0, 0, -30))
	require.NoError(t, err)
	assert.Equal(t, 2, n, "OLD's ledger entry and its delivered record")
	l := ledgerByOrder(t, r.box)
	assert.Empty(t, l["OLD"].Record.VIN+l["OLD"].Record.Plate+l["OLD"].Record.Mobile, "blanked after pii_days")
	assert.EqualValues(t, 7, l["OLD"].Record.QuantityWh, "amounts kept for reconciliation")
	assert.Equal(t, "川A660N11", l["NEW"].Record.Plate, "within pii_days")
	assert.Equal(t, "川A660N11", l["WAIT"].Record.Plate, "not delivered: kept")
	_, _, delivered, err = r.box.List(true)
	require.NoError(t, err)
	for _, e := range delivered {
		if e.Record.Order == "OLD" {
			assert.Empty(t, e.Record.VIN+e.Record.Plate+e.Record.Mobile)
		}
	}
}

// Pages of the ledger and the outbox cover every entry once.
func TestPagesCoverEverythingOnce(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "db"), 0o600, &bbolt.Options{NoSync: true})
	require.NoError(t, err)
	defer db.Close()
	box, err := uploader.NewOutbox(db, 100_000, nopLog)
	require.NoError(t, err)
	for i := 0; i < 23; i++ {
		require.NoError(t, box.Enqueue(rec(fmt.Sprintf("O%03d", i), uploader.KindFinal, int64(i))))
		require.NoError(t, box.Enqueue(rec(fmt.Sprintf("O%03d", i), uploader.KindProgress, int64(i))))
	}
	seen := map[string]int{}
	for after, pages := "", 0; ; pages++ {
		page, next, err := box.LedgerPage(time.Time{}, time.Time{}, after, 5)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 5)
		for _, e := range page {
			seen[e.Record.Order]++
		}
		if next == "" {
			assert.Equal(t, 4, pages, "23 bills in pages of 5")
			break
		}
		after = next
	}
	assert.Len(t, seen, 23)
	for o, n := range seen {
		assert.Equal(t, 1, n, o)
	}
	seqs := map[uint64]int{}
	for after := uint64(0); ; {
		p, parked, d, next, err := box.ListPage(true, after, 7)
		require.NoError(t, err)
		for _, es := range [][]uploader.Entry{p, parked, d} {
			for _, e := range es {
				seqs[e.Seq]++
			}
		}
		if next == 0 {
			break
		}
		after = next
	}
	all, _, _, err := box.List(true)
	require.NoError(t, err)
	assert.Len(t, seqs, len(all))
	for s, n := range seqs {
		assert.Equal(t, 1, n, "seq %d", s)
	}
	// a page after the end is empty, however far past it
	for _, after := range []uint64{1 << 40, math.MaxUint64} {
		p, parked, d, next, err := box.ListPage(true, after, 7)
		require.NoError(t, err)
		assert.Empty(t, append(append(p, parked...), d...), "after %d", after)
		assert.Zero(t, next)
	}
	page, next, err := box.LedgerPage(time.Time{}, time.Time{}, "~~~~", 7)
	require.NoError(t, err)
	assert.Empty(t, page)
	assert.Empty(t, next)
}
