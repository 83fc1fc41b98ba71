package uploader_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"pilebridge/internal/dbfile"
	"pilebridge/internal/station"
	"pilebridge/uploader"
)

// Issue 26, item 3: salvage uses every copy the file holds. A database with
// bills pending, one delivered and the ledger, as the outbox writes them;
// then each page in turn destroyed (and random pairs): every pending bill
// that a page still holds whole (its record's bytes are in the damaged file)
// is queued after salvage, every one that is not is named as lost, and the
// delivered bill is never named as lost. The copies are found by the test
// in the raw bytes, not by the salvage code.
func TestSalvageEveryPageDestroyed(t *testing.T) {
	src := t.TempDir()
	opts := &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}
	db, err := dbfile.Open(src, opts)
	require.NoError(t, err)
	box, err := uploader.NewOutbox(db, 1000, zerolog.Nop())
	require.NoError(t, err)
	t0 := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
	var orders []string
	for i := 0; i < 6; i++ {
		o := fmt.Sprintf("20261204090%d00T000%03d", i, i+1)
		orders = append(orders, o)
		require.NoError(t, box.Enqueue(uploader.Record{Kind: uploader.KindProgress, Order: o, Seq: 1, StartTime: t0, EndTime: t0, QuantityWh: 1, State: uploader.StateCharging}))
		require.NoError(t, box.Enqueue(uploader.Record{Kind: uploader.KindFinal, Order: o, Seq: 2, StartTime: t0, EndTime: t0.Add(time.Hour), QuantityWh: int64(100 + i), State: uploader.StateFinished}))
	}
	due, _, err := box.Due(t0, 100)
	require.NoError(t, err)
	results := make([]uploader.Result, len(due))
	for i, e := range due {
		if e.Record.Order != orders[0] {
			results[i].Err = fmt.Errorf("platform down")
		}
	}
	require.NoError(t, box.Settle(due, results, t0)) // the first order's records delivered
	require.NoError(t, db.Close())
	orig, err := os.ReadFile(dbfile.Paths{Dir: src}.DB())
	require.NoError(t, err)
	const pageSize = 4096
	pages := len(orig) / pageSize

	run := func(t *testing.T, destroy []int) {
		dir := t.TempDir()
		damaged := bytes.Clone(orig)
		for _, pg := range destroy {
			copy(damaged[pg*pageSize:(pg+1)*pageSize], make([]byte, pageSize))
		}
		p := dbfile.Paths{Dir: dir}
		require.NoError(t, os.WriteFile(p.DB(), damaged, 0o600))
		require.NoError(t, os.WriteFile(p.Marker(), nil, 0o600))
		rep, err := station.Salvage(dir, t0.Add(time.Hour))
		require.NoError(t, err)
		said := strings.Join(rep.Lines, "\n")
		db, err := dbfile.Open(dir, opts)
		require.NoError(t, err, "%s", said)
		defer db.Close()
		box, err := uploader.NewOutbox(db, 1000, zerolog.Nop())
		require.NoError(t, err)
		pending, parked, _, err := box.List(true)
		require.NoError(t, err)
		queued := map[string]bool{}
		for _, e := range append(pending, parked...) {
			if e.Record.Kind == uploader.KindFinal {
				queued[e.Record.Order] = true
			}
		}
		for _, o := range orders[1:] {
			whole := bytes.Contains(damaged, []byte(`{"kind":"final","order":"`+o+`"`))
			switch {
			case whole:
				require.True(t, queued[o], "pages %v destroyed: bill %s is still whole in the file, and not queued:\n%s", destroy, o, said)
			case !queued[o]:
				require.Contains(t, said, o[len(o)-6:], "pages %v destroyed: bill %s lost, and not named:\n%s", destroy, o, said)
			}
		}
		for _, l := range rep.Lines {
			if strings.HasPrefix(l, "not recovered") {
				require.NotContains(t, l, orders[0], "the delivered bill is not reported lost")
				require.NotContains(t, l, " "+orders[0][len(orders[0])-6:], "the delivered bill is not reported lost")
			}
		}
	}
	// both meta pages: bbolt cannot open the file at all (the board's
	// salvage step damages it so)
	t.Run("meta pages 0 and 1", func(t *testing.T) { run(t, []int{0, 1}) })
	for pg := 2; pg < pages; pg++ {
		t.Run(fmt.Sprintf("page %d", pg), func(t *testing.T) { run(t, []int{pg}) })
	}
	rng := rand.New(rand.NewPCG(20261204, 1))
	for i := 0; i < 20; i++ {
		a, b := 2+rng.IntN(pages-2), 2+rng.IntN(pages-2)
		pair := []int{min(a, b), max(a, b)}
		if a == b {
			continue
		}
		t.Run(fmt.Sprintf("pages %v", pair), func(t *testing.T) { run(t, slices.Clone(pair)) })
	}
}

// The newest root page destroyed in a small database: the previous
// transaction's tree (behind the other meta page) and the bucket's own
// leaf still hold the pending bill; it is recovered every time (before: 0
// of 1).
func TestSalvageNewestRootDestroyed(t *testing.T) {
	for i := 0; i < 10; i++ {
		src := t.TempDir()
		opts := &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}
		db, err := dbfile.Open(src, opts)
		require.NoError(t, err)
		box, err := uploader.NewOutbox(db, 1000, zerolog.Nop())
		require.NoError(t, err)
		t0 := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
		order := fmt.Sprintf("20261204090000T%06d", i+1)
		require.NoError(t, box.Enqueue(uploader.Record{Kind: uploader.KindFinal, Order: order, Seq: 1, StartTime: t0, EndTime: t0.Add(time.Hour), QuantityWh: 321, State: uploader.StateFinished}))
		require.NoError(t, box.Enqueue(uploader.Record{Kind: uploader.KindProgress, Order: "20261204100000T999999", Seq: 1, StartTime: t0, EndTime: t0, QuantityWh: 1, State: uploader.StateCharging}))
		require.NoError(t, db.Close())
		p := dbfile.Paths{Dir: src}
		data, err := os.ReadFile(p.DB())
		require.NoError(t, err)
		// the meta page with the higher transaction id, and its root page
		const pageSize = 4096
		root, txid := uint64(0), uint64(0)
		for _, off := range []int{0, pageSize} {
			m := data[off+16:]
			if tx := binary.LittleEndian.Uint64(m[48:]); tx >= txid {
				txid, root = tx, binary.LittleEndian.Uint64(m[16:])
			}
		}
		copy(data[int(root)*pageSize:int(root+1)*pageSize], make([]byte, pageSize))
		require.NoError(t, os.WriteFile(p.DB(), data, 0o600))
		rep, err := station.Salvage(src, t0.Add(time.Hour))
		require.NoError(t, err)
		db, err = dbfile.Open(src, opts)
		require.NoError(t, err)
		box, err = uploader.NewOutbox(db, 1000, zerolog.Nop())
		require.NoError(t, err)
		pending, _, _, err := box.List(false)
		require.NoError(t, err)
		require.NoError(t, db.Close())
		found := false
		for _, e := range pending {
			found = found || e.Record.Order == order && e.Record.Kind == uploader.KindFinal && e.Record.QuantityWh == 321
		}
		require.True(t, found, "run %d: root page %d destroyed: the bill is recovered:\n%s", i, root, strings.Join(rep.Lines, "\n"))
	}
}
