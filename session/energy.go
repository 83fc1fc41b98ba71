package session

import (
	"time"

	"pilebridge/internal/limits"
)

// Energy follows one session's energy register. Register values are kept in
// mWh at the register's own resolution; the bill rounds to Wh once. It is
// stored with the session, hold state included, so a restart resumes the
// same decision (docs/billing.md, "Energy register").
type Energy struct {
	BaseMWh   int64     `json:"base_mwh"`   // register at the session's baseline
	BaseAt    time.Time `json:"base_at"`    // and when it was read
	LastMWh   int64     `json:"last_mwh"`   // last accepted register value
	LastAt    time.Time `json:"last_at"`    // when it was read
	ChangedAt time.Time `json:"changed_at"` // when an accepted reading last showed an increase
	// RoseFrom is the reading before that increase: the register may have
	// reached its value any time after it, so plausibility counts from here.
	RoseFrom   time.Time `json:"rose_from"`
	CountedMWh int64     `json:"counted_mwh"` // Σ accepted increases: the session's energy
	ResMWh     int64     `json:"res_mwh"`     // coarsest register step seen
	Hold       *Hold     `json:"hold,omitempty"`
	Resets     int       `json:"resets,omitempty"` // reset/swap events counted
	Gaps       []Gap     `json:"gaps,omitempty"`   // the first maxGaps of them, for the bill's evidence
	Wraps      int       `json:"wraps,omitempty"`  // rollovers of the register
	WrapMWh    int64     `json:"wrap_mwh,omitempty"`
	// Provisional: LastAt, ChangedAt and the hold were stamped before the
	// wall clock was believed.
	Provisional bool `json:"provisional,omitempty"`
}

// Hold is a reading that cannot be accepted yet: lower than the last one,
// or higher than the rated power allows since the register last changed.
type Hold struct {
	Polls    int       `json:"polls"`
	FirstMWh int64     `json:"first_mwh"` // the first held reading: a new register starts here
	FirstAt  time.Time `json:"first_at"`
	LastMWh  int64     `json:"last_mwh"`
	LastAt   time.Time `json:"last_at"`
	Why      string    `json:"why"`
}

// Limits are the register rules that come from the installation.
type Limits struct {
	RatedPowerW int64 // 0: no plausibility limit
	HoldPolls   int   // a held reading becomes a reset/swap after this many polls
	WrapMWh     int64 // where the register rolls over (0: never)
}

// MaxRatedPowerW bounds rated power so the limit arithmetic cannot overflow.
const MaxRatedPowerW = limits.MaxPowerW

// slackMWh absorbs a meter that rounds where we assume it truncates.
const slackMWh = 2000

// Outcome says what a reading did to the register accounting.
type Outcome int

const (
	Unchanged Outcome = iota // same value (or a float's jitter): nothing to count
	Increased                // accepted: Delta flowed over [From, To)
	Held                     // not accepted (yet)
	Reset                    // a held jump persisted: a new register, counted from its first reading
)

// Step is the result of one reading.
type Step struct {
	Outcome  Outcome
	DeltaMWh int64
	From, To time.Time
	LostFrom int64 // Reset: the old register's last value and the new one's first
	LostTo   int64
	Why      string
}

// Start sets the session's baseline.
func (e *Energy) Start(mwh, res int64, at time.Time) {
	*e = Energy{BaseMWh: mwh, BaseAt: at, LastMWh: mwh, LastAt: at, ChangedAt: at, RoseFrom: at, ResMWh: max(res, 1)}
}

// limitMWh is the most the register can plausibly rise from e.LastMWh by at:
// rated power × 1.5 over the time since the register may have last changed
// (a coarse or frozen register shows many seconds of energy at once), plus
// one step, plus slack. -1 means no limit.
func (e *Energy) limitMWh(l Limits, since, at time.Time, res int64) int64 {
	if l.RatedPowerW <= 0 {
		return -1
	}
	if at.Before(since) {
		return -1 // the clock went back (a board without RTC): elapsed time unknown
	}
	rated := min(l.RatedPowerW, MaxRatedPowerW)
	ms := at.Sub(since).Milliseconds()
	ms = min(max(ms, 1000), 100*24*3600*1000) // ≤ 100 days keeps 3e6 × 8.64e9 in int64
	// W × ms × 1.5 / 3600 = mWh × 1.5
	return rated*3*ms/7200 + max(res, e.ResMWh) + slackMWh
}

// Observe applies one reading of the register.
func (e *Energy) Observe(l Limits, mwh, res int64, at time.Time) Step {
	res = max(res, 1)
	if res > e.ResMWh {
		e.ResMWh = res
	}
	delta := mwh - e.LastMWh
	why, wrapped := "", false
	switch {
	case delta < 0 && -delta <= res:
		// a float register's last digit moving: not a decrease
		delta = 0
	case delta < 0:
		if w := wrapOf(e.LastMWh, mwh, l.WrapMWh); w > 0 {
			delta, wrapped = w, true
		} else {
			why = "energy went down"
		}
	}
	if why == "" {
		if lim := e.limitMWh(l, e.RoseFrom, at, res); lim >= 0 && delta > lim {
			why = "energy rose faster than the rated power allows"
		}
	}
	if why != "" {
		return e.hold(l, mwh, res, at, why)
	}
	e.Hold = nil
	if delta == 0 {
		if at.After(e.LastAt) {
			e.LastAt = at
		}
		return Step{Outcome: Unchanged}
	}
	from := e.LastAt
	e.LastMWh, e.LastAt, e.ChangedAt, e.RoseFrom = mwh, at, at, from
	e.CountedMWh += delta
	if wrapped {
		e.Wraps, e.WrapMWh = e.Wraps+1, l.WrapMWh
	}
	return Step{Outcome: Increased, DeltaMWh: delta, From: from, To: at}
}

// hold keeps a suspicious reading out until it persists, rising consistently
// (never down, never faster than rated power from the first held reading).
// Then the register was reset or the meter swapped: counting goes on from
// the new register's first reading, with what was counted kept.
func (e *Energy) hold(l Limits, mwh, res int64, at time.Time, why string) Step {
	h := e.Hold
	consistent := h != nil && mwh >= h.LastMWh
	if consistent {
		if lim := e.limitMWh(l, h.FirstAt, at, res); lim >= 0 && mwh-h.FirstMWh > lim {
			consistent = false
		}
	}
	if !consistent {
		e.Hold = &Hold{Polls: 1, FirstMWh: mwh, FirstAt: at, LastMWh: mwh, LastAt: at, Why: why}
	} else {
		h.Polls++
		h.LastMWh, h.LastAt = mwh, at
	}
	h = e.Hold
	if h.Polls < max(l.HoldPolls, 1) {
		return Step{Outcome: Held, Why: h.Why}
	}
	step := Step{Outcome: Reset, DeltaMWh: h.LastMWh - h.FirstMWh, From: h.FirstAt, To: at,
		LostFrom: e.LastMWh, LostTo: h.FirstMWh, Why: h.Why}
	e.Hold = nil
	e.Resets++
	if len(e.Gaps) < maxGaps {
		e.Gaps = append(e.Gaps, Gap{OldMWh: e.LastMWh, OldAt: e.LastAt, NewMWh: h.FirstMWh, NewAt: h.FirstAt})
	}
	e.LastMWh, e.LastAt = mwh, at
	if step.DeltaMWh > 0 {
		e.ChangedAt, e.RoseFrom = at, h.FirstAt
		e.CountedMWh += step.DeltaMWh
	}
	return step
}

// Continuous says a reading taken after a gap (a restart) can belong to the
// same register: not lower, and not more than rated power allows since the
// register last changed.
func (e *Energy) Continuous(l Limits, mwh, res int64, at time.Time) bool {
	delta := mwh - e.LastMWh
	if delta < 0 {
		if delta >= -max(res, 1) {
			return true
		}
		if delta = wrapOf(e.LastMWh, mwh, l.WrapMWh); delta == 0 {
			return false
		}
	}
	lim := e.limitMWh(l, e.RoseFrom, at, res)
	return lim < 0 || delta <= lim
}

// shift moves the reading stamps by d: the clock was found to be off by d.
func (e *Energy) shift(d time.Duration) {
	e.LastAt, e.ChangedAt, e.RoseFrom, e.Provisional = e.LastAt.Add(d), e.ChangedAt.Add(d), e.RoseFrom.Add(d), false
	for i := range e.Gaps {
		e.Gaps[i].OldAt, e.Gaps[i].NewAt = e.Gaps[i].OldAt.Add(d), e.Gaps[i].NewAt.Add(d)
	}
	if e.Hold != nil {
		e.Hold.FirstAt, e.Hold.LastAt = e.Hold.FirstAt.Add(d), e.Hold.LastAt.Add(d)
	}
}

// wrapOf is the delta when a counter that rolls over at span went from last
// (in its top 1%) to now (in its bottom 1%), or 0 when it did not roll over.
func wrapOf(last, now, span int64) int64 {
	if span > 0 && last < span && last >= span-span/100 && now < span/100 {
		return span - last + now
	}
	return 0
}
