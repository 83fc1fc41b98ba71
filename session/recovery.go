package session

import (
	"time"

	"pilebridge/meter"
)

// recover decides, on the first good reading after a restart, what became
// of the stored session (docs/billing.md, "Recovery after a restart"):
//
//   - the pile began a new session meanwhile (session counter or VIN): the
//     stored one closes (supersede: with the live reading if the pile has
//     delivered nothing for the new one yet, else at its last stored reading);
//   - charging or finishing: resume;
//   - starting, never charged: the same attempt, kept, no start-failed record;
//   - otherwise the session ended while the bridge was down: it closes with
//     the live reading if the meter is continuous with the stored one (the
//     energy is the session's), at the last increase the meter can prove;
//     with the stored reading if it is not.
//
// A silent pile is not decided here: stepOffline applies offline_close, as in
// normal running. Meter-only ports resume, and their edge rules decide.
// The caller then steps the same reading as usual, which opens the next
// session where the pile shows one.
func (m *Machine) recover(r meter.Reading, now time.Time) ([]Event, bool) {
	s := m.sess
	log := m.log.With().Str("order", s.Order).Str("pile_status", r.Status.String()).Logger()
	if !r.HasStatus {
		if r.HasPower && r.PowerW < m.cfg.StopPowerW && s.LowSince.IsZero() {
			// power is low now; the register proves nothing rose since ChangedAt
			s.LowSince = s.Energy.ChangedAt
		}
		log.Info().Int64("counted_mwh", s.Energy.CountedMWh).Msg("meter-only session restored: power edges decide")
		return nil, true
	}
	m.lastStatus = r.Status
	if m.newSession(r) {
		log.Warn().Msg("a new session began while the bridge was down")
		return m.supersede(r), true
	}
	switch r.Status {
	case meter.StatusCharging, meter.StatusFinishing:
		log.Info().Int64("counted_mwh", s.Energy.CountedMWh).Msg("resuming session after restart")
		return nil, false
	case meter.StatusStarting:
		if !s.Charged {
			m.startingSince = now
			log.Info().Msg("pile still starting after restart: same session")
			return nil, false
		}
	}
	if !s.Energy.Continuous(m.limits, r.EnergyMWh, r.EnergyResMWh, r.Time) {
		log.Warn().Int64("stored_mwh", s.Energy.LastMWh).Int64("live_mwh", r.EnergyMWh).
			Msg("meter not continuous with the stored reading: closing at the stored reading")
	} else {
		m.accept(r)
	}
	end := s.Energy.ChangedAt
	var evs []Event
	switch r.Status {
	case meter.StatusFault:
		evs = m.end(ReasonFault, faultText(r), end)
	case meter.StatusStartFailed:
		evs = m.end(ReasonAborted, r.StopReason, end)
	default:
		evs = m.end(ReasonRecovered, r.StopReason, end)
	}
	if r.Status == meter.StatusStarting {
		m.closedSet = false // the next session opens on this reading
	}
	log.Info().Time("end_time", end).Msg("session had ended while the bridge was down")
	return evs, true
}
