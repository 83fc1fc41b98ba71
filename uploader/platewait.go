package uploader

import (
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// PlateWaits are the bills waiting for a plate now, by port: port -> order.
func (o *Outbox) PlateWaits(now time.Time) (map[string]string, error) {
	out := map[string]string{}
	err := o.db.View(func(tx *bbolt.Tx) error {
		box := tx.Bucket(bucketOutbox)
		return tx.Bucket(bucketPlateWait).ForEach(func(port, key []byte) error {
			v := box.Get(key)
			if v == nil {
				return nil
			}
			e, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("bill waiting at port %s: %w", port, err)
			}
			if e.PlateWait && e.NextAttempt.After(now) && e.Record.Plate == "" {
				out[string(port)] = e.Record.Order
			}
			return nil
		})
	})
	return out, err
}
