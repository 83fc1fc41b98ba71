package uploader

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/internal/boltwalk"
)

// Each step of SalvageOutbox on its own, on contents built by hand.

func TestSalvageStepReadCopiesKnowsBilledOrders(t *testing.T) {
	got := contents()
	got.Bucket(string(bucketClosed))["C"] = seqKey(1)
	putLedger(t, got, Record{Order: "L", Kind: KindFinal}, LedgerPending)
	putEntry(t, got, bucketDelivered, 3, Record{Order: "D", Kind: KindFinal})
	putEntry(t, got, bucketDelivered, 4, Record{Order: "P", Kind: KindProgress})
	got.Bucket(string(bucketLedger))["BAD"] = []byte("{")
	q := readCopies(got)
	assert.Equal(t, map[string]bool{"C": true, "L": true, "D": true}, q.billed,
		"closed index, ledger and delivered bills; not a delivered progress record, not an unreadable entry")
}

func TestSalvageStepFillFromBackupOnlyWhereDamaged(t *testing.T) {
	got, backup := contents(), contents()
	putEntry(t, backup, bucketOutbox, 1, Record{Order: "A", Kind: KindFinal})
	putEntry(t, backup, bucketParked, 2, Record{Order: "B", Kind: KindFinal})
	putLedger(t, backup, Record{Order: "A", Kind: KindFinal}, LedgerPending)

	q := readCopies(got)
	n := q.fillFromBackup(backup, map[string]bool{string(bucketParked): true})
	assert.Equal(t, backupFill{records: 1}, n, "only the damaged bucket (parked) is filled")
	assert.Contains(t, q.parked, string(seqKey(2)))
	assert.NotContains(t, q.pending, string(seqKey(1)), "the outbox bucket read clean: what it lacks was sent")

	q = readCopies(got)
	n = q.fillFromBackup(nil, map[string]bool{"": true})
	assert.Equal(t, backupFill{}, n, "no backup, nothing filled")
}

func TestSalvageStepChooseMostAdvanced(t *testing.T) {
	got := contents()
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	copyOf := func(status string) boltwalk.KV {
		data, err := encodeLedger(LedgerEntry{Record: Record{Order: "X", Kind: KindFinal}, Status: status, QueuedAt: t0})
		require.NoError(t, err)
		return boltwalk.KV{Key: []byte("X"), Value: data}
	}
	q := readCopies(got)
	added, open := q.chooseMostAdvanced([]boltwalk.KV{copyOf(LedgerPending), copyOf(LedgerParked), copyOf(LedgerPending)})
	assert.Equal(t, 1, added)
	assert.Equal(t, 1, open, "parked is not delivered")
	l, err := decodeLedger(q.ledger["X"])
	require.NoError(t, err)
	assert.Equal(t, LedgerParked, l.Status, "the parked copy is more advanced than the pending ones")
	assert.True(t, q.billed["X"])
}

func TestSalvageStepRequeueFromLedger(t *testing.T) {
	got := contents()
	putLedger(t, got, Record{Order: "P", Kind: KindFinal}, LedgerParked)
	putLedger(t, got, Record{Order: "Q", Kind: KindFinal}, LedgerPending)
	putLedger(t, got, Record{Order: "D", Kind: KindFinal}, LedgerDelivered)
	putEntry(t, got, bucketOutbox, 7, Record{Order: "Q", Kind: KindFinal})
	q := readCopies(got)
	seq, requeued := q.requeueFromLedger(5)
	assert.Equal(t, 1, requeued, "P only: Q is queued, D delivered")
	assert.EqualValues(t, 8, seq, "above the floor and every queued key")
	e, err := decodeEntry(q.pending[string(seqKey(8))])
	require.NoError(t, err)
	assert.Equal(t, "P", e.Record.Order)
	l, err := decodeLedger(q.ledger["P"])
	require.NoError(t, err)
	assert.Equal(t, LedgerPending, l.Status, "a parked bill goes to the platform again")
}

func TestSalvageStepReportLosses(t *testing.T) {
	got := contents()
	got.Bucket(string(bucketClosed))["GONE"] = seqKey(1)
	got.Bucket(string(bucketClosed))["KEPT"] = seqKey(2)
	putLedger(t, got, Record{Order: "KEPT", Kind: KindFinal}, LedgerDelivered)
	putEntry(t, got, bucketDelivered, 2, Record{Order: "KEPT", Kind: KindFinal})
	q := readCopies(got)
	lines := q.reportLosses(4, true)
	require.Len(t, lines, 2)
	assert.Contains(t, lines[0], "1 bill(s) of orders known to be billed whose record no page kept: GONE")
	assert.Contains(t, lines[1], "records 3 to 4 were queued in the damaged pages")
	lines = q.reportLosses(2, true)
	assert.Contains(t, lines[1], "no record is missing", "the file's count agrees with the highest record read")
}
