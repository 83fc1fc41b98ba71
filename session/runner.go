package session

import (
	"context"
	"os"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/internal/faillog"
	"pilebridge/internal/pii"
	"pilebridge/meter"
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
	// every event are stored at once regardless.
	PersistEvery time.Duration

	// Plates, if set, gives the plates read for this port's bay.
	Plates PlateBook

	loop portLoop
}

// PlateBook holds the plates read at the ports' bays (cameras, a parking
// system, the attendant).
type PlateBook interface {
	// PlateFor is the best read for port that belongs to a session opened
	// at opened: read within the book's window before it, or since, and
	// not before an earlier session at the port ended or its car left.
	PlateFor(port string, opened time.Time) (PlateRead, bool)
	// Ended says the port's session opened at opened closed at at: what was
	// read until then was its car's, or nobody's.
	Ended(port string, opened, at time.Time)
	// Left says the port went idle at at: the car unplugged.
	Left(port string, at time.Time)
}

// portLoop is the runner's state for one port between polls.
type portLoop struct {
	opened    time.Time // the open session's opening at the last step (plates)
	begun     bool
	log       zerolog.Logger // the runner's, with the port
	ref       time.Time      // wall and monotonic at the start, to measure a clock jump
	believed  bool
	pending   []Event   // events not yet committed
	stored    time.Time // when the session was last stored
	commit    *faillog.Failure
	lastOrder string
	lastState PortState // for one log line per state change
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
			r.log.Info().Str("port", p.Key).Str("order", s.Order).Int64("quantity_wh", s.QuantityWh()).Msg("open session restored")
		}
	}
	for k, s := range open {
		if !known[k] {
			r.log.Error().Str("port", k).Str("order", s.Order).Msg("stored open session for a port no longer configured: left in the store, not billed")
		}
	}
	return nil
}

// RunLine polls the ports of one line until ctx ends: one goroutine and
// one timer for the line (its bus takes one exchange at a time anyway),
// each port at its own interval. What a round of polls changed is
// committed in one transaction before the round's results are shown, so
// a line of 16 charging ports costs one commit a second, not 16.
func (r *Runner) RunLine(ctx context.Context, ports []*Port) {
	if len(ports) == 0 {
		return
	}
	next := make([]time.Time, len(ports))
	start := time.Now()
	for i := range next {
		next[i] = start
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var (
		steps  []lineStep
		writes []Write
		errs   []error
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		steps, writes = steps[:0], writes[:0]
		stopped := false
		for i, p := range ports {
			now := time.Now()
			if now.Before(next[i]) {
				continue
			}
			if next[i] = next[i].Add(p.Interval); next[i].Before(now) {
				next[i] = now // a round longer than the interval: at once, as a ticker would
			}
			st, ok := r.prepare(ctx, p, now)
			if !ok { // ctx ended during the poll: what the round has is still committed
				stopped = true
				break
			}
			if st.commit {
				st.write = len(writes)
				writes = append(writes, Write{Port: p.Key, Sess: st.sess, Recs: p.loop.pending})
			}
			steps = append(steps, lineStep{port: p, at: now, step: st})
		}
		errs = slices.Grow(errs[:0], len(writes))[:len(writes)]
		r.store.CommitAll(writes, errs)
		for _, s := range steps {
			var cerr error
			if s.step.commit {
				cerr = errs[s.step.write]
			}
			r.finish(s.port, s.at, s.step, cerr)
		}
		if stopped {
			return
		}
		wake := next[0]
		for _, t := range next[1:] {
			if t.Before(wake) {
				wake = t
			}
		}
		timer.Reset(time.Until(wake))
	}
}

type lineStep struct {
	port *Port
	at   time.Time
	step step
}

// step is a poll's outcome between prepare and finish.
type step struct {
	reading meter.Reading
	err     error
	sess    *Session
	order   string
	commit  bool // the session and the pending events are to be committed
	write   int  // its index in the round's writes (RunLine)
}

// Step polls the port once as of now, steps its machine and commits the
// session with its events in one transaction; a failed commit is retried on
// the next step with nothing dropped. A simulation calls it with simulated
// time; RunLine does the same for a line's ports with one commit a round.
func (r *Runner) Step(ctx context.Context, p *Port, now time.Time) {
	st, ok := r.prepare(ctx, p, now)
	if !ok {
		return
	}
	var cerr error
	if st.commit {
		cerr = r.store.Commit(p.Key, st.sess, p.loop.pending)
	}
	r.finish(p, now, st, cerr)
}

// prepare polls the port and steps its machine; it says whether the session
// and the port's pending events are to be committed. false: ctx ended.
func (r *Runner) prepare(ctx context.Context, p *Port, now time.Time) (step, bool) {
	l := &p.loop
	if !l.begun {
		l.begun, l.ref, l.believed = true, now, r.clock.Believed(now)
		l.log = r.log.With().Str("port", p.Key).Logger() // once: Step is the poll loop
		l.commit = faillog.New(l.log, "commit failed; the session is kept in memory and committed when the store takes writes", 0)
		if !l.believed {
			l.log.Warn().Time("clock", now).Msg("clock not believed yet: session times stay provisional until it is")
			p.Machine.ClockUnsettled()
		}
		if s := p.Machine.Session(); s != nil {
			l.lastOrder = s.Order
		}
	}
	dirty := false
	if !l.believed && r.clock.Believed(now) {
		l.believed = true
		jump := now.Round(0).Sub(l.ref.Round(0)) - now.Sub(l.ref)
		l.log.Info().Int64("jump_ms", jump.Milliseconds()).Msg("clock believed now")
		dirty = p.Machine.ClockSettled(jump)
	}
	reading, err := p.Poller.Poll(ctx, now)
	if ctx.Err() != nil {
		return step{}, false
	}
	evs, changed := p.Machine.Step(reading, err, now)
	l.pending = queue(l.pending, evs)
	sess, order := p.Machine.Session(), ""
	if p.Plates != nil && !l.opened.IsZero() && (sess == nil || !sess.OpenedAt.Equal(l.opened)) {
		p.Plates.Ended(p.Key, l.opened, now)
	}
	l.opened = time.Time{}
	if sess != nil {
		l.opened = sess.OpenedAt
	}
	if sess != nil {
		order = sess.Order
		if p.Plates != nil {
			if pr, ok := p.Plates.PlateFor(p.Key, sess.OpenedAt); ok && p.Machine.SetPlate(pr) {
				dirty = true // stored at once: a restart keeps it
				l.log.Info().Str("order", order).Str("plate", pii.Plate(pr.Plate)).Str("source", string(pr.Source)).
					Time("read_at", pr.At).Msg("plate")
			}
		}
	}
	due := now.Sub(l.stored) >= p.PersistEvery
	commit := len(l.pending) > 0 || dirty || order != l.lastOrder || (changed && due)
	return step{reading: reading, err: err, sess: sess, order: order, commit: commit}, true
}

// finish takes the commit's outcome (cerr, if there was a commit), logs a
// change of state and shows the poll to the observer.
func (r *Runner) finish(p *Port, now time.Time, st step, cerr error) {
	l := &p.loop
	if st.commit {
		if cerr != nil {
			l.commit.Fail(now, cerr, func(e *zerolog.Event) { e.Int("events_waiting", len(l.pending)).Str("order", st.order) })
		} else {
			l.commit.OK(now)
			l.pending, l.stored, l.lastOrder = nil, now, st.order
		}
	}
	order := st.order
	if state := p.Machine.State(); state != l.lastState {
		if p.Plates != nil && state == Idle && l.lastState != "" {
			p.Plates.Left(p.Key, now)
		}
		ev := l.log.Info().Str("to", string(state))
		if l.lastState != "" {
			ev = ev.Str("from", string(l.lastState))
		}
		if order != "" {
			ev = ev.Str("order", order)
		}
		ev.Msg("port state")
		l.lastState = state
	}
	r.observe(p.Key, p.Machine.State(), p.Machine.Session(), st.reading, st.err)
}

// queue adds evs to the events waiting for a commit. While the store refuses
// writes only the newest progress record of an order matters (the outbox
// would replace the older ones anyway), so the queue stays small however
// long the outage; closing records are all kept.
func queue(pending, evs []Event) []Event {
	for _, e := range evs {
		if e.Kind == EventProgress {
			pending = slices.DeleteFunc(pending, func(p Event) bool { return p.Kind == EventProgress && p.Order == e.Order })
		}
		pending = append(pending, e)
	}
	return pending
}
