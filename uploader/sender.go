package uploader

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/bbolt"

	"pilebridge/internal/faillog"
)

// RecordSender delivers one record; *Client is one.
type RecordSender interface {
	SendRecord(ctx context.Context, r Record) (Response, error)
}

// SenderConfig tunes delivery.
type SenderConfig struct {
	Workers     int           // requests in flight at once (different orders)
	Batch       int           // records picked per round
	BaseBackoff time.Duration // first retry delay
	MaxBackoff  time.Duration // retry delay cap
}

// Sender drains the outbox: per order strictly in sequence, orders in parallel.
type Sender struct {
	box *Outbox
	out RecordSender
	cfg SenderConfig
	log zerolog.Logger

	platformFails int
	pausedUntil   time.Time

	// A round whose answers the store could not record: what the platform
	// accepted stays accepted. Nothing is posted again, and nothing new is
	// sent, until the round is recorded (only a restart in between sends
	// its records once more, which the platform takes as the same order).
	unrecorded   *round
	recordFails  int
	unrecordedAt atomic.Int64 // unix ms since when answers wait to be recorded; 0 when none
	recordLog    *faillog.Failure
	readLog      *faillog.Failure
	retryLog     *faillog.Failure

	delivered atomic.Int64
	failed    atomic.Int64
	parked    atomic.Int64
	lastOK    atomic.Int64 // unix ms of the last delivery

	statsMu   sync.Mutex // guards what follows, read by Stats
	fails     int
	lastErr   string
	lastErrAt time.Time
	codes     map[string]int64
}

// NewSender builds a sender. Every field of cfg must be set (the config
// owns the defaults); a zero is an error naming it.
func NewSender(box *Outbox, out RecordSender, cfg SenderConfig, log zerolog.Logger) (*Sender, error) {
	switch {
	case cfg.Workers <= 0:
		return nil, fmt.Errorf("sender: workers must be set")
	case cfg.Batch <= 0:
		return nil, fmt.Errorf("sender: batch must be set")
	case cfg.BaseBackoff <= 0:
		return nil, fmt.Errorf("sender: retry_base must be set")
	case cfg.MaxBackoff < cfg.BaseBackoff:
		return nil, fmt.Errorf("sender: retry_max %s below retry_base %s", cfg.MaxBackoff, cfg.BaseBackoff)
	}
	return &Sender{box: box, out: out, cfg: cfg, log: log,
		recordLog: faillog.New(log, "outbox update failed: the platform's answers are kept in memory and nothing is sent again until they are recorded", 0),
		readLog:   faillog.New(log, "outbox unreadable", 0),
		retryLog:  faillog.New(log, "records not accepted, will retry", 0),
	}, nil
}

// round is one batch sent and its answers.
type round struct {
	batch   []Entry
	results []error
	answers []Response
}

// Unrecorded reports since when the platform's answers have waited for the
// store to record them; zero when none do. A health reason: the store
// cannot record deliveries.
func (s *Sender) Unrecorded() time.Time {
	if ms := s.unrecordedAt.Load(); ms > 0 {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}

// SenderStats are delivery counters.
type SenderStats struct {
	Delivered, Failed, Parked int64
	LastDelivery              time.Time
	// The platform's health as the sender sees it.
	ConsecutiveFailures int              // rounds in a row the platform was unavailable
	LastError           string           // the last failed attempt's error
	LastErrorAt         time.Time        // and when
	Codes               map[string]int64 // attempts by result (CodeOf)
}

// Stats returns the counters.
func (s *Sender) Stats() SenderStats {
	st := SenderStats{Delivered: s.delivered.Load(), Failed: s.failed.Load(), Parked: s.parked.Load()}
	if ms := s.lastOK.Load(); ms > 0 {
		st.LastDelivery = time.UnixMilli(ms)
	}
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	st.ConsecutiveFailures, st.LastError, st.LastErrorAt = s.fails, s.lastErr, s.lastErrAt
	st.Codes = make(map[string]int64, len(s.codes))
	for k, v := range s.codes {
		st.Codes[k] = v
	}
	return st
}

// backoff is exponential, capped at MaxBackoff, with jitter below the
// step: a wait in [d/2, d]. retry_max is a ceiling, never exceeded.
func (s *Sender) backoff(n int) time.Duration {
	d := s.cfg.BaseBackoff << min(max(n-1, 0), 20)
	if d > s.cfg.MaxBackoff || d <= 0 {
		d = s.cfg.MaxBackoff
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Run delivers until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if s.unrecorded != nil && !s.record(ctx, s.unrecorded) {
			continue
		}
		now := time.Now()
		wake := now.Add(time.Minute)
		var batch []Entry
		if now.Before(s.pausedUntil) {
			wake = s.pausedUntil
		} else {
			var err error
			batch, wake, err = s.pick(now)
			if err != nil {
				s.readLog.Fail(now, err, nil)
				wake = now.Add(5 * time.Second)
			} else {
				s.readLog.OK(now)
			}
		}
		if s.platformFails > 0 && len(batch) > 1 {
			// the platform is down: one probe per backoff round, not one
			// request per order; the rest follow once it answers
			batch = batch[:1]
		}
		if len(batch) == 0 {
			t := time.NewTimer(time.Until(wake))
			select {
			case <-ctx.Done():
			case <-s.box.kick:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		results, answers := s.sendAll(ctx, batch)
		if ctx.Err() != nil {
			return // interrupted sends stay queued and go again after restart
		}
		s.record(ctx, &round{batch: batch, results: results, answers: answers})
	}
}

// record settles a round in the store. When the store refuses, the round is
// kept and tried again after a backoff (the sender slows down with the
// store); it reports whether the round was recorded.
func (s *Sender) record(ctx context.Context, r *round) bool {
	err := s.settle(r.batch, r.results, r.answers)
	now := time.Now()
	if err == nil {
		s.recordLog.OK(now)
		s.unrecorded, s.recordFails = nil, 0
		s.unrecordedAt.Store(0)
		return true
	}
	if s.unrecorded == nil {
		s.unrecorded = r
		s.unrecordedAt.Store(now.UnixMilli())
	}
	s.recordFails++
	s.recordLog.Fail(now, err, func(e *zerolog.Event) { e.Int("records", len(r.batch)) })
	t := time.NewTimer(min(s.backoff(s.recordFails), 30*time.Second))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// pick takes the head record of each order that is due, in queue order.
func (s *Sender) pick(now time.Time) ([]Entry, time.Time, error) {
	wake := now.Add(time.Minute)
	var batch []Entry
	err := s.box.db.View(func(tx *bbolt.Tx) error {
		seen := map[string]bool{}
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil && len(batch) < s.cfg.Batch; k, v = c.Next() {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
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

func (s *Sender) sendAll(ctx context.Context, batch []Entry) ([]error, []Response) {
	results, answers := make([]error, len(batch)), make([]Response, len(batch))
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for w := 0; w < min(s.cfg.Workers, len(batch)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(batch) {
					return
				}
				answers[i], results[i] = s.out.SendRecord(ctx, batch[i].Record)
			}
		}()
	}
	wg.Wait()
	return results, answers
}

// settle records the round's outcomes in one transaction; counters and
// logs follow only once it is committed.
func (s *Sender) settle(batch []Entry, results []error, answers []Response) error {
	now := time.Now().UTC()
	err := s.box.db.Update(func(tx *bbolt.Tx) error {
		box := tx.Bucket(bucketOutbox)
		removed := int64(0)
		for i := range batch {
			e := batch[i]
			key := seqKey(e.Seq)
			stillQueued := box.Get(key) != nil // a newer progress record may have replaced it
			e.Attempts++
			switch err := results[i]; OutcomeOf(err) {
			case Delivered, Rejected:
				dst := tx.Bucket(bucketDelivered)
				e.DoneAt, e.LastError = now, ""
				if err != nil {
					dst, e.LastError = tx.Bucket(bucketParked), err.Error()
				}
				if err := moveOut(tx, dst, e, stillQueued); err != nil {
					return err
				}
				if e.Record.Terminal() {
					rejected, seqno := results[i] != nil, answers[i].Seqno
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
				e.LastError = err.Error()
				if OutcomeOf(err) == RetryRecord {
					e.NextAttempt = now.Add(s.backoff(e.Attempts))
				}
				batch[i].NextAttempt = e.NextAttempt
				if e.Record.Terminal() {
					if err := ledgerUpdateTx(tx, e.Record, func(l *LedgerEntry) { l.Attempts, l.Reason = l.Attempts+1, e.LastError }); err != nil {
						return err
					}
				}
				if stillQueued {
					data, err := json.Marshal(e)
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
			addCount(tx, -removed)
		}
		return trimDelivered(tx.Bucket(bucketDelivered))
	})
	if err != nil {
		return err
	}
	anyOK, platformDown, anyRetry := false, false, false
	var lastErr error
	s.statsMu.Lock()
	if s.codes == nil {
		s.codes = map[string]int64{}
	}
	for i, err := range results {
		s.codes[CodeOf(answers[i], err)]++
		if err != nil {
			s.lastErr, s.lastErrAt = err.Error(), now
		}
	}
	s.statsMu.Unlock()
	for i, e := range batch {
		err := results[i]
		switch OutcomeOf(err) {
		case Delivered:
			anyOK = true
			s.delivered.Add(1)
			s.lastOK.Store(now.UnixMilli())
		case Rejected:
			s.parked.Add(1)
			s.log.Error().Str("order", e.Record.Order).Str("kind", string(e.Record.Kind)).Err(err).
				Msg("platform rejected record: parked; fix the cause, then `pilebridge outbox retry`")
		case RetryRecord:
			s.failed.Add(1)
			anyRetry = true
			s.retryLog.Fail(now, err, func(ev *zerolog.Event) { ev.Str("order", e.Record.Order).Time("next_attempt", e.NextAttempt) })
		default:
			s.failed.Add(1)
			platformDown, lastErr = true, err
		}
	}
	if anyOK && !anyRetry {
		s.retryLog.OK(now)
	}
	defer func() {
		s.statsMu.Lock()
		s.fails = s.platformFails
		s.statsMu.Unlock()
	}()
	switch {
	case platformDown:
		s.platformFails++
		wait := s.backoff(s.platformFails)
		s.pausedUntil = time.Now().Add(wait)
		if s.platformFails == 1 {
			s.log.Warn().Err(lastErr).Msg("platform unavailable, backing off")
		}
		s.log.Debug().Int("failures", s.platformFails).Int64("wait_ms", wait.Milliseconds()).Msg("platform backoff")
	case anyOK && s.platformFails > 0:
		s.log.Info().Int("failures", s.platformFails).Msg("platform available again")
		s.platformFails = 0
	}
	return nil
}

// moveOut takes a settled entry off the queue into dst (delivered or parked).
func moveOut(tx *bbolt.Tx, dst *bbolt.Bucket, e Entry, stillQueued bool) error {
	key := seqKey(e.Seq)
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := dst.Put(key, data); err != nil {
		return err
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
