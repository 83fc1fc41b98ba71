package uploader

import (
	"encoding/json"
	"errors"
	"time"

	"go.etcd.io/bbolt"
)

// EnqueueAwaitingPlateTx queues a bill that has no plate, held until until
// for one: a plate read for port meanwhile (AttachPlate) goes on it and
// releases it; at until it is sent as it is. The hold is stored with the
// record, so a restart during the wait loses nothing.
func (o *Outbox) EnqueueAwaitingPlateTx(tx *bbolt.Tx, port string, r Record, until time.Time) error {
	seq, err := o.enqueueTx(tx, r, Entry{NextAttempt: until, PlateWait: true}, true)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketPlateWait).Put([]byte(port), seqKey(seq))
}

// ErrNoBillWaiting: no bill of the port is waiting for a plate (none was
// held, or its wait is over and it has gone without).
var ErrNoBillWaiting = errors.New("no bill of this port is waiting for a plate")

// AttachPlate puts plate (from source) on the bill of port that waits for
// one and releases it at once; it returns the bill's order. A bill whose
// wait is over is left alone: it may be on its way without.
func (o *Outbox) AttachPlate(port, plate, source string, now time.Time) (string, error) {
	order, stale := "", false
	err := o.db.Update(func(tx *bbolt.Tx) error {
		waits := tx.Bucket(bucketPlateWait)
		key := waits.Get([]byte(port))
		if key == nil {
			stale = true
			return nil
		}
		key = append([]byte(nil), key...)
		box := tx.Bucket(bucketOutbox)
		var e Entry
		if v := box.Get(key); v != nil {
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
		}
		if !e.PlateWait || !e.NextAttempt.After(now) || e.Record.Plate != "" {
			// sent, or on its way without: forget the wait (committed,
			// unlike a returned error)
			stale = true
			return waits.Delete([]byte(port))
		}
		e.Record.Plate, e.Record.PlateSource = plate, source
		e.PlateWait, e.NextAttempt = false, time.Time{}
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := box.Put(key, data); err != nil {
			return err
		}
		if err := ledgerUpdateTx(tx, e.Record, func(l *LedgerEntry) {
			l.Record.Plate, l.Record.PlateSource, l.NoPlate = plate, source, false
		}); err != nil {
			return err
		}
		order = e.Record.Order
		return waits.Delete([]byte(port))
	})
	switch {
	case err != nil:
		return "", err
	case stale:
		return "", ErrNoBillWaiting
	}
	o.Notify()
	return order, nil
}
