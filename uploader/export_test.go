package uploader

import (
	"time"

	"go.etcd.io/bbolt"
)

// Enqueue commits one record (fsync) on its own.
func (o *Outbox) Enqueue(r Record) error {
	if err := o.db.Update(func(tx *bbolt.Tx) error { return o.EnqueueTx(tx, r) }); err != nil {
		return err
	}
	o.Notify()
	return nil
}

func (o *Outbox) EnqueueAwaitingPlate(port string, r Record, until time.Time) error {
	if err := o.db.Update(func(tx *bbolt.Tx) error { return o.EnqueueAwaitingPlateTx(tx, port, r, until) }); err != nil {
		return err
	}
	o.Notify()
	return nil
}
