package session

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/internal/dbfile"
)

// An open session the damaged file lost comes back from the backup unless
// its order is known to be billed (it closed after the backup: bringing it
// back would bill it twice); the order counter never goes back.
func TestSalvageSessions(t *testing.T) {
	c, err := newCodec()
	require.NoError(t, err)
	enc := func(order string) []byte {
		b, err := c.encode(&Session{Order: order, Periods: map[string]*Billed{}})
		require.NoError(t, err)
		return b
	}
	got := &dbfile.Contents{Buckets: map[string]map[string][]byte{}, Sequences: map[string]uint64{}}
	backup := &dbfile.Contents{Buckets: map[string]map[string][]byte{}, Sequences: map[string]uint64{}}
	backup.Bucket(string(bucketSessions))["P/1"] = enc("OPEN")
	backup.Bucket(string(bucketSessions))["P/2"] = enc("BILLED")
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], 41)
	backup.Bucket(string(bucketMeta))[string(keyOrderSeq)] = seq[:]
	SalvageSessions(got, backup, map[string]bool{"": true}, map[string]bool{"BILLED": true})
	s := got.Bucket(string(bucketSessions))
	assert.Contains(t, s, "P/1", "an open session the file lost comes back")
	assert.NotContains(t, s, "P/2", "a session whose order was billed does not")
	assert.EqualValues(t, 41+orderSeqMargin, binary.BigEndian.Uint64(got.Bucket(string(bucketMeta))[string(keyOrderSeq)]))
}

// Every order number issued since the oldest known one that nothing holds
// any more is named in the report, and the numbers a salvage skipped are
// not taken for lost by the next one.
func TestSalvageNamesUnaccountedOrders(t *testing.T) {
	c, err := newCodec()
	require.NoError(t, err)
	order := func(n int) string { return fmt.Sprintf("20261202080000%06d", n) }
	got := &dbfile.Contents{Buckets: map[string]map[string][]byte{}, Sequences: map[string]uint64{}}
	billed := map[string]bool{}
	for _, n := range []int{5, 6, 8} {
		billed[order(n)] = true
	}
	open, err := c.encode(&Session{Order: order(10), Periods: map[string]*Billed{}})
	require.NoError(t, err)
	got.Bucket(string(bucketSessions))["P/1"] = open
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], 12)
	got.Bucket(string(bucketMeta))[string(keyOrderSeq)] = seq[:]
	lines := SalvageSessions(got, nil, map[string]bool{"": true}, billed)
	t.Log(lines)
	require.Len(t, lines, 2)
	assert.Contains(t, lines[1], "not recovered: 4 order number(s) issued with nothing of them left, ending 000007, 000009, 000011, 000012:")

	// the board runs on from 100013 and bills 100013 and 100014; a second
	// damage and salvage does not count 13 to 100012 as lost
	next := &dbfile.Contents{Buckets: map[string]map[string][]byte{}, Sequences: map[string]uint64{}}
	billedNext := map[string]bool{}
	for _, n := range []int{5, 6, 7, 8, 9, 10, 11, 12, 100013, 100014} {
		billedNext[order(n)] = true
	}
	meta := next.Bucket(string(bucketMeta))
	for k, v := range got.Bucket(string(bucketMeta)) {
		meta[k] = v
	}
	binary.BigEndian.PutUint64(seq[:], 100014)
	meta[string(keyOrderSeq)] = seq[:]
	lines = SalvageSessions(next, nil, map[string]bool{"": true}, billedNext)
	t.Log(lines)
	assert.Contains(t, lines[1], "orders: every order number issued since the oldest one known (ending 000005) is accounted for")
	assert.Len(t, next.Bucket(string(bucketMeta))[string(keyOrderSkipped)], 32, "both salvages' margins remembered")
}
