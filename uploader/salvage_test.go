package uploader

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/internal/dbfile"
)

func contents() *dbfile.Contents {
	return &dbfile.Contents{Buckets: map[string]map[string][]byte{}, Sequences: map[string]uint64{}, Closed: map[string]bool{}}
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
func TestSalvageRuleNeverBringsBackWhatIsDone(t *testing.T) {
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
	lines := SalvageRule(got, backup, map[string]bool{string(bucketOutbox): true})
	t.Log(lines)
	p := pendingOrders(t, got)
	assert.Equal(t, []Kind{KindFinal}, p["A"], "A's bill queued again from the ledger; its stale progress not brought back")
	assert.Equal(t, []Kind{KindFinal}, p["B"], "B's bill, lost from the file, comes from the backup")
	assert.NotContains(t, p, "C", "C was delivered: not sent again")
	assert.Equal(t, seqKey(uint64(len(got.Bucket(string(bucketOutbox))))), got.Bucket(string(bucketOutMeta))[string(keyCount)], "the pending count rebuilt")
	assert.True(t, got.Closed["A"] && got.Closed["B"] && got.Closed["C"], "every billed order known to the sessions' rule")
}
