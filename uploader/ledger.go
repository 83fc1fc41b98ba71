package uploader

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// Delivery states of a bill in the ledger.
const (
	LedgerPending   = "pending"   // queued, not yet accepted
	LedgerDelivered = "delivered" // the platform answered 1001
	LedgerParked    = "parked"    // rejected; waiting for `outbox retry`
)

// LedgerEntry is one closed session's bill and where its delivery stands.
type LedgerEntry struct {
	Record      Record     `json:"record"`
	Status      string     `json:"status"`
	Seqno       string     `json:"seqno,omitempty"`  // the platform's id of the accepting answer
	Reason      string     `json:"reason,omitempty"` // why it is parked, or the last failure
	Attempts    int        `json:"attempts"`         // every delivery attempt, retries included
	QueuedAt    time.Time  `json:"queued_at"`
	DeliveredAt *time.Time `json:"delivered_at"`
	// NoPlate: the station has parking-fee reduction and the bill has no
	// plate (it waited plates.final_wait for one, or could not).
	NoPlate bool `json:"no_plate,omitempty"`
}

func ledgerPutTx(tx *bbolt.Tx, e LedgerEntry) error {
	data, err := encodeLedger(e)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketLedger).Put([]byte(e.Record.Order), data)
}

// ledgerUpdateTx applies f to the entry of r's order, if the ledger has it.
// An entry that no longer decodes is rebuilt from r: the ledger only
// reports, and must never hold up the delivery it reports on.
func ledgerUpdateTx(tx *bbolt.Tx, r Record, f func(*LedgerEntry)) error {
	v := tx.Bucket(bucketLedger).Get([]byte(r.Order))
	if v == nil {
		return nil // pruned, or queued by a version without a ledger
	}
	e, err := decodeLedger(v)
	if err != nil {
		e = LedgerEntry{Record: r, Status: LedgerPending}
	}
	f(&e)
	return ledgerPutTx(tx, e)
}

// Ledger returns the bills of sessions that ended in [since, until) (zero
// times: unbounded), by order.
func (o *Outbox) Ledger(since, until time.Time) ([]LedgerEntry, error) {
	out := []LedgerEntry{}
	err := o.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketLedger).ForEach(func(k, v []byte) error {
			e, err := decodeLedger(v)
			if err != nil {
				return fmt.Errorf("ledger entry of order %s: %w", k, err)
			}
			end := e.Record.EndTime
			if (!since.IsZero() && end.Before(since)) || (!until.IsZero() && !end.Before(until)) {
				return nil
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// LedgerPage is Ledger a page at a time: at most limit bills after the
// order after ("" from the start), and the order to continue after when
// there are more ("" when not). A page reads no more than it returns, plus
// the bills outside [since, until) it skips.
func (o *Outbox) LedgerPage(since, until time.Time, after string, limit int) (out []LedgerEntry, next string, err error) {
	out = []LedgerEntry{}
	err = o.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketLedger).Cursor()
		k, v := c.First()
		if after != "" {
			if k, v = c.Seek([]byte(after)); k != nil && string(k) == after {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			e, err := decodeLedger(v)
			if err != nil {
				return fmt.Errorf("ledger entry of order %s: %w", k, err)
			}
			end := e.Record.EndTime
			if (!since.IsZero() && end.Before(since)) || (!until.IsZero() && !end.Before(until)) {
				continue
			}
			if len(out) == limit {
				next = out[len(out)-1].Record.Order
				return nil
			}
			out = append(out, e)
		}
		return nil
	})
	return out, next, err
}

// LedgerLast returns up to n bills, the most recently started first.
func (o *Outbox) LedgerLast(n int) ([]LedgerEntry, error) {
	out := []LedgerEntry{}
	err := o.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketLedger).Cursor()
		for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
			e, err := decodeLedger(v)
			if err != nil {
				return fmt.Errorf("ledger entry of order %s: %w", k, err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// PruneLedger drops bills of sessions that ended before cutoff. It reads in
// one read-only transaction and deletes in small write transactions, so the
// poll loop's commits never wait long behind it.
func (o *Outbox) PruneLedger(ctx context.Context, cutoff time.Time) (int, error) {
	var old [][]byte
	err := o.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketLedger).ForEach(func(k, v []byte) error {
			e, err := decodeLedger(v)
			if err == nil && e.Record.EndTime.Before(cutoff) && e.Status != LedgerPending && e.Status != LedgerParked {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	return o.inChunks(ctx, bucketLedger, old, func(b *bbolt.Bucket, k []byte) error { return b.Delete(k) })
}
