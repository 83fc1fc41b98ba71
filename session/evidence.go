package session

import (
	"sort"
	"time"
)

// maxGaps bounds the resets an evidence lists (Energy.Resets counts them all).
const maxGaps = 32

// Gap is a reset or swap of the meter inside a session: the energy between
// the old register's last value and the new one's first is not counted.
type Gap struct {
	OldMWh int64     `json:"old_mwh"`
	OldAt  time.Time `json:"old_at"`
	NewMWh int64     `json:"new_mwh"`
	NewAt  time.Time `json:"new_at"`
}

// Evidence is what a bill's quantity comes from: the meter's start and end
// readings (mWh, as read through PT×CT, at the register's resolution), the
// resets and rollovers between them, and how the energy fell into tariff
// periods. Quantity = round(End − Start − Σ(gap New − Old) + Wraps×WrapMWh),
// rounded once (docs/billing.md).
type Evidence struct {
	StartMWh   int64            `json:"start_mwh"`
	StartAt    time.Time        `json:"start_at"`
	EndMWh     int64            `json:"end_mwh"`
	EndAt      time.Time        `json:"end_at"`
	ResMWh     int64            `json:"res_mwh"`
	Gaps       []Gap            `json:"gaps,omitempty"`
	Resets     int              `json:"resets,omitempty"` // all of them; Gaps lists the first maxGaps
	Wraps      int              `json:"wraps,omitempty"`
	WrapMWh    int64            `json:"wrap_mwh,omitempty"`
	CountedMWh int64            `json:"counted_mwh"`
	Periods    []PeriodEvidence `json:"periods,omitempty"`
	// StartSeenAt: the session began while the line was away, after StartAt
	// (the pile's last quiet reading) and before this.
	StartSeenAt time.Time `json:"start_seen_at,omitzero"`
	// Unattributed: energy the meter counted before this session, while the
	// line was away, that no rule could give to a session (not in this bill).
	Unattributed []Unattributed `json:"unattributed,omitempty"`
}

// PeriodEvidence is one tariff period's share of the session.
type PeriodEvidence struct {
	Key         string `json:"key"`
	Type        string `json:"type"`
	MWh         int64  `json:"mwh"`
	Wh          int64  `json:"wh"` // after the one cumulative rounding
	Electricity Price  `json:"electricity_price"`
	Service     Price  `json:"service_price"`
}

// evidence is the session's evidence as it stands.
func (s *Session) evidence(b Bill) *Evidence {
	e := s.Energy
	ev := &Evidence{StartMWh: e.BaseMWh, StartAt: e.BaseAt, EndMWh: e.LastMWh, EndAt: e.LastAt, ResMWh: e.ResMWh,
		Gaps: append([]Gap(nil), e.Gaps...), Resets: e.Resets, Wraps: e.Wraps, WrapMWh: e.WrapMWh, CountedMWh: e.CountedMWh,
		StartSeenAt: s.StartSeenAt, Unattributed: append([]Unattributed(nil), s.Unattributed...)}
	wh := map[string]int64{}
	for _, p := range b.Periods {
		wh[p.Key] = p.Wh
	}
	keys := make([]string, 0, len(s.Periods))
	for k := range s.Periods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := s.Periods[k]
		ev.Periods = append(ev.Periods, PeriodEvidence{Key: k, Type: p.Type, MWh: p.MWh, Wh: wh[k], Electricity: p.Electricity, Service: p.Service})
	}
	return ev
}

// ComputedMWh is the energy the readings show: end − start − the gaps
// across resets + the rollovers.
func (ev *Evidence) ComputedMWh() int64 {
	mwh := ev.EndMWh - ev.StartMWh + int64(ev.Wraps)*ev.WrapMWh
	for _, g := range ev.Gaps {
		mwh -= g.NewMWh - g.OldMWh
	}
	return mwh
}
