package session_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"pilebridge/session"
	"pilebridge/uploader"
)

// openStore opens a database at path as the daemon does: the outbox and
// the session store on one bbolt file, with a translator for ports.
func openStore(tb testing.TB, path string, opts *bbolt.Options, ports map[string]uploader.Port) (*bbolt.DB, *uploader.Outbox, *session.Store) {
	tb.Helper()
	db, err := bbolt.Open(path, 0o600, opts)
	if err != nil {
		tb.Fatal(err)
	}
	box, err := uploader.NewOutbox(db, 100_000, zerolog.Nop())
	if err != nil {
		tb.Fatal(err)
	}
	st, err := session.NewStore(db, &uploader.Translator{Outbox: box, Ports: ports}, time.UTC, "")
	if err != nil {
		tb.Fatal(err)
	}
	return db, box, st
}

func TestStoreCommitsSessionWithRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	box, err := uploader.NewOutbox(db, 100_000, zerolog.Nop())
	require.NoError(t, err)
	loc, _ := time.LoadLocation("Asia/Shanghai")
	sink := &uploader.Translator{Outbox: box, Ports: map[string]uploader.Port{"D1/1": {DeviceNo: "D1", PortNo: "1", EnergyCode: "CN_AC"}}, LocalUserID: "u"}
	st, err := session.NewStore(db, sink, loc, "B2")
	require.NoError(t, err)

	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		o := st.NextOrder(time.Date(2026, 3, 14, 4, 0, 0, 0, time.UTC))
		assert.False(t, seen[o], "order %s repeated", o)
		seen[o] = true
		assert.LessOrEqual(t, len(o), 32)
		assert.Regexp(t, `^20260314120000B2\d{6}$`, o)
	}
	s := &session.Session{Order: "X1", Periods: map[string]*session.Billed{"flat@00:00": {Type: "flat", MWh: 42_000}}}
	s.Energy.CountedMWh = 42_000
	require.NoError(t, st.Commit("D1/1", s, nil))
	require.NoError(t, db.Close())

	// a new process finds the session and the counter where they were
	db, err = bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	defer db.Close()
	box, _ = uploader.NewOutbox(db, 100_000, zerolog.Nop())
	sink.Outbox = box
	st, _ = session.NewStore(db, sink, loc, "B2")
	open, err := st.Open()
	require.NoError(t, err)
	require.Contains(t, open, "D1/1")
	assert.EqualValues(t, 42, open["D1/1"].QuantityWh())
	o := st.NextOrder(time.Date(2026, 3, 14, 4, 0, 0, 0, time.UTC))
	assert.False(t, seen[o])

	require.NoError(t, st.Commit("D1/1", nil, []session.Event{{Kind: session.EventClosed, Reason: session.ReasonCompleted, Order: "X1", QuantityWh: 42}}))
	open, _ = st.Open()
	assert.Empty(t, open)
	pending, _, _, err := box.List(false)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	assert.EqualValues(t, 42, pending[0].Record.QuantityWh)
	assert.Equal(t, uploader.StateFinished, pending[0].Record.State)
	assert.Equal(t, "D1", pending[0].Record.DeviceNo)
}

// Ports committing at the same moment share transactions; every session and
// every event is on disk when Commit returns, and survives a reopen.
func TestConcurrentCommitsAllLand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	box, err := uploader.NewOutbox(db, 100_000, zerolog.Nop())
	require.NoError(t, err)
	ports := map[string]uploader.Port{}
	for i := 0; i < 64; i++ {
		ports[fmt.Sprintf("P%d/1", i)] = uploader.Port{DeviceNo: fmt.Sprintf("P%d", i), PortNo: "1", EnergyCode: "CN_AC"}
	}
	st, err := session.NewStore(db, &uploader.Translator{Outbox: box, Ports: ports, LocalUserID: "u"}, time.UTC, "")
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("P%d/1", i)
			for k := 1; k <= 5; k++ {
				s := &session.Session{Order: fmt.Sprintf("O%d", i), Periods: map[string]*session.Billed{}}
				s.Energy.CountedMWh = int64(k * 1000)
				var evs []session.Event
				if k == 5 {
					evs = []session.Event{{Kind: session.EventClosed, Reason: session.ReasonCompleted, Order: s.Order, QuantityWh: 5}}
					s = nil // closed: removed with its bill in the same transaction
				}
				assert.NoError(t, st.Commit(key, s, evs))
			}
		}()
	}
	wg.Wait()
	require.NoError(t, db.Close())
	db, err = bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	defer db.Close()
	box, err = uploader.NewOutbox(db, 100_000, zerolog.Nop())
	require.NoError(t, err)
	st, err = session.NewStore(db, &uploader.Translator{Outbox: box, Ports: ports}, time.UTC, "")
	require.NoError(t, err)
	open, err := st.Open()
	require.NoError(t, err)
	assert.Empty(t, open, "every session closed")
	pending, _, _, err := box.List(false)
	require.NoError(t, err)
	assert.Len(t, pending, 64, "every bill")
}

// Order numbers are issued without a write (a session must open even when
// the store refuses writes), so a restart may issue again a number that was
// never committed. The rule that keeps the platform's orders unique: a
// number leaves the board only in a committed record, and every commit
// saves the counter. Random runs of issue / commit / restart, all at the
// same start second (a board whose clock repeats after each boot): no
// committed order is ever issued twice.
func TestOrderNumbersUniqueAcrossRestartsWithoutWrites(t *testing.T) {
	ports := map[string]uploader.Port{}
	for i := 0; i < 4; i++ {
		ports[fmt.Sprintf("P%d/1", i)] = uploader.Port{DeviceNo: fmt.Sprintf("P%d", i), PortNo: "1", EnergyCode: "CN_AC"}
	}
	start := time.Date(2000, 1, 1, 0, 0, 5, 0, time.UTC)
	fast := &bbolt.Options{NoSync: true} // the rule is about numbers, not fsyncs
	for seed := uint64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		path := filepath.Join(t.TempDir(), "db")
		db, _, st := openStore(t, path, fast, ports)
		db.MaxBatchDelay = 0
		committed := map[string]bool{}
		for step := 0; step < 300; step++ {
			switch k := rng.IntN(10); {
			case k < 6: // a port opens a session; its commit may fail (not made)
				o := st.NextOrder(start)
				if rng.IntN(3) == 0 {
					continue // the store refused the write: the number stays on the board
				}
				require.False(t, committed[o], "seed %d: committed order %s issued again", seed, o)
				port := fmt.Sprintf("P%d/1", rng.IntN(4))
				require.NoError(t, st.Commit(port, &session.Session{Order: o, Periods: map[string]*session.Billed{}}, nil))
				committed[o] = true
			case k < 9: // another port's commit with nothing new
				require.NoError(t, st.Commit("P0/1", nil, nil))
			default: // restart
				require.NoError(t, db.Close())
				db, _, st = openStore(t, path, fast, ports)
				db.MaxBatchDelay = 0
			}
		}
		require.NoError(t, db.Close())
	}
}
