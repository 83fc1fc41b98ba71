package session

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// The stored form of an open session: CBOR (RFC 8949) maps with small
// integer keys and times as Unix nanoseconds, about 40 % of the JSON it
// replaced. Each session is rewritten on every reading, and fewer bytes per
// session mean fewer bbolt pages per commit (docs/bench.md). Keys are never
// reused: a field that goes away leaves its number unused, and a reader
// ignores numbers it does not know. Sessions stored as JSON by earlier
// versions are still read.

type storedSession struct {
	Order           string                  `cbor:"1,keyasint,omitempty"`
	State           PortState               `cbor:"2,keyasint,omitempty"`
	StartTime       stamp                   `cbor:"3,keyasint,omitempty"`
	OpenedAt        stamp                   `cbor:"4,keyasint,omitempty"`
	Charged         bool                    `cbor:"5,keyasint,omitempty"`
	Energy          storedEnergy            `cbor:"6,keyasint"`
	Periods         map[string]storedBilled `cbor:"7,keyasint,omitempty"`
	PendingMWh      int64                   `cbor:"8,keyasint,omitempty"`
	PendingFrom     stamp                   `cbor:"9,keyasint,omitempty"`
	PendingFromProv bool                    `cbor:"10,keyasint,omitempty"`
	Count           int64                   `cbor:"11,keyasint,omitempty"`
	HasCount        bool                    `cbor:"12,keyasint,omitempty"`
	VIN             string                  `cbor:"13,keyasint,omitempty"`
	Mobile          string                  `cbor:"14,keyasint,omitempty"`
	Plate           string                  `cbor:"15,keyasint,omitempty"`
	SOC             int                     `cbor:"16,keyasint,omitempty"`
	HasSOC          bool                    `cbor:"17,keyasint,omitempty"`
	Seq             int                     `cbor:"18,keyasint,omitempty"`
	LastSent        stamp                   `cbor:"19,keyasint,omitempty"`
	LowSince        stamp                   `cbor:"20,keyasint,omitempty"`
	Provisional     bool                    `cbor:"21,keyasint,omitempty"`
	PlateSource     PlateSource             `cbor:"22,keyasint,omitempty"`
	PlateAt         stamp                   `cbor:"23,keyasint,omitempty"`
	StartSeenAt     stamp                   `cbor:"24,keyasint,omitempty"`
	Unattributed    []storedUnattributed    `cbor:"25,keyasint,omitempty"`
	PlateBy         string                  `cbor:"26,keyasint,omitempty"`
}

type storedUnattributed struct {
	MWh      int64  `cbor:"1,keyasint,omitempty"`
	FromMWh  int64  `cbor:"2,keyasint,omitempty"`
	FromAt   stamp  `cbor:"3,keyasint,omitempty"`
	ToMWh    int64  `cbor:"4,keyasint,omitempty"`
	ToAt     stamp  `cbor:"5,keyasint,omitempty"`
	Sessions int64  `cbor:"6,keyasint,omitempty"`
	Why      string `cbor:"7,keyasint,omitempty"`
}

type storedEnergy struct {
	BaseMWh     int64       `cbor:"1,keyasint,omitempty"`
	BaseAt      stamp       `cbor:"2,keyasint,omitempty"`
	LastMWh     int64       `cbor:"3,keyasint,omitempty"`
	LastAt      stamp       `cbor:"4,keyasint,omitempty"`
	ChangedAt   stamp       `cbor:"5,keyasint,omitempty"`
	RoseFrom    stamp       `cbor:"6,keyasint,omitempty"`
	CountedMWh  int64       `cbor:"7,keyasint,omitempty"`
	ResMWh      int64       `cbor:"8,keyasint,omitempty"`
	Hold        *storedHold `cbor:"9,keyasint,omitempty"`
	Resets      int         `cbor:"10,keyasint,omitempty"`
	Provisional bool        `cbor:"11,keyasint,omitempty"`
	Gaps        []storedGap `cbor:"12,keyasint,omitempty"`
	Wraps       int         `cbor:"13,keyasint,omitempty"`
	WrapMWh     int64       `cbor:"14,keyasint,omitempty"`
}

type storedGap struct {
	OldMWh int64 `cbor:"1,keyasint,omitempty"`
	OldAt  stamp `cbor:"2,keyasint,omitempty"`
	NewMWh int64 `cbor:"3,keyasint,omitempty"`
	NewAt  stamp `cbor:"4,keyasint,omitempty"`
}

type storedHold struct {
	Polls    int    `cbor:"1,keyasint,omitempty"`
	FirstMWh int64  `cbor:"2,keyasint,omitempty"`
	FirstAt  stamp  `cbor:"3,keyasint,omitempty"`
	LastMWh  int64  `cbor:"4,keyasint,omitempty"`
	LastAt   stamp  `cbor:"5,keyasint,omitempty"`
	Why      string `cbor:"6,keyasint,omitempty"`
}

type storedBilled struct {
	Type        string `cbor:"1,keyasint,omitempty"`
	MWh         int64  `cbor:"2,keyasint,omitempty"`
	Electricity Price  `cbor:"3,keyasint,omitempty"`
	Service     Price  `cbor:"4,keyasint,omitempty"`
}

// stamp is a time as Unix nanoseconds; 0 is the zero time (the instant
// 1970-01-01T00:00:00Z itself cannot be told from it, and is never a
// reading's time to the nanosecond).
type stamp int64

func stampOf(t time.Time) stamp {
	if t.IsZero() {
		return 0
	}
	return stamp(t.UnixNano())
}

func (s stamp) time() time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(s)).UTC()
}

// codec encodes and decodes stored sessions.
type codec struct {
	enc cbor.EncMode
	dec cbor.DecMode
	// scratch holds *encScratch: a charging port's session is encoded on
	// every reading, and building its stored form anew each time was a
	// quarter of all the daemon's allocation (docs/bench.md)
	scratch *sync.Pool
}

// encScratch is one encoding's stored form, with the map and slices it
// reuses.
type encScratch struct {
	r       storedSession
	periods map[string]storedBilled
	unattr  []storedUnattributed
	gaps    []storedGap
}

func newCodec() (codec, error) {
	enc, err := cbor.EncOptions{}.EncMode()
	if err != nil {
		return codec{}, err
	}
	dec, err := cbor.DecOptions{}.DecMode()
	if err != nil {
		return codec{}, err
	}
	return codec{enc: enc, dec: dec, scratch: &sync.Pool{New: func() any {
		return &encScratch{periods: map[string]storedBilled{}}
	}}}, nil
}

func (c codec) encode(s *Session) ([]byte, error) {
	sc := c.scratch.Get().(*encScratch)
	defer c.scratch.Put(sc)
	clear(sc.periods)
	sc.unattr, sc.gaps = sc.unattr[:0], sc.gaps[:0]
	e := s.Energy
	r := &sc.r
	*r = storedSession{
		Order: s.Order, State: s.State, StartTime: stampOf(s.StartTime), OpenedAt: stampOf(s.OpenedAt), Charged: s.Charged,
		Energy: storedEnergy{
			BaseMWh: e.BaseMWh, BaseAt: stampOf(e.BaseAt), LastMWh: e.LastMWh, LastAt: stampOf(e.LastAt),
			ChangedAt: stampOf(e.ChangedAt), RoseFrom: stampOf(e.RoseFrom), CountedMWh: e.CountedMWh, ResMWh: e.ResMWh,
			Resets: e.Resets, Provisional: e.Provisional, Wraps: e.Wraps, WrapMWh: e.WrapMWh,
		},
		PendingMWh: s.PendingMWh, PendingFrom: stampOf(s.PendingFrom), PendingFromProv: s.PendingFromProv,
		Count: s.Count, HasCount: s.HasCount, VIN: s.VIN, Mobile: s.Mobile, Plate: s.Plate, SOC: s.SOC, HasSOC: s.HasSOC,
		Seq: s.Seq, LastSent: stampOf(s.LastSent), LowSince: stampOf(s.LowSince), Provisional: s.Provisional,
		PlateSource: s.PlateSource, PlateAt: stampOf(s.PlateAt), StartSeenAt: stampOf(s.StartSeenAt), PlateBy: s.PlateBy,
	}
	for _, u := range s.Unattributed {
		sc.unattr = append(sc.unattr, storedUnattributed{MWh: u.MWh, FromMWh: u.FromMWh, FromAt: stampOf(u.FromAt),
			ToMWh: u.ToMWh, ToAt: stampOf(u.ToAt), Sessions: u.Sessions, Why: u.Why})
	}
	for _, g := range e.Gaps {
		sc.gaps = append(sc.gaps, storedGap{OldMWh: g.OldMWh, OldAt: stampOf(g.OldAt), NewMWh: g.NewMWh, NewAt: stampOf(g.NewAt)})
	}
	if h := e.Hold; h != nil {
		r.Energy.Hold = &storedHold{Polls: h.Polls, FirstMWh: h.FirstMWh, FirstAt: stampOf(h.FirstAt),
			LastMWh: h.LastMWh, LastAt: stampOf(h.LastAt), Why: h.Why}
	}
	if len(sc.unattr) > 0 {
		r.Unattributed = sc.unattr
	}
	if len(sc.gaps) > 0 {
		r.Energy.Gaps = sc.gaps
	}
	for k, b := range s.Periods {
		if b != nil {
			sc.periods[k] = storedBilled{Type: b.Type, MWh: b.MWh, Electricity: b.Electricity, Service: b.Service}
		}
	}
	if len(sc.periods) > 0 {
		r.Periods = sc.periods
	}
	return c.enc.Marshal(r)
}

func (c codec) decode(data []byte) (*Session, error) {
	if len(data) > 0 && data[0] == '{' { // stored by a version before the CBOR form
		var s Session
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, fmt.Errorf("JSON session: %w", err)
		}
		if s.Periods == nil {
			s.Periods = map[string]*Billed{}
		}
		return &s, nil
	}
	var r storedSession
	if err := c.dec.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	e := r.Energy
	s := &Session{
		Order: r.Order, State: r.State, StartTime: r.StartTime.time(), OpenedAt: r.OpenedAt.time(), Charged: r.Charged,
		Energy: Energy{
			BaseMWh: e.BaseMWh, BaseAt: e.BaseAt.time(), LastMWh: e.LastMWh, LastAt: e.LastAt.time(),
			ChangedAt: e.ChangedAt.time(), RoseFrom: e.RoseFrom.time(), CountedMWh: e.CountedMWh, ResMWh: e.ResMWh,
			Resets: e.Resets, Provisional: e.Provisional, Wraps: e.Wraps, WrapMWh: e.WrapMWh,
		},
		Periods:    make(map[string]*Billed, len(r.Periods)),
		PendingMWh: r.PendingMWh, PendingFrom: r.PendingFrom.time(), PendingFromProv: r.PendingFromProv,
		Count: r.Count, HasCount: r.HasCount, VIN: r.VIN, Mobile: r.Mobile, Plate: r.Plate, SOC: r.SOC, HasSOC: r.HasSOC,
		Seq: r.Seq, LastSent: r.LastSent.time(), LowSince: r.LowSince.time(), Provisional: r.Provisional,
		PlateSource: r.PlateSource, PlateAt: r.PlateAt.time(), StartSeenAt: r.StartSeenAt.time(), PlateBy: r.PlateBy,
	}
	for _, u := range r.Unattributed {
		s.Unattributed = append(s.Unattributed, Unattributed{MWh: u.MWh, FromMWh: u.FromMWh, FromAt: u.FromAt.time(),
			ToMWh: u.ToMWh, ToAt: u.ToAt.time(), Sessions: u.Sessions, Why: u.Why})
	}
	for _, g := range e.Gaps {
		s.Energy.Gaps = append(s.Energy.Gaps, Gap{OldMWh: g.OldMWh, OldAt: g.OldAt.time(), NewMWh: g.NewMWh, NewAt: g.NewAt.time()})
	}
	if h := e.Hold; h != nil {
		s.Energy.Hold = &Hold{Polls: h.Polls, FirstMWh: h.FirstMWh, FirstAt: h.FirstAt.time(),
			LastMWh: h.LastMWh, LastAt: h.LastAt.time(), Why: h.Why}
	}
	for k, b := range r.Periods {
		s.Periods[k] = &Billed{Type: b.Type, MWh: b.MWh, Electricity: b.Electricity, Service: b.Service}
	}
	return s, nil
}
