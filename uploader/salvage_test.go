package uploader

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/internal/boltwalk"
	"pilebridge/internal/dbfile"
)

func contents() *dbfile.Contents {
	return &dbfile.Contents{Buckets: map[string]map[string][]byte{}, Sequences: map[string]uint64{}}
}

func putEntry(t *testing.T, c *dbfile.Contents, bucket []byte, seq uint64, r Record) {
	data, err := json.Marshal(Entry{Seq: seq, Record: r, EnqueuedAt: time.Now()})
	require.NoError(t, err)
	c.Bucket(string(bucket))[string(seqKey(seq))] = data
}

func putLedger(t *testing.T, c *dbfile.Contents, r Record, status string) {
	data, err := json.Marshal(LedgerEntry{Record: r, Status: status})
	require.NoError(t, err)
	c.Bucket(string(bucketLedger))[r.Order] = data
}

func pendingOrders(t *testing.T, c *dbfile.Contents) map[string][]Kind {
	out := map[string][]Kind{}
	for _, v := range c.Bucket(string(bucketOutbox)) {
		var e Entry
		require.NoError(t, json.Unmarshal(v, &e))
		out[e.Record.Order] = append(out[e.Record.Order], e.Record.Kind)
	}
	return out
}

// What salvage may bring back from a backup, and what never: a bill the
// file lost comes back; a record the file shows delivered does not; a
// progress record of an order whose bill is known does not (sent after
// its bill it would turn the session back to charging on the platform); a
// bill the ledger holds as undelivered is queued again from the ledger.
func TestSalvageOutboxNeverBringsBackWhatIsDone(t *testing.T) {
	got, backup := contents(), contents()
	rec := func(order string, kind Kind) Record { return Record{Order: order, Kind: kind, QuantityWh: 7} }
	// the backup, an hour old: A charging, B's bill pending, C's bill pending
	putEntry(t, backup, bucketOutbox, 1, rec("A", KindProgress))
	putEntry(t, backup, bucketOutbox, 2, rec("B", KindFinal))
	putEntry(t, backup, bucketOutbox, 3, rec("C", KindFinal))
	putLedger(t, backup, rec("B", KindFinal), LedgerPending)
	putLedger(t, backup, rec("C", KindFinal), LedgerPending)
	// the damaged file still has: A's bill in the ledger (pending, its queue
	// page lost), C delivered since the backup; the outbox bucket is damaged
	putLedger(t, got, rec("A", KindFinal), LedgerPending)
	putLedger(t, got, rec("C", KindFinal), LedgerDelivered)
	putEntry(t, got, bucketDelivered, 3, rec("C", KindFinal))
	res := SalvageOutbox(got, backup, map[string]bool{string(bucketOutbox): true})
	lines := res.Lines
	t.Log(lines)
	p := pendingOrders(t, got)
	assert.Equal(t, []Kind{KindFinal}, p["A"], "A's bill queued again from the ledger; its stale progress not brought back")
	assert.Equal(t, []Kind{KindFinal}, p["B"], "B's bill, lost from the file, comes from the backup")
	assert.NotContains(t, p, "C", "C was delivered: not sent again")
	assert.Equal(t, seqKey(uint64(len(got.Bucket(string(bucketOutbox))))), got.Bucket(string(bucketOutMeta))[string(keyCount)], "the pending count rebuilt")
	assert.True(t, res.Billed["A"] && res.Billed["B"] && res.Billed["C"], "every billed order known to the sessions' rule")
}

// Bills whose ledger entries survive only on leaf pages cut off from the
// tree: each order's most advanced copy is taken; an undelivered one is
// queued again; what the tree still has, what was delivered, what is not a
// ledger entry of its own key, a progress record and a copy older than the
// ledger's oldest bill are left alone.
func TestSalvageTakesBillsFromLooseLeaves(t *testing.T) {
	got := contents()
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	rec := func(order string, kind Kind, plate string) Record {
		return Record{Order: order, Kind: kind, QuantityWh: 7, Plate: plate}
	}
	ledgerCopy := func(r Record, status string, at time.Time) boltwalk.KV {
		data, err := json.Marshal(LedgerEntry{Record: r, Status: status, QueuedAt: at})
		require.NoError(t, err)
		return boltwalk.KV{Key: []byte(r.Order), Value: data}
	}
	data, err := json.Marshal(LedgerEntry{Record: rec("R", KindFinal, ""), Status: LedgerPending, QueuedAt: t0})
	require.NoError(t, err)
	got.Bucket(string(bucketLedger))["R"] = data
	putEntry(t, got, bucketDelivered, 9, rec("D", KindFinal, ""))
	outboxEntry, err := json.Marshal(Entry{Seq: 4, Record: rec("E", KindFinal, "")})
	require.NoError(t, err)
	got.Loose = []boltwalk.KV{
		ledgerCopy(rec("R", KindFinal, ""), LedgerDelivered, t0), // the tree's copy wins
		ledgerCopy(rec("L1", KindFinal, ""), LedgerPending, t0.Add(time.Hour)),
		ledgerCopy(rec("L1", KindFinal, ""), LedgerDelivered, t0.Add(time.Hour)),
		ledgerCopy(rec("L2", KindFinal, ""), LedgerPending, t0.Add(2*time.Hour)),
		ledgerCopy(rec("L2", KindFinal, "川A12345"), LedgerPending, t0.Add(2*time.Hour)),
		ledgerCopy(rec("L3", KindStartFailed, ""), LedgerParked, t0.Add(3*time.Hour)),
		ledgerCopy(rec("D", KindFinal, ""), LedgerPending, t0.Add(4*time.Hour)),
		ledgerCopy(rec("P", KindProgress, ""), LedgerPending, t0.Add(5*time.Hour)),
		ledgerCopy(rec("OLD", KindFinal, ""), LedgerPending, t0.Add(-24*time.Hour)),
		{Key: seqKey(4), Value: outboxEntry},
		{Key: []byte("X"), Value: []byte("not json")},
	}
	// the closed-order index knows Z was billed; no page kept its bill
	got.Bucket(string(bucketClosed))["Z"] = seqKey(11)
	res := SalvageOutbox(got, nil, map[string]bool{"": true})
	lines := res.Lines
	t.Log(lines)
	assert.Contains(t, lines, "outbox: 3 bill(s) found only on pages cut off from the tree (ledger copies), 2 of them not known as delivered")
	assert.Contains(t, lines, "not recovered: 1 bill(s) of orders known to be billed whose record no page kept: Z: compare `pilebridge sessions` with the platform")
	p := pendingOrders(t, got)
	assert.Equal(t, map[string][]Kind{"R": {KindFinal}, "L2": {KindFinal}, "L3": {KindStartFailed}}, p)
	for _, v := range got.Bucket(string(bucketOutbox)) {
		var e Entry
		require.NoError(t, json.Unmarshal(v, &e))
		if e.Record.Order == "L2" {
			assert.Equal(t, "川A12345", e.Record.Plate, "the copy with the plate")
		}
	}
	var l1 LedgerEntry
	require.NoError(t, json.Unmarshal(got.Bucket(string(bucketLedger))["L1"], &l1))
	assert.Equal(t, LedgerDelivered, l1.Status, "L1 known as delivered: in the ledger, not sent again")
	assert.NotContains(t, got.Bucket(string(bucketLedger)), "OLD")
	assert.True(t, res.Billed["L1"] && res.Billed["L2"] && res.Billed["L3"], "their orders closed for the sessions' rule")
}
