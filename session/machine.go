package session

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/internal/pii"
	"pilebridge/meter"
)

// PortConfig is what the machine needs to know about its port.
type PortConfig struct {
	RatedPowerW int64 // for the plausibility check; 0 disables it

	ProgressInterval time.Duration
	StartTimeout     time.Duration // starting without charging this long is a failed start
	OfflineAfter     time.Duration // no good reading this long: the port is offline
	OfflineClose     time.Duration // an open session offline this long is closed
	HoldPolls        int           // a lower or implausible reading must persist this many polls

	// Meter-only ports: sessions from power.
	StartPowerW int64
	StartFor    time.Duration
	StopPowerW  int64
	StopFor     time.Duration

	Plates  map[string]string // VIN -> plate
	WrapMWh int64             // where the energy register rolls over (0: never)
}

// Machine is one port's state machine. It does no I/O: Step takes a poll
// result and returns the events to report; the caller stores Session()
// together with them.
type Machine struct {
	cfg    PortConfig
	limits Limits
	edges  Edges
	tariff *Tariff
	log    zerolog.Logger
	orders func(start time.Time) string

	state   PortState
	sess    *Session
	lastOK  time.Time
	started time.Time // the first step: the restart, for offline detection

	recovering    bool      // a stored session awaits its first reading after a restart
	pollFailed    bool      // a poll failed since the last good reading
	gapBefore     bool      // the reading being stepped follows failed polls (or a restart)
	clockOK       bool      // the wall clock is believed
	startingSince time.Time // the start timeout runs from here
	lastStatus    meter.Status
	closedOn      meter.Status // status when the last session closed: no new one until it changes
	closedCount   int64        // and the pile's session counter then
	closedSet     bool
	resets        atomic.Int64 // meter resets/swaps seen, read by the metrics scrape

	quiet        quietReading   // the pile's latest reading with no session open (linegap.go)
	pendingGap   []Unattributed // unattributed energy for the next session's evidence
	unattributed atomic.Int64   // mWh no rule could bill, read by the metrics scrape
}

// NewMachine builds a port's machine. orders issues order numbers. The
// rules' durations and counts are values, not defaults: internal/config
// completes a loaded config, and a zero where a rule needs a value is an
// error here rather than a silent second default.
func NewMachine(cfg PortConfig, tariff *Tariff, orders func(time.Time) string, log zerolog.Logger) (*Machine, error) {
	for _, need := range []struct {
		name string
		ok   bool
	}{
		{"progress_interval", cfg.ProgressInterval > 0},
		{"start_timeout", cfg.StartTimeout > 0},
		{"offline_after", cfg.OfflineAfter > 0},
		{"offline_close", cfg.OfflineClose > 0},
		{"hold_polls", cfg.HoldPolls > 0},
		{"a tariff", tariff != nil},
		{"an order number source", orders != nil},
	} {
		if !need.ok {
			return nil, fmt.Errorf("session machine: %s must be set", need.name)
		}
	}
	return &Machine{
		cfg: cfg, tariff: tariff, orders: orders, log: log, state: Idle, clockOK: true,
		limits: Limits{RatedPowerW: cfg.RatedPowerW, HoldPolls: cfg.HoldPolls, WrapMWh: cfg.WrapMWh},
		edges: Edges{StartPowerW: cfg.StartPowerW, StartFor: cfg.StartFor, StopPowerW: cfg.StopPowerW,
			StopFor: cfg.StopFor, MaxGap: cfg.OfflineAfter},
	}, nil
}

// ClockUnsettled says the wall clock is not to be believed yet: new stamps
// are provisional and energy is not booked to tariff periods.
func (m *Machine) ClockUnsettled() { m.clockOK = false }

// ClockSettled says the clock is believed now, after it jumped by jump since
// the provisional stamps were made. It returns true when the session changed.
func (m *Machine) ClockSettled(jump time.Duration) bool {
	if m.clockOK {
		return false
	}
	m.clockOK = true
	s := m.sess
	if s == nil {
		return false
	}
	s.settle(jump)
	if s.PendingMWh > 0 {
		mwh := s.PendingMWh
		s.PendingMWh = 0
		book(s.Periods, m.tariff, s.PendingFrom, s.Energy.LastAt, mwh)
		s.PendingFrom = time.Time{}
	}
	m.log.Info().Str("order", s.Order).Int64("jump_ms", jump.Milliseconds()).Time("start_time", s.StartTime).Msg("clock settled: session times corrected")
	return true
}

// Restore hands the machine a session stored before a restart. The first
// good reading decides what became of it (recovery.go).
func (m *Machine) Restore(s *Session) {
	if s.Periods == nil {
		s.Periods = map[string]*Billed{}
	}
	m.sess, m.state, m.recovering, m.startingSince = s, s.State, true, s.OpenedAt
	m.pollFailed = true // the bridge was down: nothing was seen meanwhile
}

// State is the port's present state.
func (m *Machine) State() PortState { return m.state }

// Session is the open session, or nil.
func (m *Machine) Session() *Session { return m.sess }

// MeterResets counts the meter resets or swaps this port has seen since the
// daemon started. Safe to call from any goroutine.
func (m *Machine) MeterResets() int64 { return m.resets.Load() }

// Step advances the machine with one poll. err is the poll's failure, if any.
// changed says the session must be stored again.
func (m *Machine) Step(r meter.Reading, err error, now time.Time) (evs []Event, changed bool) {
	if m.started.IsZero() {
		m.started = now
	}
	if err != nil || !r.HasEnergy {
		m.quiet.missed = m.quiet.set
		m.pollFailed = true
		return m.stepOffline(now)
	}
	m.lastOK = now
	m.gapBefore, m.pollFailed = m.pollFailed, false
	if m.recovering {
		m.recovering = false
		evs, changed = m.recover(r, now)
	}
	var more []Event
	var ch bool
	if r.HasStatus {
		more, ch = m.stepPile(r, now)
	} else {
		more, ch = m.stepMeter(r, now)
	}
	return append(evs, more...), changed || ch
}

// stepOffline handles a failed poll: the same rule in normal running and
// after a restart (offline_close from the last stored reading).
func (m *Machine) stepOffline(now time.Time) ([]Event, bool) {
	last := m.lastOK
	if last.IsZero() {
		last = m.started
	}
	if now.Sub(last) < m.cfg.OfflineAfter {
		return nil, false
	}
	if m.state != Offline {
		m.log.Warn().Int64("silent_for_ms", now.Sub(last).Milliseconds()).Msg("port offline")
	}
	m.state = Offline
	if m.sess == nil || now.Sub(m.sess.Energy.LastAt) < m.cfg.OfflineClose {
		return nil, false
	}
	m.recovering = false
	return m.end(ReasonCommLost, "", m.sess.Energy.LastAt), true
}

// stepPile follows a pile that reports its status.
func (m *Machine) stepPile(r meter.Reading, now time.Time) (evs []Event, changed bool) {
	defer m.noteQuiet(r)
	status := r.Status
	m.lastStatus = status
	if m.closedSet && (status != m.closedOn || (r.HasSessionCount && r.SessionCount != m.closedCount)) {
		m.closedSet = false
	}
	if m.sess != nil && m.newSession(r) {
		evs, changed = m.supersede(r), true
	}
	if m.sess != nil {
		changed = m.accept(r) || changed
		changed = m.identify(r) || changed
	}
	switch status {
	case meter.StatusIdle, meter.StatusPlugged, meter.StatusUnknown:
		m.state = Idle
		if status == meter.StatusPlugged {
			m.state = Plugged
		}
		if m.sess != nil {
			// back without saying finished (unplugged, or finished was shorter than a poll)
			return append(evs, m.end(ReasonUnplugged, r.StopReason, r.Time)...), true
		}
		if more := m.wholeSessionInGap(r, now); len(more) > 0 {
			return append(evs, more...), true
		}
	case meter.StatusStarting:
		m.state = Starting
		if m.sess != nil && m.sess.Charged {
			// charging → starting: the pile began another session
			evs = append(evs, m.end(ReasonSuperseded, "", m.sess.Energy.ChangedAt)...)
			m.closedSet, changed = false, true
		}
		if m.sess == nil {
			if _, err := m.openAfterGap(r, now, Starting); err != nil {
				m.openFailed(err)
				return evs, changed
			}
			return evs, true
		}
		if !m.sess.Charged && now.Sub(m.startingSince) > m.cfg.StartTimeout {
			// no detail: the pile said nothing; the words are the uploader's
			return append(evs, m.end(ReasonTimeout, "", r.Time)...), true
		}
	case meter.StatusCharging, meter.StatusFinishing:
		m.state = Charging
		if status == meter.StatusFinishing {
			m.state = Finishing
		}
		if m.sess == nil {
			if _, err := m.openAfterGap(r, now, m.state); err != nil {
				m.openFailed(err)
				return evs, changed
			}
			changed = true
		}
		return append(evs, m.charging(m.sess.Energy.LastAt)...), true
	case meter.StatusFinished:
		m.state = Finished
		if m.sess != nil {
			return append(evs, m.end(ReasonCompleted, r.StopReason, r.Time)...), true
		}
		if more := m.wholeSessionInGap(r, now); len(more) > 0 {
			return append(evs, more...), true
		}
	case meter.StatusFault:
		m.state = Faulted
		if m.sess != nil {
			return append(evs, m.end(ReasonFault, faultText(r), r.Time)...), true
		}
		if more := m.wholeSessionInGap(r, now); len(more) > 0 {
			return append(evs, more...), true
		}
	case meter.StatusStartFailed:
		m.state = StartFailed
		if m.sess == nil {
			if more := m.wholeSessionInGap(r, now); len(more) > 0 {
				return append(evs, more...), true // it delivered before it failed
			}
			// a start that failed before we saw it starting still gets its record
			if err := m.open(r, r, now, Starting); err != nil {
				m.openFailed(err)
				return evs, changed
			}
		}
		detail := r.StopReason
		if detail == "" {
			detail = r.FaultText
		}
		return append(evs, m.end(ReasonAborted, detail, r.Time)...), true
	}
	return evs, changed
}

// stepMeter follows a meter-only port: sessions from power (edges.go).
func (m *Machine) stepMeter(r meter.Reading, now time.Time) (evs []Event, changed bool) {
	m.closedSet = false // the power edges alone decide on a meter-only port
	if m.sess == nil {
		m.state = Idle
		started, base := m.edges.Idle(r)
		if !started {
			return nil, false
		}
		if err := m.open(base, r, now, Charging); err != nil {
			m.openFailed(err)
			return nil, false
		}
	}
	// from here the session always changed: its reading is taken in
	s := m.sess
	m.state = Charging
	m.accept(r)
	m.identify(r)
	low, ended := m.edges.Open(r, s.LowSince)
	s.LowSince = low
	if ended {
		m.state = Finished
		evs = m.end(ReasonPowerFell, "", m.meterEnd())
		m.edges.Closed(r)
		return evs, true
	}
	return m.charging(m.meterEnd()), true
}

// meterEnd is a meter-only session's end so far: when power fell below the
// stop threshold, or the last increase if the meter still counted after it.
func (m *Machine) meterEnd() time.Time {
	s := m.sess
	if s.LowSince.IsZero() {
		return s.Energy.LastAt
	}
	if s.Energy.ChangedAt.After(s.LowSince) {
		return s.Energy.ChangedAt
	}
	return s.LowSince
}

// charging marks the session as delivering and reports progress when due.
func (m *Machine) charging(end time.Time) []Event {
	s := m.sess
	s.State = m.state
	if !s.Charged {
		s.Charged = true
		s.LastSent = time.Time{} // first progress at once
	}
	if !m.clockOK || end.Sub(s.LastSent) < m.cfg.ProgressInterval && !s.LastSent.IsZero() {
		return nil
	}
	s.LastSent = end
	return []Event{m.event(EventProgress, "", "", end)}
}

// newSession says the reading proves that the pile began another session:
// its session counter moved, or another car's VIN is shown. A counter one
// ahead, read right after the reading that opened a session that has
// delivered nothing yet, is the same attempt (a pile may update the counter
// a moment after its status); after polls that failed, or a restart, it is
// not: the attempt may have charged, ended and been followed meanwhile.
func (m *Machine) newSession(r meter.Reading) bool {
	s := m.sess
	if s.HasCount && r.HasSessionCount && r.SessionCount != s.Count {
		if !s.Charged && s.Energy.CountedMWh == 0 && !m.gapBefore && r.SessionCount == (s.Count+1)&0xFFFFFFFF {
			s.Count = r.SessionCount
			return false
		}
		return true
	}
	return s.VIN != "" && r.VIN != "" && r.VIN != s.VIN
}

// supersede closes the session that a new one on the pile proved ended.
// The live reading is still the old session's when the pile has delivered
// nothing for the new one: it shows idle or plugged with the counter
// unchanged (only the VIN moved), or starting with the counter one ahead.
// Otherwise the new session's energy is mixed in, and the old closes at its
// last reading.
func (m *Machine) supersede(r meter.Reading) []Event {
	s := m.sess
	counted := !s.HasCount || !r.HasSessionCount
	sameCount := counted || r.SessionCount == s.Count
	nextCount := !counted && r.SessionCount == (s.Count+1)&0xFFFFFFFF
	liveIsOld := (sameCount && (r.Status == meter.StatusIdle || r.Status == meter.StatusPlugged || r.Status == meter.StatusStarting)) ||
		(nextCount && r.Status == meter.StatusStarting)
	if liveIsOld && s.Energy.Continuous(m.limits, r.EnergyMWh, r.EnergyResMWh, r.Time) {
		m.accept(r)
	} else if mwh, ok := m.countedSince(s.Energy.LastMWh, s.Energy.ResMWh, s.Energy.LastAt, r); ok && mwh > 0 {
		// the old session's last Wh and the new one's first, in one sum
		// that nothing splits (docs/billing.md, "A line that was away")
		sessions := int64(0)
		if !counted {
			sessions = (r.SessionCount - s.Count) & 0xFFFFFFFF
		}
		m.leaveUnattributed(Unattributed{MWh: mwh, FromMWh: s.Energy.LastMWh, FromAt: s.Energy.LastAt, ToMWh: r.EnergyMWh, ToAt: r.Time,
			Sessions: sessions, Why: "the session ended and another began while the line was away"})
	}
	m.log.Warn().Str("order", s.Order).Str("vin", pii.VIN(r.VIN)).Int64("session_count", r.SessionCount).Bool("live_reading_is_old", liveIsOld).
		Msg("the pile began a new session: closing this one")
	evs := m.end(ReasonSuperseded, "", s.Energy.ChangedAt)
	m.closedSet = false
	return evs
}

// identify takes the car's identity and SOC from the reading.
func (m *Machine) identify(r meter.Reading) (changed bool) {
	s := m.sess
	if r.HasSOC && (r.SOC != s.SOC || !s.HasSOC) {
		s.SOC, s.HasSOC, changed = r.SOC, true, true
	}
	if r.VIN != "" && s.VIN == "" {
		s.VIN, changed = r.VIN, true
		if p := m.cfg.Plates[r.VIN]; p != "" {
			m.SetPlate(PlateRead{Plate: p, Source: PlateFromVIN, At: r.Time})
		}
	}
	if r.Mobile != "" && s.Mobile == "" {
		s.Mobile, changed = r.Mobile, true
	}
	return changed
}

// open starts a session whose baseline is base (the first reading of a pile
// session; for meter-only, the last reading before power rose).
func (m *Machine) open(base, r meter.Reading, now time.Time, st PortState) error {
	if m.closedSet {
		return errStillClosed
	}
	start := base.Time
	order := m.orders(start)
	s := &Session{Order: order, State: st, StartTime: start, OpenedAt: now, Periods: map[string]*Billed{}, Provisional: !m.clockOK}
	s.Energy.Start(base.EnergyMWh, base.EnergyResMWh, base.Time)
	s.Energy.Provisional = !m.clockOK
	s.Count, s.HasCount = r.SessionCount, r.HasSessionCount
	s.Unattributed, m.pendingGap, m.quiet = m.pendingGap, nil, quietReading{}
	m.sess, m.startingSince = s, now
	m.identify(r)
	if !m.clockOK {
		m.log.Warn().Str("order", order).Msg("session opened before the clock is believed: start time is provisional until it is")
	}
	if base.Quantised() {
		m.log.Warn().Str("order", order).Int64("step_mwh", base.EnergyResMWh).Msg("energy register cannot resolve 1 Wh: the bill is exact to its step")
	}
	m.log.Info().Str("order", order).Int64("baseline_mwh", base.EnergyMWh).Time("start_time", start).Str("state", string(st)).Msg("session opened")
	return nil
}

var errStillClosed = errors.New("pile still in the status its last session ended on")

func (m *Machine) openFailed(err error) {
	if !errors.Is(err, errStillClosed) {
		m.log.Error().Err(err).Msg("cannot open session")
	}
}

// accept applies the reading's energy register to the open session. It
// returns true when the session changed and must be stored.
func (m *Machine) accept(r meter.Reading) bool {
	s := m.sess
	st := s.Energy.Observe(m.limits, r.EnergyMWh, r.EnergyResMWh, r.Time)
	if !m.clockOK {
		s.Energy.Provisional = true
	}
	switch st.Outcome {
	case Held:
		if s.Energy.Hold.Polls == 1 {
			m.log.Warn().Str("order", s.Order).Int64("last_mwh", s.Energy.LastMWh).Int64("read_mwh", r.EnergyMWh).Str("why", st.Why).Msg("energy reading held")
		}
		return true
	case Reset:
		m.resets.Add(1)
		m.log.Warn().Str("order", s.Order).Int64("old_register_mwh", st.LostFrom).Int64("new_register_mwh", st.LostTo).
			Str("why", st.Why).Int64("counted_mwh", s.Energy.CountedMWh).
			Msg("meter reset or swapped: counting on from the new register; energy between the two registers is not known")
		m.book(st.From, st.To, st.DeltaMWh)
		return true
	case Increased:
		m.book(st.From, st.To, st.DeltaMWh)
		return true
	}
	return false
}

// book attributes energy to tariff periods, or keeps it pending while the
// clock is not believed.
func (m *Machine) book(from, to time.Time, mwh int64) {
	s := m.sess
	if mwh == 0 {
		return
	}
	if !m.clockOK {
		if s.PendingMWh == 0 {
			s.PendingFrom, s.PendingFromProv = from, true
		}
		s.PendingMWh += mwh
		return
	}
	book(s.Periods, m.tariff, from, to, mwh)
}

// end closes the session. A session that never charged and counted no
// energy is a failed start; anything that delivered energy gets a bill.
func (m *Machine) end(reason Reason, detail string, end time.Time) []Event {
	s := m.sess
	if s.PendingMWh > 0 {
		m.log.Warn().Str("order", s.Order).Int64("mwh", s.PendingMWh).Msg("session ends before the clock is believed: fees use provisional times")
		book(s.Periods, m.tariff, s.PendingFrom, s.Energy.LastAt, s.PendingMWh)
		s.PendingMWh = 0
	}
	kind := EventClosed
	if !s.Charged && s.Energy.CountedMWh == 0 {
		kind = EventStartFailed
		if reason == ReasonUnplugged || reason == ReasonCompleted {
			reason = ReasonNoCharge
		}
	} else if reason == ReasonTimeout || reason == ReasonNoCharge {
		reason = ReasonAborted
	}
	ev := m.event(kind, reason, detail, end)
	m.closedOn, m.closedCount, m.closedSet = m.lastStatus, s.Count, true
	m.log.Info().Str("order", ev.Order).Str("kind", string(ev.Kind)).Str("reason", string(reason)).Str("detail", detail).
		Int64("quantity_wh", ev.QuantityWh).Int64("energy_fen", ev.EnergyFen).Int64("service_fen", ev.ServiceFen).
		Time("end_time", ev.End).Msg("session closed")
	m.sess = nil
	return []Event{ev}
}

func (m *Machine) event(kind EventKind, reason Reason, detail string, end time.Time) Event {
	s := m.sess
	s.Seq++
	b := s.Bill()
	if end.Before(s.StartTime) {
		end = s.StartTime
	}
	ev := Event{Kind: kind, Order: s.Order, Seq: s.Seq, Start: s.StartTime, End: end,
		QuantityWh: b.QuantityWh, EnergyFen: b.EnergyFen, ServiceFen: b.ServiceFen,
		Reason: reason, Detail: detail, VIN: s.VIN, Plate: s.Plate, PlateSource: s.PlateSource, PlateBy: s.PlateBy, Mobile: s.Mobile, SOC: s.SOC, HasSOC: s.HasSOC}
	if kind == EventStartFailed {
		ev.QuantityWh, ev.EnergyFen, ev.ServiceFen = 0, 0, 0
	} else if kind != EventProgress {
		ev.Evidence = s.evidence(b)
	}
	return ev
}

func faultText(r meter.Reading) string {
	if r.FaultText != "" {
		return r.FaultText
	}
	return r.StopReason
}
