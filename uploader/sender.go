package uploader

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/internal/backoff"
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
	return backoff.Policy{Base: s.cfg.BaseBackoff, Max: s.cfg.MaxBackoff}.Jittered(n)
}

// Run delivers until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if s.unrecorded != nil && !s.record(ctx, s.unrecorded) {
			continue
		}
		now := time.Now()
		var wake time.Time
		var batch []Entry
		if now.Before(s.pausedUntil) {
			wake = s.pausedUntil
		} else {
			var err error
			batch, wake, err = s.box.Due(now, s.cfg.Batch)
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
			case <-s.box.Queued():
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
	_ = backoff.Sleep(ctx, min(s.backoff(s.recordFails), 30*time.Second)) // ctx's end is Run's to see
	return false
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
				results[i] = scrubErr(results[i], batch[i].Record)
			}
		}()
	}
	wg.Wait()
	return results, answers
}

// settle records the round's outcomes in the outbox (one transaction);
// counters and logs follow only once it is committed.
func (s *Sender) settle(batch []Entry, results []error, answers []Response) error {
	now := time.Now().UTC()
	outcomes := make([]Result, len(batch))
	for i := range batch {
		outcomes[i] = Result{Err: results[i], Answer: answers[i]}
		if OutcomeOf(results[i]) == RetryRecord {
			outcomes[i].NextAttempt = now.Add(s.backoff(batch[i].Attempts + 1))
			batch[i].NextAttempt = outcomes[i].NextAttempt
		}
	}
	if err := s.box.Settle(batch, outcomes, now); err != nil {
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
