package session

import (
	"time"

	"pilebridge/meter"
)

// Edges finds sessions on a meter-only port (no status register) from power:
// a session starts when power has stayed at or above the start threshold for
// StartFor, and ends when it has stayed below the stop threshold for StopFor.
// The session's baseline is the last reading before power crossed the start
// threshold, so no energy of the rising edge is lost; its end is when power
// fell below the stop threshold (docs/billing.md, "Meter-only ports").
type Edges struct {
	StartPowerW int64
	StartFor    time.Duration
	StopPowerW  int64
	StopFor     time.Duration
	MaxGap      time.Duration // a low reading older than this before the first high one is no baseline

	lastLow   meter.Reading // the latest reading below the start threshold
	firstHigh meter.Reading // the first reading of the present high run
	highSince time.Time
}

// Idle observes a reading while no session is open. It returns started and
// the baseline reading when power has been high long enough.
func (d *Edges) Idle(r meter.Reading) (started bool, baseline meter.Reading) {
	if !r.HasPower || d.StartPowerW <= 0 || r.PowerW < d.StartPowerW {
		d.lastLow, d.highSince = r, time.Time{}
		return false, meter.Reading{}
	}
	if d.highSince.IsZero() {
		d.highSince, d.firstHigh = r.Time, r
	}
	if r.Time.Sub(d.highSince) < d.StartFor {
		return false, meter.Reading{}
	}
	d.highSince = time.Time{}
	baseline = d.firstHigh
	if !d.lastLow.Time.IsZero() && d.lastLow.HasEnergy && d.firstHigh.Time.Sub(d.lastLow.Time) <= d.MaxGap {
		baseline = d.lastLow
	}
	return true, baseline
}

// Open observes a reading while a session is open. lowSince is the stored
// start of the present low-power run (zero: power is not low); it returns
// the updated value and whether the session has ended.
func (d *Edges) Open(r meter.Reading, lowSince time.Time) (time.Time, bool) {
	if !r.HasPower || r.PowerW >= d.StopPowerW {
		return time.Time{}, false
	}
	if lowSince.IsZero() {
		lowSince = r.Time
	}
	return lowSince, r.Time.Sub(lowSince) >= d.StopFor
}

// Closed forgets the run that belonged to the closed session; the reading
// that closed it is the next session's earliest possible baseline.
func (d *Edges) Closed(r meter.Reading) { d.lastLow, d.highSince = r, time.Time{} }
