package session

import (
	"time"

	"pilebridge/meter"
)

// The rules for a line that was away (docs/billing.md, "A line that was
// away"). While no session is open the machine keeps the pile's latest
// reading in a status that delivers nothing (idle, plugged, finished, fault,
// start failed) with its session counter: the quiet reading. When the line
// returns, the counter says what the energy since then is:
//
//   - advanced by exactly one: one session began since, and every Wh the
//     meter counted since the quiet reading is that session's. A session
//     seen delivering is billed from the quiet reading; one that is over
//     already (the pile quiet again) is billed whole, from the quiet reading
//     to the first reading after the gap.
//   - advanced by more: several sessions shared the energy and nothing says
//     how. It is billed to no one, and said: a log line, a metric and the
//     evidence of the next bill on the port.
//   - no counter (reference map v1, most third-party maps): the same, when
//     polls were missed since the quiet reading; with none missed the energy
//     is the new session's (no session can begin and end between two polls).
//
// The quiet reading is kept in memory: after a restart the first quiet
// reading sets it again, and a session that began while the bridge was down
// is billed from its first reading (recovery.go).

// quietReading is the pile's latest reading with no session open.
type quietReading struct {
	set      bool
	mwh, res int64
	at       time.Time
	count    int64
	hasCount bool
	missed   bool // a poll failed since it was taken
}

// Unattributed is energy the meter counted while the line was away that no
// rule could give to a session: the readings around it, and how many
// sessions began in between (0: not known).
type Unattributed struct {
	MWh      int64     `json:"mwh"`
	FromMWh  int64     `json:"from_mwh"`
	FromAt   time.Time `json:"from_at"`
	ToMWh    int64     `json:"to_mwh"`
	ToAt     time.Time `json:"to_at"`
	Sessions int64     `json:"sessions,omitempty"`
	Why      string    `json:"why"`
}

// quietStatus: the pile delivers nothing for a session in this status.
func quietStatus(s meter.Status) bool {
	switch s {
	case meter.StatusIdle, meter.StatusPlugged, meter.StatusFinished, meter.StatusFault, meter.StatusStartFailed, meter.StatusUnknown:
		return true
	}
	return false
}

// noteQuiet keeps r as the quiet reading when no session is open after the
// step and the pile delivers nothing.
func (m *Machine) noteQuiet(r meter.Reading) {
	if m.sess != nil || !quietStatus(r.Status) {
		return
	}
	m.quiet = quietReading{set: true, mwh: r.EnergyMWh, res: r.EnergyResMWh, at: r.Time, count: r.SessionCount, hasCount: r.HasSessionCount}
}

// gapVerdict is what the counters prove about the energy since the quiet
// reading, for a reading taken with no session open.
type gapVerdict struct {
	mwh      int64 // counted since the quiet reading (0: the register did not move)
	sessions int64 // sessions begun since (counter difference; -1 no counter)
	ok       bool  // the register is continuous with the quiet reading
}

// judgeGap compares r with the quiet reading.
func (m *Machine) judgeGap(r meter.Reading) gapVerdict {
	q := m.quiet
	if !q.set {
		return gapVerdict{}
	}
	v := gapVerdict{sessions: -1}
	if q.hasCount && r.HasSessionCount {
		v.sessions = (r.SessionCount - q.count) & 0xFFFFFFFF
	}
	v.mwh, v.ok = m.countedSince(q.mwh, q.res, q.at, r)
	return v
}

// countedSince is what the register counted from an earlier reading to r,
// and whether r is continuous with it (not lower, not faster than rated
// power; a rollover is counted across).
func (m *Machine) countedSince(mwh, res int64, at time.Time, r meter.Reading) (int64, bool) {
	var e Energy
	e.Start(mwh, res, at)
	switch st := e.Observe(m.limits, r.EnergyMWh, r.EnergyResMWh, r.Time); st.Outcome {
	case Unchanged:
		return 0, true
	case Increased:
		return st.DeltaMWh, true
	}
	return 0, false
}

// gapBelongs says the energy since the quiet reading is the session that r
// shows (or showed): one began since, by the counter, or no counter and no
// poll missed.
func (m *Machine) gapBelongs(v gapVerdict) bool {
	// a counter that did not move tells nothing (a pile that bumps it late,
	// or never): as without one
	return v.ok && v.mwh > 0 && (v.sessions == 1 || v.sessions <= 0 && !m.quiet.missed)
}

// quietBase is the quiet reading as a baseline for the session r shows.
func (m *Machine) quietBase(r meter.Reading) meter.Reading {
	b := r
	b.EnergyMWh, b.EnergyResMWh, b.Time = m.quiet.mwh, m.quiet.res, m.quiet.at
	return b
}

// leaveUnattributed records energy no rule gives to a session: it is logged
// and counted now, and carried into the evidence of the next bill.
func (m *Machine) leaveUnattributed(u Unattributed) {
	if u.MWh <= 0 {
		return
	}
	m.unattributed.Add(u.MWh)
	m.pendingGap = append(m.pendingGap, u)
	m.log.Warn().Int64("unattributed_mwh", u.MWh).Int64("from_mwh", u.FromMWh).Time("from_at", u.FromAt).
		Int64("to_mwh", u.ToMWh).Time("to_at", u.ToAt).Int64("sessions_begun", u.Sessions).Str("why", u.Why).
		Msg("energy counted while the line was away belongs to no provable session: not billed")
}

// openAfterGap opens the session that r shows when no session is open,
// applying the line-gap rules. It returns whether one opened.
func (m *Machine) openAfterGap(r meter.Reading, now time.Time, st PortState) (bool, error) {
	v := m.judgeGap(r)
	base := r
	switch {
	case m.gapBelongs(v):
		base = m.quietBase(r)
	case v.ok && v.mwh > 0 && (v.sessions != 0 || m.quiet.missed):
		m.leaveUnattributed(Unattributed{MWh: v.mwh, FromMWh: m.quiet.mwh, FromAt: m.quiet.at, ToMWh: r.EnergyMWh, ToAt: r.Time,
			Sessions: max(v.sessions, 0), Why: gapWhy(v)})
	}
	if err := m.open(base, r, now, st); err != nil {
		return false, err
	}
	if base.Time != r.Time {
		if m.gapBefore {
			// the start is a bound: after the quiet reading, before this one
			m.sess.StartSeenAt = r.Time
			m.log.Info().Str("order", m.sess.Order).Int64("from_mwh", base.EnergyMWh).Time("quiet_at", base.Time).Int64("gap_mwh", v.mwh).
				Msg("session began while the line was away: billed from the pile's last quiet reading")
		}
		m.accept(r)
	}
	return true, nil
}

// wholeSessionInGap bills a session that began and ended while the line was
// away: the pile is quiet again, its counter one ahead, its register moved.
func (m *Machine) wholeSessionInGap(r meter.Reading, now time.Time) []Event {
	v, q := m.judgeGap(r), m.quiet
	if !v.ok || v.mwh == 0 || v.sessions == 0 || v.sessions < 0 && !q.missed {
		return nil // nothing moved, or no session began: standby, or two polls in a row
	}
	if v.sessions != 1 {
		m.leaveUnattributed(Unattributed{MWh: v.mwh, FromMWh: q.mwh, FromAt: q.at, ToMWh: r.EnergyMWh, ToAt: r.Time,
			Sessions: max(v.sessions, 0), Why: gapWhy(v)})
		m.quiet = quietReading{} // said once: noteQuiet takes r next
		return nil
	}
	if err := m.open(m.quietBase(r), r, now, Charging); err != nil {
		m.openFailed(err)
		return nil
	}
	s := m.sess
	s.Charged, s.StartSeenAt = true, r.Time
	m.accept(r)
	m.log.Info().Str("order", s.Order).Int64("from_mwh", q.mwh).Time("quiet_at", q.at).Int64("to_mwh", r.EnergyMWh).
		Msg("a whole session began and ended while the line was away: billed from the readings around the gap")
	reason, detail := ReasonCompleted, r.StopReason
	switch r.Status {
	case meter.StatusFault:
		reason, detail = ReasonFault, faultText(r)
	case meter.StatusStartFailed:
		reason = ReasonAborted
	}
	return m.end(reason, detail, r.Time)
}

func gapWhy(v gapVerdict) string {
	switch {
	case v.sessions < 0:
		return "the pile reports no session counter and polls were missed"
	case v.sessions == 0:
		return "the session counter did not move and polls were missed"
	}
	return "the session counter advanced by more than one"
}

// UnattributedMWh is the energy this port's meter counted that no rule
// could give to a session, since the daemon started. Safe from any
// goroutine.
func (m *Machine) UnattributedMWh() int64 { return m.unattributed.Load() }
