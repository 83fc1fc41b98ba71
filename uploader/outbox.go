package uploader

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/bbolt"
)

const keepDelivered = 500

// Entry is a record in the outbox with its delivery history.
type Entry struct {
	Seq         uint64    `json:"seq"`
	Record      Record    `json:"record"`
	EnqueuedAt  time.Time `json:"enqueued_at"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	DoneAt      time.Time `json:"done_at,omitzero"`
	// PlateWait: a bill held until NextAttempt for a plate (plates.final_wait).
	PlateWait bool `json:"plate_wait,omitempty"`
}

// Outbox is the durable queue of charging records, in the daemon's bbolt file.
type Outbox struct {
	db         *bbolt.DB
	log        zerolog.Logger
	maxRecords int
	kick       chan struct{}
}

// NewOutbox creates the buckets. maxRecords bounds the pending queue: past it
// the oldest progress records are dropped (finals never are).
func NewOutbox(db *bbolt.DB, maxRecords int, log zerolog.Logger) (*Outbox, error) {
	if maxRecords <= 0 {
		return nil, fmt.Errorf("outbox: outbox_max_records must be set")
	}
	buckets := [][]byte{bucketOutbox, bucketProgIdx, bucketParked, bucketDelivered, bucketOutMeta, bucketClosed, bucketLedger, bucketPlateWait}
	var err error
	if db.IsReadOnly() {
		// a reader (sessions, outbox list) of a database the daemon made
		err = db.View(func(tx *bbolt.Tx) error {
			for _, b := range buckets {
				if tx.Bucket(b) == nil {
					return fmt.Errorf("no %s bucket: the daemon has not run on this database yet", b)
				}
			}
			return nil
		})
	} else {
		err = db.Update(func(tx *bbolt.Tx) error {
			for _, b := range buckets {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return &Outbox{db: db, log: log, maxRecords: maxRecords, kick: make(chan struct{}, 1)}, nil
}

// addCount adjusts the pending count kept beside the queue.
func addCount(tx *bbolt.Tx, d int64) (int64, error) {
	b := tx.Bucket(bucketOutMeta)
	var n int64
	if v := b.Get(keyCount); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n += d
	if n < 0 {
		n = 0
	}
	return n, b.Put(keyCount, seqKey(uint64(n)))
}

// EnqueueTx adds a record inside the caller's transaction. An unsent progress
// record of the same order is replaced: only the newest progress matters.
func (o *Outbox) EnqueueTx(tx *bbolt.Tx, r Record) error {
	_, err := o.enqueueTx(tx, r, Entry{}, false)
	return err
}

// enqueueTx queues r with the fields of tmpl (a hold), noting in the ledger
// that the bill has no plate when noPlate.
func (o *Outbox) enqueueTx(tx *bbolt.Tx, r Record, tmpl Entry, noPlate bool) (uint64, error) {
	box, idx := tx.Bucket(bucketOutbox), tx.Bucket(bucketProgIdx)
	seq, err := box.NextSequence()
	if err != nil {
		return 0, err
	}
	added := int64(1)
	if old := idx.Get([]byte(r.Order)); old != nil && r.Kind == KindProgress {
		if box.Get(old) != nil {
			if err := box.Delete(old); err != nil {
				return 0, err
			}
			added--
		}
		if err := idx.Delete([]byte(r.Order)); err != nil {
			return 0, err
		}
	}
	now := time.Now().UTC()
	e := tmpl
	e.Seq, e.Record, e.EnqueuedAt = seq, r, now
	data, err := encodeEntry(e)
	if err != nil {
		return 0, err
	}
	if err := box.Put(seqKey(seq), data); err != nil {
		return 0, err
	}
	if r.Kind == KindProgress {
		if err := idx.Put([]byte(r.Order), seqKey(seq)); err != nil {
			return 0, err
		}
	} else {
		v := append(seqKey(seq), seqKey(uint64(now.Unix()))...)
		if err := tx.Bucket(bucketClosed).Put([]byte(r.Order), v); err != nil {
			return 0, err
		}
		if err := ledgerPutTx(tx, LedgerEntry{Record: r, Status: LedgerPending, QueuedAt: now, NoPlate: noPlate}); err != nil {
			return 0, err
		}
	}
	n, err := addCount(tx, added)
	if err != nil {
		return 0, err
	}
	if n > int64(o.maxRecords) {
		return seq, o.trimTx(tx, n)
	}
	return seq, nil
}

// trimTx drops the oldest progress records until the queue fits.
func (o *Outbox) trimTx(tx *bbolt.Tx, n int64) error {
	box, idx := tx.Bucket(bucketOutbox), tx.Bucket(bucketProgIdx)
	var drop [][]byte
	var orders []string
	c := box.Cursor()
	for k, v := c.First(); k != nil && n-int64(len(drop)) > int64(o.maxRecords); k, v = c.Next() {
		e, err := decodeEntry(v)
		if err == nil && e.Record.Kind == KindProgress {
			drop = append(drop, append([]byte(nil), k...))
			orders = append(orders, e.Record.Order)
		}
	}
	for i, k := range drop {
		if err := box.Delete(k); err != nil {
			return err
		}
		if cur := idx.Get([]byte(orders[i])); cur != nil && string(cur) == string(k) {
			if err := idx.Delete([]byte(orders[i])); err != nil {
				return err
			}
		}
	}
	if len(drop) > 0 {
		if _, err := addCount(tx, -int64(len(drop))); err != nil {
			return err
		}
		o.log.Warn().Int("dropped_progress", len(drop)).Int("limit", o.maxRecords).Msg("outbox full: dropped the oldest progress records (finals are kept)")
	}
	return nil
}

// Queued is signalled when a record was queued (Notify): the sender waits
// on it between rounds.
func (o *Outbox) Queued() <-chan struct{} { return o.kick }

// Notify wakes the sender.
func (o *Outbox) Notify() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// Counts is what the outbox holds, read from the store: it survives a
// restart, so a parked bill is never out of sight.
type Counts struct {
	Pending, Parked             int64
	OldestPending, OldestParked time.Time // zero when none
	OldestPendingBill           time.Time // the oldest final or start-failure record waiting; zero when none
}

// Counts reads the pending and parked totals and the oldest of each.
func (o *Outbox) Counts() (c Counts, err error) {
	err = o.db.View(func(tx *bbolt.Tx) error {
		c.Pending = pendingTx(tx)
		parked := tx.Bucket(bucketParked)
		c.Parked = int64(parked.Stats().KeyN)
		oldest := func(b *bbolt.Bucket) (time.Time, error) {
			_, v := b.Cursor().First() // keys are enqueue sequence numbers
			if v == nil {
				return time.Time{}, nil
			}
			e, err := decodeEntry(v)
			return e.EnqueuedAt, err
		}
		if c.OldestPending, err = oldest(tx.Bucket(bucketOutbox)); err != nil {
			return err
		}
		// in sequence order the first bill is the oldest; only progress
		// records (one per open order) can come before it
		cur := tx.Bucket(bucketOutbox).Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			e, err := decodeEntry(v)
			if err != nil {
				return err
			}
			if e.Record.Terminal() {
				c.OldestPendingBill = e.EnqueuedAt
				break
			}
		}
		c.OldestParked, err = oldest(parked)
		return err
	})
	return c, err
}

// List returns entries: pending, parked, and (all) recently delivered.
func (o *Outbox) List(all bool) (pending, parked, delivered []Entry, err error) {
	pending, parked, delivered, _, err = o.ListPage(all, 0, math.MaxInt)
	return pending, parked, delivered, err
}

// ListPage is List a page at a time: the entries of every list whose
// sequence number lies in (after, next], at most limit of each, and next to
// continue after (0 when nothing is left). Sequence numbers are shared by
// the lists, so a page cut where the first full list ends skips nothing
// and repeats nothing.
func (o *Outbox) ListPage(all bool, after uint64, limit int) (pending, parked, delivered []Entry, next uint64, err error) {
	err = o.db.View(func(tx *bbolt.Tx) error {
		read := func(name []byte, out *[]Entry) error {
			*out = []Entry{}
			if after == math.MaxUint64 {
				return nil // past every sequence number (after+1 would wrap to the first)
			}
			c := tx.Bucket(name).Cursor()
			for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
				if len(*out) == limit {
					if last := (*out)[len(*out)-1].Seq; next == 0 || last < next {
						next = last
					}
					return nil
				}
				e, err := decodeEntry(v)
				if err != nil {
					return err
				}
				*out = append(*out, e)
			}
			return nil
		}
		if err := read(bucketOutbox, &pending); err != nil {
			return err
		}
		if err := read(bucketParked, &parked); err != nil {
			return err
		}
		delivered = []Entry{}
		if all {
			if err := read(bucketDelivered, &delivered); err != nil {
				return err
			}
		}
		if next > 0 {
			upTo := func(es []Entry) []Entry {
				for i, e := range es {
					if e.Seq > next {
						return es[:i]
					}
				}
				return es
			}
			pending, parked, delivered = upTo(pending), upTo(parked), upTo(delivered)
		}
		return nil
	})
	return
}

// closedKeep is how long an order's terminal record is remembered, so that
// a parked progress record of it is never requeued after its bill.
const closedKeep = 90 * 24 * time.Hour

// Requeue moves parked entries (of one order, or all when order is "") back
// to the queue under their original sequence numbers, so order is kept. A
// parked progress record whose order has a later final or start-failure
// record is dropped instead: sent now, it would turn a billed session back
// to "charging" on the platform, where the latest record wins.
func (o *Outbox) Requeue(order string) (requeued, dropped int, err error) {
	err = o.db.Update(func(tx *bbolt.Tx) error {
		parked, box, closed := tx.Bucket(bucketParked), tx.Bucket(bucketOutbox), tx.Bucket(bucketClosed)
		type move struct {
			key, val []byte
			rec      Record
			drop     bool
		}
		var moves []move
		if err := parked.ForEach(func(k, v []byte) error {
			e, err := decodeEntry(v)
			if err != nil {
				return err
			}
			if order != "" && e.Record.Order != order {
				return nil
			}
			if c := closed.Get([]byte(e.Record.Order)); e.Record.Kind == KindProgress && len(c) == 16 && binary.BigEndian.Uint64(c) > e.Seq {
				moves = append(moves, move{key: append([]byte(nil), k...), drop: true})
				return nil
			}
			e.Attempts, e.NextAttempt, e.LastError, e.DoneAt = 0, time.Time{}, "", time.Time{}
			data, err := encodeEntry(e)
			if err != nil {
				return err
			}
			moves = append(moves, move{key: append([]byte(nil), k...), val: data, rec: e.Record})
			return nil
		}); err != nil {
			return err
		}
		for _, m := range moves {
			if err := parked.Delete(m.key); err != nil {
				return err
			}
			if m.drop {
				dropped++
				continue
			}
			if err := box.Put(m.key, m.val); err != nil {
				return err
			}
			if err := ledgerUpdateTx(tx, m.rec, func(l *LedgerEntry) { l.Status, l.Reason = LedgerPending, "" }); err != nil {
				return err
			}
			requeued++
		}
		if _, err := addCount(tx, int64(requeued)); err != nil {
			return err
		}
		return pruneClosed(closed)
	})
	if dropped > 0 {
		o.log.Info().Int("dropped", dropped).Msg("parked progress records of billed orders dropped, not requeued")
	}
	if requeued > 0 {
		o.Notify()
	}
	return requeued, dropped, err
}

func pruneClosed(b *bbolt.Bucket) error {
	cutoff := uint64(time.Now().Add(-closedKeep).Unix())
	var old [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		if len(v) == 16 && binary.BigEndian.Uint64(v[8:]) < cutoff {
			old = append(old, append([]byte(nil), k...))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Pending counts the records waiting for delivery.
func (o *Outbox) Pending() (n int64, err error) {
	err = o.db.View(func(tx *bbolt.Tx) error {
		n = pendingTx(tx)
		return nil
	})
	return n, err
}

// pendingTx is the pending count kept in the meta bucket.
func pendingTx(tx *bbolt.Tx) int64 {
	if v := tx.Bucket(bucketOutMeta).Get(keyCount); len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

// Due returns the head record of each order that is due at now, in queue
// order, at most max of them, and when the next record not yet due falls
// due (within a minute).
func (o *Outbox) Due(now time.Time, max int) ([]Entry, time.Time, error) {
	wake := now.Add(time.Minute)
	var batch []Entry
	err := o.db.View(func(tx *bbolt.Tx) error {
		seen := map[string]bool{}
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil && len(batch) < max; k, v = c.Next() {
			e, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("outbox record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if seen[e.Record.Order] {
				continue // an earlier record of this order is not settled yet
			}
			seen[e.Record.Order] = true
			if e.NextAttempt.After(now) {
				if e.NextAttempt.Before(wake) {
					wake = e.NextAttempt
				}
				continue
			}
			batch = append(batch, e)
		}
		return nil
	})
	return batch, wake, err
}

// Result is one delivery attempt's outcome, as Settle records it.
type Result struct {
	Err         error     // nil: delivered
	Answer      Response  // the platform's answer, if one came
	NextAttempt time.Time // for a record to retry on its own (RetryRecord)
}

// Settle records a round's outcomes in one transaction: delivered records
// move to the delivered list and parked ones to the parked list, each bill's
// ledger entry follows, and the rest stay queued with their attempt counted.
// A record replaced meanwhile by a newer progress record of its order is
// only moved, not counted off the queue twice.
func (o *Outbox) Settle(batch []Entry, results []Result, now time.Time) error {
	return o.db.Update(func(tx *bbolt.Tx) error {
		box := tx.Bucket(bucketOutbox)
		removed := int64(0)
		for i := range batch {
			e, res := batch[i], results[i]
			key := seqKey(e.Seq)
			stillQueued := box.Get(key) != nil
			e.Attempts++
			switch OutcomeOf(res.Err) {
			case Delivered, Rejected:
				dst := tx.Bucket(bucketDelivered)
				e.DoneAt, e.LastError, e.NextAttempt = now, "", time.Time{}
				if res.Err != nil {
					dst, e.LastError = tx.Bucket(bucketParked), res.Err.Error()
				}
				if e.PlateWait && e.Record.Plate == "" && res.Err == nil {
					o.log.Warn().Str("order", e.Record.Order).Msg("no plate came within plates.final_wait: the bill went without, and cannot earn the parking-fee reduction")
				}
				if err := moveOut(tx, dst, e, stillQueued); err != nil {
					return err
				}
				if e.Record.Terminal() {
					rejected, seqno := res.Err != nil, res.Answer.Seqno
					if err := ledgerUpdateTx(tx, e.Record, func(l *LedgerEntry) {
						l.Attempts, l.Reason = l.Attempts+1, e.LastError
						if rejected {
							l.Status = LedgerParked
							return
						}
						l.Status, l.Seqno, l.DeliveredAt = LedgerDelivered, seqno, &now
					}); err != nil {
						return err
					}
				}
				if stillQueued {
					removed++
				}
			default:
				e.LastError = res.Err.Error()
				if !res.NextAttempt.IsZero() {
					e.NextAttempt = res.NextAttempt
				}
				if e.Record.Terminal() {
					if err := ledgerUpdateTx(tx, e.Record, func(l *LedgerEntry) { l.Attempts, l.Reason = l.Attempts+1, e.LastError }); err != nil {
						return err
					}
				}
				if stillQueued {
					data, err := encodeEntry(e)
					if err != nil {
						return err
					}
					if err := box.Put(key, data); err != nil {
						return err
					}
				}
			}
		}
		if removed > 0 {
			if _, err := addCount(tx, -removed); err != nil {
				return err
			}
		}
		return trimDelivered(tx.Bucket(bucketDelivered))
	})
}

// moveOut takes a settled entry off the queue into dst (delivered or
// parked). A delivered progress record is not kept: it carries personal
// data and nothing needs it once the platform has it.
func moveOut(tx *bbolt.Tx, dst *bbolt.Bucket, e Entry, stillQueued bool) error {
	key := seqKey(e.Seq)
	if e.Record.Terminal() || e.LastError != "" { // a bill, or a parked record
		data, err := encodeEntry(e)
		if err != nil {
			return err
		}
		if err := dst.Put(key, data); err != nil {
			return err
		}
	}
	if stillQueued {
		if err := tx.Bucket(bucketOutbox).Delete(key); err != nil {
			return err
		}
	}
	idx := tx.Bucket(bucketProgIdx)
	if cur := idx.Get([]byte(e.Record.Order)); cur != nil && string(cur) == string(key) {
		return idx.Delete([]byte(e.Record.Order))
	}
	return nil
}

// trimDelivered keeps the most recent deliveries only.
func trimDelivered(b *bbolt.Bucket) error {
	n := b.Stats().KeyN
	c := b.Cursor()
	for k, _ := c.First(); k != nil && n > keepDelivered; k, _ = c.First() {
		if err := b.Delete(k); err != nil {
			return err
		}
		n--
	}
	return nil
}

// BlankPII blanks the VIN, plate and mobile of delivered bills that ended
// before cutoff, in the ledger and the list of recent deliveries; amounts,
// times and readings stay for reconciliation. Bills not yet delivered keep
// theirs: the platform still needs them (the plate earns the parking-fee
// reduction).
func (o *Outbox) BlankPII(ctx context.Context, cutoff time.Time) (int, error) {
	n := 0
	for _, name := range [][]byte{bucketLedger, bucketDelivered} {
		var keys [][]byte
		err := o.db.View(func(tx *bbolt.Tx) error {
			return tx.Bucket(name).ForEach(func(k, v []byte) error {
				var rec Record
				var done bool
				if string(name) == string(bucketLedger) {
					e, err := decodeLedger(v)
					if err != nil {
						return nil
					}
					rec, done = e.Record, e.Status == LedgerDelivered
				} else {
					e, err := decodeEntry(v)
					if err != nil {
						return nil
					}
					rec, done = e.Record, true
				}
				if done && rec.EndTime.Before(cutoff) && (rec.VIN != "" || rec.Plate != "" || rec.Mobile != "") {
					keys = append(keys, append([]byte(nil), k...))
				}
				return nil
			})
		})
		if err != nil {
			return n, err
		}
		done, err := o.inChunks(ctx, name, keys, func(b *bbolt.Bucket, k []byte) error {
			v := b.Get(k)
			if v == nil {
				return nil
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			var rec Record
			if err := json.Unmarshal(m["record"], &rec); err != nil {
				return err
			}
			rec.VIN, rec.Plate, rec.Mobile = "", "", ""
			raw, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			m["record"] = raw
			data, err := json.Marshal(m)
			if err != nil {
				return err
			}
			return b.Put(k, data)
		})
		n += done
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

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
func (o *Outbox) AttachPlate(port, plate, source, by string, now time.Time) (string, error) {
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
			var err error
			if e, err = decodeEntry(v); err != nil {
				return err
			}
		}
		if !e.PlateWait || !e.NextAttempt.After(now) || e.Record.Plate != "" {
			// sent, or on its way without: forget the wait (committed,
			// unlike a returned error)
			stale = true
			return waits.Delete([]byte(port))
		}
		e.Record.Plate, e.Record.PlateSource, e.Record.PlateBy = plate, source, by
		e.PlateWait, e.NextAttempt = false, time.Time{}
		data, err := encodeEntry(e)
		if err != nil {
			return err
		}
		if err := box.Put(key, data); err != nil {
			return err
		}
		if err := ledgerUpdateTx(tx, e.Record, func(l *LedgerEntry) {
			l.Record.Plate, l.Record.PlateSource, l.Record.PlateBy, l.NoPlate = plate, source, by, false
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

// inChunks applies f to each of keys in bucket name, 256 keys a write
// transaction, so the poll loop's commits never wait long behind a sweep;
// it returns how many keys it went through.
func (o *Outbox) inChunks(ctx context.Context, name []byte, keys [][]byte, f func(b *bbolt.Bucket, k []byte) error) (int, error) {
	const chunk = 256
	n := 0
	for len(keys) > 0 {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		part := keys[:min(chunk, len(keys))]
		keys = keys[len(part):]
		if err := o.db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket(name)
			for _, k := range part {
				if err := f(b, k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return n, err
		}
		n += len(part)
	}
	return n, nil
}
