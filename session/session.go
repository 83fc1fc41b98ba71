package session

import "time"

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

// Session is an open charging session: everything needed to bill it, and to
// resume it after a restart. It is stored on every accepted reading (or at
// most every persist_interval).
type Session struct {
	Order     string             `json:"order"`
	State     PortState          `json:"state"` // starting, charging or finishing
	StartTime time.Time          `json:"start_time"`
	OpenedAt  time.Time          `json:"opened_at"`
	Charged   bool               `json:"charged"` // reached charging
	Energy    Energy             `json:"energy"`
	Periods   map[string]*Billed `json:"periods"`
	// PendingMWh waits for a believed clock before it is booked to periods.
	PendingMWh  int64     `json:"pending_mwh,omitempty"`
	PendingFrom time.Time `json:"pending_from,omitempty"`
	// PendingFromProv: PendingFrom was stamped before the clock was believed.
	PendingFromProv bool `json:"pending_from_provisional,omitempty"`

	// Count is the pile's session counter when the session opened.
	Count    int64  `json:"count,omitempty"`
	HasCount bool   `json:"has_count,omitempty"`
	VIN      string `json:"vin,omitempty"`
	Mobile   string `json:"mobile,omitempty"` // from the pile, if it reports one
	Plate    string `json:"plate,omitempty"`
	// PlateSource and PlateAt: where the plate came from and when it was
	// read (a better read replaces it: SetPlate).
	PlateSource PlateSource `json:"plate_source,omitempty"`
	PlateBy     string      `json:"plate_by,omitempty"` // the attendant who typed it
	PlateAt     time.Time   `json:"plate_at,omitempty"`
	SOC         int         `json:"soc"`
	HasSOC      bool        `json:"has_soc"`

	Seq      int       `json:"seq"`
	LastSent time.Time `json:"last_progress"`
	// LowSince is when power fell below the stop threshold (meter-only), kept
	// so that a restart does not move the session's end.
	LowSince time.Time `json:"low_since,omitempty"`

	// StartSeenAt: the session began while the line was away, after
	// StartTime (the pile's last quiet reading, its baseline) and before
	// this, the first reading that showed it (linegap.go).
	StartSeenAt time.Time `json:"start_seen_at,omitzero"`
	// Unattributed is energy counted before this session that no rule could
	// give to one: carried to the bill's evidence.
	Unattributed []Unattributed `json:"unattributed,omitempty"`

	// Provisional: StartTime and OpenedAt were stamped before the wall clock
	// was believed; ClockSettled shifts them by the jump it finds (and the
	// energy stamps, which carry their own flag).
	Provisional bool `json:"provisional,omitempty"`
}

// QuantityWh is the energy so far, rounded to Wh.
func (s *Session) QuantityWh() int64 { return roundMWh(s.Energy.CountedMWh) }

// Bill is the session's quantity and fees so far.
func (s *Session) Bill() Bill { return BuildBill(s.Periods) }

// Fees are the session's charges so far, in fen.
func (s *Session) Fees() (energyFen, serviceFen int64) {
	_, energyFen, serviceFen = sumBill(s.Periods, nil)
	return energyFen, serviceFen
}

// settle shifts the stamps made before the clock was believed by jump.
func (s *Session) settle(jump time.Duration) {
	if s.Provisional {
		s.StartTime, s.OpenedAt, s.Provisional = s.StartTime.Add(jump), s.OpenedAt.Add(jump), false
		s.Energy.BaseAt = s.Energy.BaseAt.Add(jump)
	}
	if s.Energy.Provisional {
		s.Energy.shift(jump)
		if !s.LowSince.IsZero() {
			s.LowSince = s.LowSince.Add(jump)
		}
	}
	if s.PendingFromProv {
		s.PendingFrom, s.PendingFromProv = s.PendingFrom.Add(jump), false
	}
}
