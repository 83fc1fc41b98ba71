package session

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/meter"
	"pilebridge/uploader"
)

// PortState is what a port is doing, as the bridge sees it.
type PortState string

const (
	Idle        PortState = "idle"
	Plugged     PortState = "plugged"
	Starting    PortState = "starting"
	Charging    PortState = "charging"
	Finishing   PortState = "finishing"
	Finished    PortState = "finished"
	StartFailed PortState = "start_failed"
	Faulted     PortState = "faulted"
	Offline     PortState = "offline"
)

// Stop descriptions sent as state_desc.
const (
	DescDone        = "充电完成"
	DescUserStop    = "用户停止"
	DescFault       = "故障停止"
	DescStartFailed = "启动失败"
	DescRecovered   = "断电恢复结算"
	DescCommLost    = "通信中断"
	DescCharging    = "充电中"
)

// PortConfig is what the machine needs to know about its port.
type PortConfig struct {
	DeviceNo    string
	DeviceType  int
	PortNo      string
	EnergyCode  string
	RatedPowerW int64 // for the plausibility check; 0 disables it

	ProgressInterval time.Duration
	StartTimeout     time.Duration // starting without charging this long is a failed start
	OfflineAfter     time.Duration // no good reading this long: the port is offline
	OfflineClose     time.Duration // an open session offline this long is closed
	HoldPolls        int           // a lower or implausible reading must persist this many polls

	// Meter-only ports: session from power.
	StartPowerW int64
	StartFor    time.Duration
	StopPowerW  int64
	StopFor     time.Duration

	Mobile     string            // local user id when the pile gives none
	Plates     map[string]string // VIN -> plate
	WantsPlate bool              // the station has parking-fee reduction
	WrapWh     int64             // where the energy register rolls over (0: never)
}

// Session is an open charging session: everything needed to bill it, and to
// resume it after a restart. It is stored on every accepted reading.
type Session struct {
	Order     string             `json:"order"`
	State     PortState          `json:"state"` // starting, charging or finishing
	StartTime time.Time          `json:"start_time"`
	OpenedAt  time.Time          `json:"opened_at"`
	Baseline  int64              `json:"baseline_wh"`
	HasBase   bool               `json:"has_baseline"`
	LastWh    int64              `json:"last_wh"` // last accepted register value
	LastAt    time.Time          `json:"last_at"`
	Quantity  int64              `json:"quantity_wh"`
	Periods   map[string]*Billed `json:"periods"`
	VIN       string             `json:"vin,omitempty"`
	Mobile    string             `json:"mobile,omitempty"` // from the pile, if it reports one
	Plate     string             `json:"plate,omitempty"`
	SOC       int                `json:"soc"`
	HasSOC    bool               `json:"has_soc"`
	Seq       int                `json:"seq"`
	LastSent  time.Time          `json:"last_progress"`
	StepWh    int64              `json:"step_wh,omitempty"` // coarsest register step seen
	Charged   bool               `json:"charged"`           // reached charging

	// While the board's clock is not believed (no RTC, no NTP yet) times are
	// provisional and energy waits unattributed; ClockSettled fixes both.
	Provisional     bool      `json:"provisional,omitempty"` // StartTime/OpenedAt provisional
	LastAtProvision bool      `json:"last_at_provisional,omitempty"`
	PendingWh       int64     `json:"pending_wh,omitempty"`
	PendingFrom     time.Time `json:"pending_from,omitempty"`
	PendingFromProv bool      `json:"pending_from_provisional,omitempty"`

	held      int       // polls a suspicious reading has persisted
	heldWh    int64     // the latest held reading
	heldAt    time.Time // and its time
	heldFirst int64     // the first held reading
	heldFrom  time.Time // and its time
	meterLow  time.Time
}

// Billed is energy and its price sums in one tariff period.
type Billed struct {
	Type   string `json:"type"`
	Wh     int64  `json:"wh"`
	ElecX  int64  `json:"elec_x"`  // Σ Wh × electricity price (1e-5 fen)
	ServeX int64  `json:"serve_x"` // Σ Wh × service price (1e-5 fen)
}

// Fees are a session's charges in fen.
func (s *Session) Fees() (energyFen, serviceFen int64) {
	var e, v int64
	for _, b := range s.Periods {
		e += b.ElecX
		v += b.ServeX
	}
	return Fen(e), Fen(v)
}

// Machine is one port's state machine. It does no I/O: Step takes a poll
// result and returns the records to send; the caller persists Session()
// together with them.
type Machine struct {
	cfg     PortConfig
	tariff  *Tariff
	log     zerolog.Logger
	orders  func(start time.Time) (string, error)
	state   PortState
	sess    *Session
	lastOK  time.Time
	started time.Time // when the machine began, for offline detection

	recovering bool         // a stored session awaits its first reading after restart
	clockOK    bool         // the wall clock is believed
	lastStatus meter.Status // the pile's status at this step
	closedOn   meter.Status // status when the last session closed: no new one until it changes
	closedSet  bool
	highSince  time.Time     // meter-only ports: power above the start threshold since
	highAt     meter.Reading // the reading when it crossed: the session's baseline
}

// NewMachine builds a port's machine. orders issues order numbers.
func NewMachine(cfg PortConfig, tariff *Tariff, orders func(time.Time) (string, error), log zerolog.Logger) *Machine {
	if cfg.HoldPolls <= 0 {
		cfg.HoldPolls = 3
	}
	if cfg.OfflineAfter <= 0 {
		cfg.OfflineAfter = 30 * time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = time.Minute
	}
	if cfg.OfflineClose <= 0 {
		cfg.OfflineClose = 6 * time.Hour
	}
	return &Machine{cfg: cfg, tariff: tariff, orders: orders, log: log, state: Idle, clockOK: true}
}

// ClockUnsettled says the wall clock is not to be believed yet: new stamps
// are provisional and energy is not attributed to tariff periods.
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
	if s.Provisional {
		s.StartTime, s.OpenedAt, s.Provisional = s.StartTime.Add(jump), s.OpenedAt.Add(jump), false
		if !s.LastSent.IsZero() {
			s.LastSent = s.LastSent.Add(jump)
		}
	}
	if s.LastAtProvision {
		s.LastAt, s.LastAtProvision = s.LastAt.Add(jump), false
	}
	if s.PendingWh > 0 {
		from := s.PendingFrom
		if s.PendingFromProv {
			from = from.Add(jump)
		}
		wh := s.PendingWh
		s.PendingWh, s.PendingFrom, s.PendingFromProv = 0, time.Time{}, false
		s.Quantity -= wh // attribute adds it back
		m.attribute(from, s.LastAt, wh)
	}
	m.log.Info().Str("order", s.Order).Dur("jump", jump).Time("start_time", s.StartTime).Msg("clock settled: session times corrected")
	return true
}

// Restore hands the machine a session stored before a restart. The first
// poll decides: still charging resumes it, anything else closes it.
func (m *Machine) Restore(s *Session) {
	m.sess = s
	m.state = s.State
	m.recovering = true
}

// State is the port's present state.
func (m *Machine) State() PortState { return m.state }

// Session is the open session, or nil.
func (m *Machine) Session() *Session { return m.sess }

// Config is the port's configuration.
func (m *Machine) Config() PortConfig { return m.cfg }

// Step advances the machine with one poll. err is the poll's failure, if any.
// changed says the session must be stored again.
func (m *Machine) Step(r meter.Reading, err error, now time.Time) (recs []uploader.Record, changed bool) {
	if m.started.IsZero() {
		m.started = now
	}
	if err != nil || !r.HasEnergy {
		return m.stepOffline(now)
	}
	m.lastOK = now
	status := r.Status
	if !r.HasStatus {
		status = m.powerStatus(r, now)
	}
	if m.recovering {
		m.recovering = false
		if status == meter.StatusCharging || status == meter.StatusFinishing {
			m.log.Info().Str("order", m.sess.Order).Int64("quantity_wh", m.sess.Quantity).Msg("resuming session after restart")
		} else {
			m.log.Warn().Str("order", m.sess.Order).Str("pile_status", status.String()).Msg("session not running after restart, closing with last stored reading")
			return m.closeAt(m.sess.LastAt, DescRecovered, true), true
		}
	}
	m.lastStatus = status
	if m.closedSet && status != m.closedOn {
		m.closedSet = false
	}
	if m.sess != nil && m.accept(r, now) {
		changed = true
	}
	if m.sess != nil {
		if r.HasSOC && (r.SOC != m.sess.SOC || !m.sess.HasSOC) {
			m.sess.SOC, m.sess.HasSOC, changed = r.SOC, true, true
		}
		if r.VIN != "" && m.sess.VIN == "" {
			m.sess.VIN = r.VIN
			m.sess.Plate = m.cfg.Plates[r.VIN]
			changed = true
		}
		if r.Mobile != "" && m.sess.Mobile == "" {
			m.sess.Mobile, changed = r.Mobile, true
		}
	}
	switch status {
	case meter.StatusIdle, meter.StatusPlugged, meter.StatusUnknown:
		m.state = Idle
		if status == meter.StatusPlugged {
			m.state = Plugged
		}
		if m.sess != nil {
			// The pile went back without saying finished (unplugged, or the
			// finished state was shorter than a poll).
			if m.sess.Charged {
				return m.closeAt(now, stopDesc(r, DescUserStop), false), true
			}
			return m.failStart(now, "未开始充电"), true
		}
	case meter.StatusStarting:
		m.state = Starting
		if m.sess == nil {
			if err := m.open(r, now, Starting); err != nil {
				m.openFailed(err)
				return nil, false
			}
			return nil, true
		}
		if !m.sess.Charged && now.Sub(m.sess.OpenedAt) > m.cfg.StartTimeout {
			return m.failStart(now, "超时未开始充电"), true
		}
	case meter.StatusCharging, meter.StatusFinishing:
		m.state = Charging
		if status == meter.StatusFinishing {
			m.state = Finishing
		}
		if m.sess == nil {
			if err := m.open(r, now, m.state); err != nil {
				m.openFailed(err)
				return nil, false
			}
			changed = true
		}
		m.sess.State = m.state
		if !m.sess.Charged {
			m.sess.Charged, changed = true, true
			m.sess.LastSent = time.Time{} // first progress at once
		}
		if m.clockOK && now.Sub(m.sess.LastSent) >= m.cfg.ProgressInterval {
			m.sess.LastSent = now
			return []uploader.Record{m.record(uploader.KindProgress, uploader.StateCharging, DescCharging, m.sess.LastAt)}, true
		}
	case meter.StatusFinished:
		m.state = Finished
		if m.sess != nil {
			if !m.sess.Charged && m.sess.Quantity == 0 {
				return m.failStart(now, stopDesc(r, "未开始充电")), true
			}
			return m.closeAt(now, stopDesc(r, DescDone), false), true
		}
	case meter.StatusFault:
		m.state = Faulted
		if m.sess != nil {
			desc := DescFault
			if r.FaultText != "" {
				desc += ":" + r.FaultText
			}
			if !m.sess.Charged {
				return m.failStart(now, desc), true
			}
			return m.closeAbnormal(now, desc), true
		}
	case meter.StatusStartFailed:
		m.state = StartFailed
		if m.sess == nil {
			// a start that failed before we saw it starting still gets its record
			if err := m.open(r, now, Starting); err != nil {
				m.openFailed(err)
				return nil, false
			}
		}
		if !m.sess.Charged {
			reason := r.StopReason
			if reason == "" && r.FaultText != "" {
				reason = r.FaultText
			}
			return m.failStart(now, reason), true
		}
		return m.closeAbnormal(now, DescStartFailed), true
	}
	return nil, changed
}

func stopDesc(r meter.Reading, fallback string) string {
	if r.StopReason != "" {
		return r.StopReason
	}
	return fallback
}

// stepOffline handles a failed poll.
func (m *Machine) stepOffline(now time.Time) ([]uploader.Record, bool) {
	last := m.lastOK
	if last.IsZero() {
		last = m.started
	}
	if now.Sub(last) < m.cfg.OfflineAfter {
		return nil, false
	}
	if m.state != Offline {
		m.log.Warn().Dur("silent_for", now.Sub(last)).Msg("port offline")
	}
	m.state = Offline
	if m.sess == nil {
		return nil, false
	}
	if m.recovering {
		// restarted and the pile never answered: bill what was stored
		m.recovering = false
		return m.closeAt(m.sess.LastAt, DescRecovered, true), true
	}
	if now.Sub(m.sess.LastAt) >= m.cfg.OfflineClose {
		return m.closeAt(m.sess.LastAt, DescCommLost, true), true
	}
	return nil, false
}

// open starts a session at now.
func (m *Machine) open(r meter.Reading, now time.Time, st PortState) error {
	if m.closedSet {
		// the pile still shows the status the last session ended on
		return errStillClosed
	}
	order, err := m.orders(now)
	if err != nil {
		return fmt.Errorf("order number: %w", err)
	}
	if !r.HasStatus && !m.highAt.Time.IsZero() {
		// meter-only: the session began when power crossed the threshold
		now, r = m.highAt.Time, m.highAt
		m.highAt = meter.Reading{}
	}
	m.sess = &Session{Order: order, State: st, StartTime: now, OpenedAt: now, Periods: map[string]*Billed{}, Provisional: !m.clockOK}
	if !m.clockOK {
		m.log.Warn().Str("order", order).Msg("session opened before the clock is believed: start time is provisional until it is")
	}
	// the baseline latches on this, the first good reading of the session
	m.sess.Baseline, m.sess.HasBase = r.EnergyWh, true
	m.sess.LastWh, m.sess.LastAt, m.sess.LastAtProvision = r.EnergyWh, r.Time, !m.clockOK
	m.sess.StepWh = r.EnergyStepWh
	if r.Quantised() {
		m.log.Warn().Str("order", order).Int64("step_wh", r.EnergyStepWh).Msg("energy register cannot resolve 1 Wh: session energy is quantised")
	}
	if r.VIN != "" {
		m.sess.VIN, m.sess.Plate = r.VIN, m.cfg.Plates[r.VIN]
	}
	if r.HasSOC {
		m.sess.SOC, m.sess.HasSOC = r.SOC, true
	}
	m.sess.Mobile = r.Mobile
	m.log.Info().Str("order", order).Int64("baseline_wh", r.EnergyWh).Str("state", string(st)).Msg("session opened")
	return nil
}

var errStillClosed = errors.New("pile still in the status its last session ended on")

// accept applies an energy reading to the open session. It returns true
// when the reading was accepted (and the session must be stored).
func (m *Machine) accept(r meter.Reading, now time.Time) bool {
	s := m.sess
	if !s.HasBase {
		s.Baseline, s.LastWh, s.LastAt, s.HasBase = r.EnergyWh, r.EnergyWh, r.Time, true
		return true
	}
	if r.EnergyStepWh > s.StepWh {
		s.StepWh = r.EnergyStepWh
	}
	delta := r.EnergyWh - s.LastWh
	if delta < 0 {
		if w := wrapOf(s.LastWh, r.EnergyWh, m.cfg.WrapWh); w > 0 {
			delta = w
		} else {
			return m.hold(r, "energy went down", now)
		}
	}
	if limit := m.plausibleWh(r.Time.Sub(s.LastAt)); limit >= 0 && delta > limit {
		return m.hold(r, "energy rose faster than the rated power allows", now)
	}
	s.held = 0
	if delta == 0 && !r.Time.After(s.LastAt) {
		return false
	}
	m.attribute(s.LastAt, r.Time, delta)
	s.LastWh, s.LastAt, s.LastAtProvision = r.EnergyWh, r.Time, !m.clockOK
	return true
}

// hold keeps a suspicious reading out until it persists; then the meter was
// reset or swapped and the session continues from the new register value
// with the energy already counted kept.
func (m *Machine) hold(r meter.Reading, why string, now time.Time) bool {
	s := m.sess
	consistent := s.held > 0 && r.EnergyWh >= s.heldWh
	if lim := m.plausibleWh(r.Time.Sub(s.heldAt)); consistent && lim >= 0 {
		consistent = r.EnergyWh-s.heldWh <= lim
	}
	if !consistent {
		s.held, s.heldFirst, s.heldFrom = 1, r.EnergyWh, r.Time
		s.heldWh, s.heldAt = r.EnergyWh, r.Time
		m.log.Warn().Str("order", s.Order).Int64("last_wh", s.LastWh).Int64("read_wh", r.EnergyWh).Str("why", why).Msg("energy reading held")
		return false
	}
	s.held++
	s.heldWh, s.heldAt = r.EnergyWh, r.Time
	if s.held < m.cfg.HoldPolls {
		return false
	}
	m.log.Warn().Str("order", s.Order).Int64("last_wh", s.LastWh).Int64("new_wh", r.EnergyWh).Int64("kept_quantity_wh", s.Quantity).Msg("meter reset or swapped: continuing from the new register value")
	// count on from the first reading of the new register
	s.held = 0
	m.attribute(s.heldFrom, r.Time, r.EnergyWh-s.heldFirst)
	s.LastWh, s.LastAt, s.LastAtProvision = r.EnergyWh, r.Time, !m.clockOK
	return true
}

// plausibleWh is the most energy the pile can deliver in d (with margin), or
// -1 when no rated power is configured.
func (m *Machine) plausibleWh(d time.Duration) int64 {
	if m.cfg.RatedPowerW <= 0 {
		return -1
	}
	if d < time.Second {
		d = time.Second
	}
	return m.cfg.RatedPowerW*3/2*d.Milliseconds()/3_600_000 + 2 + m.sess.StepWh
}

// wrapOf is the delta when a counter that rolls over at span went from last
// (in its top 1%) to now (in its bottom 1%), or 0 when it did not roll over.
func wrapOf(last, now, span int64) int64 {
	if span > 0 && last < span && last >= span-span/100 && now < span/100 {
		return span - last + now
	}
	return 0
}

// attribute books delta Wh that flowed over [from, to) to the tariff periods.
func (m *Machine) attribute(from, to time.Time, delta int64) {
	s := m.sess
	if !m.clockOK {
		if s.PendingWh == 0 {
			s.PendingFrom, s.PendingFromProv = from, s.LastAtProvision
		}
		s.PendingWh += delta
		s.Quantity += delta
		return
	}
	for _, p := range m.tariff.Split(from, to, delta) {
		b := s.Periods[p.Period.Key()]
		if b == nil {
			b = &Billed{Type: p.Period.Type}
			s.Periods[p.Period.Key()] = b
		}
		b.Wh += p.Wh
		b.ElecX += p.Wh * int64(p.Period.Electricity)
		b.ServeX += p.Wh * int64(p.Period.Service)
	}
	s.Quantity += delta
}

// powerStatus derives a status from power for meter-only ports.
func (m *Machine) powerStatus(r meter.Reading, now time.Time) meter.Status {
	s := m.sess
	if !r.HasPower {
		if s != nil {
			return meter.StatusCharging
		}
		return meter.StatusIdle
	}
	if s == nil {
		if r.PowerW >= m.cfg.StartPowerW && m.cfg.StartPowerW > 0 {
			if m.highSince.IsZero() {
				m.highSince, m.highAt = now, r
			}
			if now.Sub(m.highSince) >= m.cfg.StartFor {
				m.highSince = time.Time{}
				return meter.StatusCharging
			}
		} else {
			m.highSince, m.highAt = time.Time{}, meter.Reading{}
		}
		return meter.StatusIdle
	}
	if r.PowerW < m.cfg.StopPowerW {
		if s.meterLow.IsZero() {
			s.meterLow = now
		}
		if now.Sub(s.meterLow) >= m.cfg.StopFor {
			return meter.StatusFinished
		}
	} else {
		s.meterLow = time.Time{}
	}
	return meter.StatusCharging
}

func (m *Machine) record(kind uploader.Kind, state int, desc string, end time.Time) uploader.Record {
	s := m.sess
	s.Seq++
	e, v := s.Fees()
	rec := uploader.Record{
		Kind: kind, Order: s.Order, Seq: s.Seq, StartTime: s.StartTime, EndTime: end,
		VIN: s.VIN, Plate: s.Plate, Mobile: m.cfg.Mobile,
		QuantityWh: s.Quantity, EnergyFen: e, ServiceFen: v,
		State: state, StateDesc: desc,
		DeviceNo: m.cfg.DeviceNo, DeviceType: m.cfg.DeviceType, PortNo: m.cfg.PortNo, EnergyCode: m.cfg.EnergyCode,
	}
	if s.Mobile != "" {
		rec.Mobile = s.Mobile
	}
	if s.HasSOC {
		soc := s.SOC
		rec.SOC = &soc
	}
	if end.Before(s.StartTime) {
		rec.EndTime = s.StartTime
	}
	return rec
}

// closeAt ends the session as finished (state 3) if it delivered energy,
// else as abnormal (-1). lastStored says the end is the last stored reading.
func (m *Machine) closeAt(end time.Time, desc string, lastStored bool) []uploader.Record {
	m.flushPending()
	s := m.sess
	state := uploader.StateFinished
	kind := uploader.KindFinal
	if s.Quantity == 0 && !s.Charged {
		state, kind = uploader.StateStartFailed, uploader.KindStartFailed
	}
	if !lastStored && end.Before(s.LastAt) {
		end = s.LastAt
	}
	rec := m.record(kind, state, desc, end)
	m.finish(rec)
	return []uploader.Record{rec}
}

func (m *Machine) closeAbnormal(end time.Time, desc string) []uploader.Record {
	m.flushPending()
	rec := m.record(uploader.KindFinal, uploader.StateStartFailed, desc, end)
	m.finish(rec)
	return []uploader.Record{rec}
}

func (m *Machine) failStart(end time.Time, reason string) []uploader.Record {
	desc := DescStartFailed
	if reason != "" {
		desc += ":" + reason
	}
	rec := m.record(uploader.KindStartFailed, uploader.StateStartFailed, desc, end)
	rec.QuantityWh, rec.EnergyFen, rec.ServiceFen = 0, 0, 0
	m.finish(rec)
	return []uploader.Record{rec}
}

// flushPending bills energy still waiting for a believed clock, by the
// provisional times: a bill must carry fees for all its energy.
func (m *Machine) flushPending() {
	s := m.sess
	if s.PendingWh == 0 {
		return
	}
	m.log.Warn().Str("order", s.Order).Int64("wh", s.PendingWh).Msg("session ends before the clock is believed: fees use provisional times")
	wh := s.PendingWh
	s.PendingWh = 0
	s.Quantity -= wh
	ok := m.clockOK
	m.clockOK = true
	m.attribute(s.PendingFrom, s.LastAt, wh)
	m.clockOK = ok
}

func (m *Machine) openFailed(err error) {
	if !errors.Is(err, errStillClosed) {
		m.log.Error().Err(err).Msg("cannot open session")
	}
}

func (m *Machine) finish(rec uploader.Record) {
	m.closedOn, m.closedSet = m.lastStatus, true
	ev := m.log.Info()
	if rec.Kind == uploader.KindFinal && rec.State == uploader.StateFinished && rec.Plate == "" && m.cfg.WantsPlate {
		ev = m.log.Warn().Str("warning", "no plate: this bill cannot earn the parking-fee reduction")
	}
	ev.Str("order", rec.Order).Str("kind", string(rec.Kind)).Int("state", rec.State).Str("desc", rec.StateDesc).
		Int64("quantity_wh", rec.QuantityWh).Int64("energy_fen", rec.EnergyFen).Int64("service_fen", rec.ServiceFen).Msg("session closed")
	m.sess = nil
}
