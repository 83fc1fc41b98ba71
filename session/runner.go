package session

import (
	"context"
	"os"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/meter"
	"pilebridge/uploader"
)

// Poller reads a port; *meter.Poller is one.
type Poller interface {
	Poll(ctx context.Context, at time.Time) (meter.Reading, error)
}

// Clock says whether the wall clock can be believed: a board without an RTC
// boots at some old time until NTP sets it.
type Clock struct {
	MinDate    time.Time // earlier than this is not believed
	SyncedFile string    // if set, the clock is believed once this file exists
}

// Believed reports whether now is trustworthy.
func (c Clock) Believed(now time.Time) bool {
	if now.Before(c.MinDate) {
		return false
	}
	if c.SyncedFile != "" {
		if _, err := os.Stat(c.SyncedFile); err != nil {
			return false
		}
	}
	return true
}

// Observer hears every port's state after each poll (status page, device/sync).
type Observer func(port string, state PortState, sess *Session, r meter.Reading, pollErr error)

// Port is one charging port: its machine and how to read it.
type Port struct {
	Key      string // device_no/port_no
	Machine  *Machine
	Poller   Poller
	Interval time.Duration
	// PersistEvery batches the storing of plain energy readings (flash wear);
	// 0 stores every accepted reading. Opening and closing a session and
	// every record are stored at once regardless.
	PersistEvery time.Duration
}

// Runner polls ports, steps their machines and commits the results.
type Runner struct {
	store   *Store
	clock   Clock
	observe Observer
	log     zerolog.Logger
}

// NewRunner builds a runner.
func NewRunner(store *Store, clock Clock, observe Observer, log zerolog.Logger) *Runner {
	if observe == nil {
		observe = func(string, PortState, *Session, meter.Reading, error) {}
	}
	return &Runner{store: store, clock: clock, observe: observe, log: log}
}

// Restore gives each port its stored open session, if any.
func (r *Runner) Restore(ports []*Port) error {
	open, err := r.store.Open()
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, p := range ports {
		known[p.Key] = true
		if s, ok := open[p.Key]; ok {
			p.Machine.Restore(s)
			r.log.Info().Str("port", p.Key).Str("order", s.Order).Int64("quantity_wh", s.Quantity).Msg("open session restored")
		}
	}
	for k, s := range open {
		if !known[k] {
			r.log.Error().Str("port", k).Str("order", s.Order).Msg("stored open session for a port no longer configured: left in the store, not billed")
		}
	}
	return nil
}

// Run polls one port until ctx ends. Records and the session are committed
// together; a failed commit is retried each poll with nothing dropped.
func (r *Runner) Run(ctx context.Context, p *Port) {
	log := r.log.With().Str("port", p.Key).Logger()
	ref := time.Now() // wall and monotonic, to measure a clock jump
	believed := r.clock.Believed(ref)
	if !believed {
		log.Warn().Time("clock", ref).Msg("clock not believed yet: session times stay provisional until it is")
		p.Machine.ClockUnsettled()
	}
	var pending []uploader.Record
	var stored time.Time // when the session was last stored
	lastOrder := ""
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		now := time.Now()
		dirty := false
		if !believed && r.clock.Believed(now) {
			believed = true
			jump := now.Round(0).Sub(ref.Round(0)) - now.Sub(ref)
			log.Info().Dur("jump", jump).Msg("clock believed now")
			dirty = p.Machine.ClockSettled(jump)
		}
		reading, err := p.Poller.Poll(ctx, now)
		if ctx.Err() != nil {
			return
		}
		recs, changed := p.Machine.Step(reading, err, now)
		pending = append(pending, recs...)
		sess, order := p.Machine.Session(), ""
		if sess != nil {
			order = sess.Order
		}
		due := now.Sub(stored) >= p.PersistEvery
		if len(pending) > 0 || dirty || order != lastOrder || (changed && due) {
			if cerr := r.store.Commit(p.Key, sess, pending); cerr != nil {
				log.Error().Err(cerr).Int("records_waiting", len(pending)).Msg("commit failed; will retry")
			} else {
				pending, stored, lastOrder = nil, now, order
			}
		}
		r.observe(p.Key, p.Machine.State(), p.Machine.Session(), reading, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
