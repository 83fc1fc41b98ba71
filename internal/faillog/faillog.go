// Package faillog logs a failure that repeats the way a board's SD card can
// afford: one line when it starts, one when its error changes, repeats
// while it lasts (with the count since the last line) a minute apart at
// first and twice as far apart each time up to an hour, and one when it
// ends. A line down for ten minutes writes five lines, for a day about 30,
// not one a second.
package faillog

import (
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// DefaultEvery is the first repeat of a failure that lasts; MaxEvery is
// the furthest apart repeats grow.
const (
	DefaultEvery = time.Minute
	MaxEvery     = time.Hour
)

// Failure is one thing that can fail again and again: a line, a store, a
// platform. Safe for concurrent use.
type Failure struct {
	log   zerolog.Logger
	msg   string // what failed, e.g. "commit failed"
	every time.Duration

	mu      sync.Mutex
	gap     time.Duration // until the next repeat: every, doubling to MaxEvery
	failing bool
	since   time.Time
	lastErr string
	lastLog time.Time
	count   int // failures since the failure began
	unsaid  int // failures since the last line
}

// New returns a failure that logs msg on log, repeating first after every
// (DefaultEvery when 0), then twice as far apart each time up to MaxEvery.
func New(log zerolog.Logger, msg string, every time.Duration) *Failure {
	if every <= 0 {
		every = DefaultEvery
	}
	return &Failure{log: log, msg: msg, every: every}
}

// Fail records one failure at now. It logs when the failure starts, when
// the error's cause changes, or when the repeat gap has passed since the
// last line; fields, if not nil, adds the call's own fields to a line that
// is written. It reports whether a line was written.
func (f *Failure) Fail(now time.Time, err error, fields func(*zerolog.Event)) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	text := cause(err)
	f.count++
	f.unsaid++
	var ev *zerolog.Event
	switch {
	case !f.failing:
		f.failing, f.since, f.gap = true, now, f.every
		ev = f.log.Error()
	case text != f.lastErr:
		f.gap = f.every
		ev = f.log.Error().Bool("changed", true)
	case now.Sub(f.lastLog) >= f.gap:
		f.gap = min(2*f.gap, max(MaxEvery, f.every))
		ev = f.log.Error()
	default:
		f.lastErr = text
		return false
	}
	f.lastErr, f.lastLog = text, now
	ev = ev.Err(err).Int("failures", f.count).Int("since_last_line", f.unsaid).
		Int64("failing_for_ms", now.Sub(f.since).Milliseconds())
	if fields != nil {
		fields(ev)
	}
	ev.Msg(f.msg)
	f.unsaid = 0
	return true
}

// cause is the text of err's innermost error: what a change of error is
// judged by. The wrapping often names a file, an order or an offset that
// differs on every try ("write …/pilebridge-20261202T1200.db.tmp: no space
// left on device"); the cause stays the same while the fault does.
func cause(err error) string {
	if err == nil {
		return ""
	}
	for {
		inner := errors.Unwrap(err)
		if inner == nil {
			return err.Error()
		}
		err = inner
	}
}

// OK records a success at now; if the thing was failing, one line says it
// recovered and how many failures it took.
func (f *Failure) OK(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.failing {
		return
	}
	f.log.Info().Int("failures", f.count).Int64("failed_for_ms", now.Sub(f.since).Milliseconds()).
		Msg(f.msg + ": recovered")
	f.failing, f.count, f.unsaid, f.lastErr = false, 0, 0, ""
}

// Failing reports whether the last event was a failure, and since when.
func (f *Failure) Failing() (bool, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failing, f.since
}
