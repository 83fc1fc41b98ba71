package session

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"pilebridge/uploader"
)

func TestStoreCommitsSessionWithRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	box, err := uploader.NewOutbox(db, 0, zerolog.Nop())
	require.NoError(t, err)
	loc, _ := time.LoadLocation("Asia/Shanghai")
	st, err := NewStore(db, box, loc, "B2")
	require.NoError(t, err)

	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		o, err := st.NextOrder(time.Date(2026, 3, 14, 4, 0, 0, 0, time.UTC))
		require.NoError(t, err)
		assert.False(t, seen[o], "order %s repeated", o)
		seen[o] = true
		assert.LessOrEqual(t, len(o), 32)
		assert.Regexp(t, `^20260314120000B2\d{6}$`, o)
	}
	s := &Session{Order: "X1", Quantity: 42, Periods: map[string]*Billed{"flat@00:00": {Type: "flat", Wh: 42}}}
	require.NoError(t, st.Commit("D1/1", s, nil))
	require.NoError(t, db.Close())

	// a new process finds the session and the counter where they were
	db, err = bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	defer db.Close()
	box, _ = uploader.NewOutbox(db, 0, zerolog.Nop())
	st, _ = NewStore(db, box, loc, "B2")
	open, err := st.Open()
	require.NoError(t, err)
	require.Contains(t, open, "D1/1")
	assert.EqualValues(t, 42, open["D1/1"].Quantity)
	o, _ := st.NextOrder(time.Date(2026, 3, 14, 4, 0, 0, 0, time.UTC))
	assert.False(t, seen[o])

	require.NoError(t, st.Commit("D1/1", nil, []uploader.Record{{Kind: uploader.KindFinal, Order: "X1", QuantityWh: 42}}))
	open, _ = st.Open()
	assert.Empty(t, open)
	pending, _, _, err := box.List(false)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	assert.EqualValues(t, 42, pending[0].Record.QuantityWh)
}
