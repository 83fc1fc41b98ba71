package session

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/internal/dbfile"
)

// An open session the damaged file lost comes back from the backup unless
// its order is known to be billed (it closed after the backup: bringing it
// back would bill it twice); the order counter never goes back.
func TestSalvageRuleSessions(t *testing.T) {
	c, err := newCodec()
	require.NoError(t, err)
	enc := func(order string) []byte {
		b, err := c.encode(&Session{Order: order, Periods: map[string]*Billed{}})
		require.NoError(t, err)
		return b
	}
	got := &dbfile.Contents{Buckets: map[string]map[string][]byte{}, Sequences: map[string]uint64{}, Closed: map[string]bool{"BILLED": true}}
	backup := &dbfile.Contents{Buckets: map[string]map[string][]byte{}, Sequences: map[string]uint64{}, Closed: map[string]bool{}}
	backup.Bucket(string(bucketSessions))["P/1"] = enc("OPEN")
	backup.Bucket(string(bucketSessions))["P/2"] = enc("BILLED")
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], 41)
	backup.Bucket(string(bucketMeta))[string(keyOrderSeq)] = seq[:]
	SalvageRule(got, backup, map[string]bool{"": true})
	s := got.Bucket(string(bucketSessions))
	assert.Contains(t, s, "P/1", "an open session the file lost comes back")
	assert.NotContains(t, s, "P/2", "a session whose order was billed does not")
	assert.EqualValues(t, 41+orderSeqMargin, binary.BigEndian.Uint64(got.Bucket(string(bucketMeta))[string(keyOrderSeq)]))
}
