// Package billcheck is the tests' own statement of the billing rules of
// docs/billing.md: given what a simulated meter really counted, which
// readings the bridge took and kept, and where sessions began and ended, it
// says what each bill must be. It shares no code with session/ — a test
// that used the engine to predict the engine would prove nothing — and is
// used only by tests (the session property run and the daemon soak).
package billcheck

import (
	"math"
	"time"
)

// Read is one reading the bridge took of a device and kept (committed).
// Seq orders reads, session edges and restarts on one device.
type Read struct {
	Seq int64
	At  time.Time
	MWh int64 // what the meter's counter held, before the register's resolution
}

// Session is one session as the device lived it.
type Session struct {
	StartSeq  int64 // the pile began it (starting; meter-only: power rose)
	ChargeSeq int64 // it began delivering (charging; meter-only: = StartSeq)
	EndSeq    int64 // it ended (finished; meter-only: power fell)
	EndMWh    int64 // the counter then (no energy flows after it)
	ResetSeq  int64 // a meter swap during it (0: none); later reads are the new register
}

// Rules are the installation's: how the register shows energy and how
// meter-only sessions are found.
type Rules struct {
	Pile     bool              // the pile reports its status; else meter-only
	WrapMWh  int64             // the register's span (0: it never rolls over)
	Shows    func(int64) int64 // what the register shows for a counter value
	StartFor time.Duration     // meter-only: power high this long opens a session
	MaxGap   time.Duration     // meter-only: a low reading older than this is no baseline
}

// Expected is each session's bill in Wh, and whether the bridge saw the
// session at all (an unseen session has no order). restarts are the Seq of
// each bridge restart (a kill, then a start) on this device's timeline.
func (r Rules) Expected(sessions []Session, reads []Read, restarts []int64) (wh []int64, seen []bool) {
	for i, s := range sessions {
		// A reading after it ended still shows its energy until the next
		// session delivers: until then the live reading is its own.
		next := int64(math.MaxInt64)
		if i+1 < len(sessions) {
			next = max(sessions[i+1].ChargeSeq, sessions[i+1].StartSeq)
		}
		var mine, during []Read // after its start, before the next delivers; and of those, before it ended
		for _, rd := range reads {
			if rd.Seq > s.StartSeq && rd.Seq < next {
				mine = append(mine, rd)
				if rd.Seq < s.EndSeq {
					during = append(during, rd)
				}
			}
		}
		prevEnd := int64(math.MinInt64)
		if i > 0 {
			prevEnd = sessions[i-1].EndSeq
		}
		base, ok := r.baseline(s, during, reads, restarts)
		if ok && r.Pile {
			if q, found := quietBefore(prevEnd, s.StartSeq, during[0].Seq, reads, restarts); found {
				base = r.Shows(r.wrap(q.MWh))
			}
		}
		if !ok && r.Pile {
			// never seen while it ran: billed whole when the bridge read the
			// pile quiet before it began and again after it ended, with no
			// other session begun between (the counter moved by one)
			if mwh, billed := r.wholeInGap(s, prevEnd, next, reads, restarts); billed {
				wh, seen = append(wh, (mwh+500)/1000), append(seen, true)
				continue
			}
		}
		if !ok {
			wh, seen = append(wh, 0), append(seen, false)
			continue
		}
		// end: seen after it ended and before another began, or its last reading
		end := r.Shows(r.wrap(s.EndMWh))
		if len(mine) == len(during) {
			end = r.Shows(r.wrap(during[len(during)-1].MWh))
		}
		counted := end - base
		if s.ResetSeq != 0 {
			var lastOld, firstNew *Read
			for k := range during {
				if during[k].Seq < s.ResetSeq {
					lastOld = &during[k]
				} else if firstNew == nil {
					firstNew = &during[k]
				}
			}
			if lastOld != nil && firstNew != nil && lastOld.Seq >= r.openSeq(s, during, reads, restarts) {
				// the old register up to its last reading, the new from its first
				counted = r.Shows(r.wrap(lastOld.MWh)) - base + end - r.Shows(r.wrap(firstNew.MWh))
			}
		}
		if counted < 0 && r.WrapMWh > 0 {
			counted += r.Shows(r.WrapMWh) // rolled over
		}
		wh, seen = append(wh, (counted+500)/1000), append(seen, true)
	}
	return wh, seen
}

// quietBefore is the pile's last reading between the previous session's end
// and this one's start, read in the same bridge run as first (the bridge
// keeps it in memory): every Wh counted since it is this session's.
func quietBefore(prevEnd, start, first int64, reads []Read, restarts []int64) (Read, bool) {
	var q Read
	found := false
	for _, rd := range reads {
		if rd.Seq > prevEnd && rd.Seq < start && !restartBetween(restarts, rd.Seq, first) {
			q, found = rd, true
		}
	}
	return q, found
}

// wholeInGap is a session the bridge never read while it ran, but read
// quiet before it began and again after it ended (before the next began):
// the register's movement between those two readings, if any.
func (r Rules) wholeInGap(s Session, prevEnd, next int64, reads []Read, restarts []int64) (int64, bool) {
	var after *Read
	for k := range reads {
		if reads[k].Seq > s.EndSeq && reads[k].Seq < next {
			after = &reads[k]
			break
		}
	}
	if after == nil {
		return 0, false
	}
	q, found := quietBefore(prevEnd, s.StartSeq, after.Seq, reads, restarts)
	if !found {
		return 0, false
	}
	mwh := r.Shows(r.wrap(after.MWh)) - r.Shows(r.wrap(q.MWh))
	if mwh < 0 && r.WrapMWh > 0 {
		mwh += r.Shows(r.WrapMWh)
	}
	return mwh, mwh > 0
}

func (r Rules) wrap(mwh int64) int64 {
	if r.WrapMWh > 0 {
		return mwh % r.WrapMWh
	}
	return mwh
}

// baseline is what the register showed at the session's baseline.
func (r Rules) baseline(s Session, during, reads []Read, restarts []int64) (int64, bool) {
	if len(during) == 0 {
		return 0, false
	}
	if r.Pile {
		return r.Shows(r.wrap(during[0].MWh)), true // its first reading
	}
	open := r.openSeq(s, during, reads, restarts)
	if open == 0 {
		return 0, false
	}
	// the bridge run that opened it: since the last restart before the opening read
	runStart := int64(0)
	for _, k := range restarts {
		if k < open {
			runStart = k
		}
	}
	var firstHigh *Read
	for k := range during {
		if during[k].Seq > runStart {
			firstHigh = &during[k]
			break
		}
	}
	// the last reading before power rose, in the same run and recent enough
	for k := len(reads) - 1; k >= 0; k-- {
		rd := reads[k]
		if rd.Seq < s.StartSeq && rd.Seq > runStart {
			if firstHigh.At.Sub(rd.At) <= r.MaxGap {
				return r.Shows(r.wrap(rd.MWh)), true
			}
			break
		}
	}
	return r.Shows(r.wrap(firstHigh.MWh)), true
}

// openSeq is the reading that opened the session: for pile ports its first;
// for meter-only the first reading in one bridge run that comes StartFor
// after that run's first high reading (0: it was never opened).
func (r Rules) openSeq(s Session, during, reads []Read, restarts []int64) int64 {
	if r.Pile {
		return during[0].Seq
	}
	var first *Read
	for k := range during {
		rd := &during[k]
		if first != nil && restartBetween(restarts, first.Seq, rd.Seq) {
			first = nil
		}
		if first == nil {
			first = rd
		}
		if rd.At.Sub(first.At) >= r.StartFor {
			return rd.Seq
		}
	}
	return 0
}

func restartBetween(restarts []int64, a, b int64) bool {
	for _, k := range restarts {
		if k > a && k < b {
			return true
		}
	}
	return false
}

// Step is an integer register of step mWh: it truncates, as a meter's
// counter does.
func Step(step int64) func(int64) int64 {
	return func(mwh int64) int64 { return mwh / step * step }
}

// Float32KWh is a float32 kWh register, scaled by ratio: the nearest float32
// to the counter divided by the ratio.
func Float32KWh(ratio int64) func(int64) int64 {
	return func(mwh int64) int64 {
		f := float32(float64(mwh) / float64(ratio) / 1e6)
		return int64(math.Round(float64(f) * float64(ratio) * 1e6))
	}
}
