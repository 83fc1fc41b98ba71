package uploader_test

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/simulator"
	"pilebridge/uploader"
)

func platesAt(t *testing.T, si *standIn) map[string]string {
	out := map[string]string{}
	for _, r := range si.plat.Received(simulator.PathReplenish) {
		var m struct {
			Order string `json:"order"`
			Plate string `json:"plate"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &m))
		out[m.Order] = m.Plate
	}
	return out
}

// A bill held for a plate is not sent during the wait, survives a restart,
// takes a plate that comes (and goes at once), or goes without when the
// wait is over; its ledger entry says "no plate" until it has one. A bill
// gone without is not given a plate afterwards.
func TestBillWaitsForAPlate(t *testing.T) {
	si := newStandIn(t)
	path := filepath.Join(t.TempDir(), "db")
	r := openRig(t, path, si.url(), 0)
	r.start()
	require.NoError(t, r.box.EnqueueAwaitingPlate("D1/1", rec("WAIT", uploader.KindFinal, 10), time.Now().Add(time.Hour)))
	require.NoError(t, r.box.EnqueueAwaitingPlate("D1/2", rec("LATE", uploader.KindFinal, 20), time.Now().Add(800*time.Millisecond)))
	require.NoError(t, r.box.Enqueue(rec("OTHER", uploader.KindFinal, 30)))
	waitFor(t, "the bill that does not wait", func() bool { return len(si.byOrder()["OTHER"]) == 1 })
	assert.NotContains(t, si.byOrder(), "WAIT", "held for its plate")
	l, err := r.box.Ledger(time.Time{}, time.Time{})
	require.NoError(t, err)
	for _, e := range l {
		if e.Record.Order == "WAIT" {
			assert.True(t, e.NoPlate, "the ledger says no plate while it waits")
		}
	}

	// a restart during the wait
	r.stop()
	r = openRig(t, path, si.url(), 0)
	defer r.stop()
	r.start()
	time.Sleep(300 * time.Millisecond)
	assert.NotContains(t, si.byOrder(), "WAIT", "still held after the restart")

	order, err := r.box.AttachPlate("D1/1", "川AD66011", "camera", "", time.Now())
	require.NoError(t, err)
	assert.Equal(t, "WAIT", order)
	waitFor(t, "the held bill, with its plate", func() bool { return len(si.byOrder()["WAIT"]) == 1 })
	assert.Equal(t, "川AD66011", platesAt(t, si)["WAIT"])

	waitFor(t, "the bill whose wait ran out", func() bool { return len(si.byOrder()["LATE"]) == 1 })
	assert.Empty(t, platesAt(t, si)["LATE"], "sent without")
	_, err = r.box.AttachPlate("D1/2", "川A12345", "camera", "", time.Now())
	assert.ErrorIs(t, err, uploader.ErrNoBillWaiting, "too late for a bill that went")
	_, err = r.box.AttachPlate("D1/9", "川A12345", "camera", "", time.Now())
	assert.ErrorIs(t, err, uploader.ErrNoBillWaiting)

	got := map[string]uploader.LedgerEntry{}
	// the platform has them; the outbox records its answers just after
	waitFor(t, "the deliveries recorded", func() bool {
		l, err := r.box.Ledger(time.Time{}, time.Time{})
		require.NoError(t, err)
		for _, e := range l {
			got[e.Record.Order] = e
		}
		return got["WAIT"].Status == uploader.LedgerDelivered && got["LATE"].Status == uploader.LedgerDelivered
	})
	assert.False(t, got["WAIT"].NoPlate)
	assert.Equal(t, "川AD66011", got["WAIT"].Record.Plate)
	assert.Equal(t, "camera", got["WAIT"].Record.PlateSource)
	assert.True(t, got["LATE"].NoPlate, "the ledger marks it no plate")
}
