// Package session turns a port's readings into charging sessions: the state
// machine, energy accounting in integer Wh, time-of-use fees in integer fen,
// and crash-safe persistence.
package session

import (
	"fmt"
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Price is yuan per kWh in units of 0.0001 yuan (0.8523 yuan/kWh = 8523).
type Price int64

// ParsePrice reads a yuan amount with at most 4 decimals, exactly.
func ParsePrice(s string) (Price, error) {
	s = strings.TrimSpace(s)
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(frac) > 4 || strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("price %q: want yuan per kWh with at most 4 decimals, e.g. 0.8523", s)
	}
	frac += strings.Repeat("0", 4-len(frac))
	w, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil || w > 1000 {
		return 0, fmt.Errorf("price %q: want yuan per kWh with at most 4 decimals, e.g. 0.8523", s)
	}
	return Price(w*10000 + f), nil
}

func (p Price) String() string { return fmt.Sprintf("%d.%04d", p/10000, p%10000) }

// Period is a span of the day with its prices. Start and End are minutes
// after local midnight, End exclusive.
type Period struct {
	Start, End  int
	Type        string // sharp, peak, flat, valley
	Electricity Price
	Service     Price
}

// Key names the period stably in stored sessions: type@hh:mm.
func (p Period) Key() string { return string(p.appendKey(nil)) }

// appendKey appends Key to dst without formatting: booking a reading looks
// its period up by key on every poll.
func (p Period) appendKey(dst []byte) []byte {
	h, m := p.Start/60, p.Start%60
	return append(append(dst, p.Type...), '@', byte('0'+h/10), byte('0'+h%10), ':', byte('0'+m/10), byte('0'+m%10))
}

// Tariff is a day of time-of-use periods in a time zone.
type Tariff struct {
	Loc     *time.Location
	Periods []Period // sorted, covering [0, 1440) exactly
}

// PeriodSpec is one period as configured: "HH:MM" bounds, prices as text.
type PeriodSpec struct {
	Start, End           string
	Type                 string
	Electricity, Service string
}

var periodTypes = map[string]bool{"sharp": true, "peak": true, "flat": true, "valley": true}

// NewTariff validates that the periods cover the day without overlap. A
// period whose end is before its start runs over midnight.
func NewTariff(zone string, specs []PeriodSpec) (*Tariff, error) {
	if zone == "" {
		return nil, fmt.Errorf("tariff.time_zone must be set")
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("tariff.time_zone %q: %w", zone, err)
	}
	t := &Tariff{Loc: loc}
	for i, s := range specs {
		where := fmt.Sprintf("tariff.periods[%d]", i)
		start, err := parseClock(s.Start)
		if err != nil {
			return nil, fmt.Errorf("%s.start: %w", where, err)
		}
		end, err := parseClock(s.End)
		if err != nil {
			return nil, fmt.Errorf("%s.end: %w", where, err)
		}
		if end == 0 {
			end = 1440
		}
		if !periodTypes[s.Type] {
			return nil, fmt.Errorf("%s.type %q: want sharp, peak, flat or valley", where, s.Type)
		}
		el, err := ParsePrice(s.Electricity)
		if err != nil {
			return nil, fmt.Errorf("%s.electricity: %w", where, err)
		}
		sv, err := ParsePrice(s.Service)
		if err != nil {
			return nil, fmt.Errorf("%s.service: %w", where, err)
		}
		if start == end {
			return nil, fmt.Errorf("%s: empty period %s-%s", where, s.Start, s.End)
		}
		if end < start { // over midnight
			t.Periods = append(t.Periods, Period{start, 1440, s.Type, el, sv}, Period{0, end, s.Type, el, sv})
		} else {
			t.Periods = append(t.Periods, Period{start, end, s.Type, el, sv})
		}
	}
	if len(t.Periods) == 0 {
		return nil, fmt.Errorf("tariff.periods: none given; a flat day is one period 00:00-24:00")
	}
	sort.Slice(t.Periods, func(i, j int) bool { return t.Periods[i].Start < t.Periods[j].Start })
	at := 0
	for _, p := range t.Periods {
		switch {
		case p.Start > at:
			return nil, fmt.Errorf("tariff.periods: %s-%s is not covered", clock(at), clock(p.Start))
		case p.Start < at:
			return nil, fmt.Errorf("tariff.periods: %s-%s is covered twice", clock(p.Start), clock(min(at, p.End)))
		}
		at = p.End
	}
	if at != 1440 {
		return nil, fmt.Errorf("tariff.periods: %s-24:00 is not covered", clock(at))
	}
	return t, nil
}

func parseClock(s string) (int, error) {
	if s == "24:00" {
		return 1440, nil
	}
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q: want HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// periodAt returns the period in force at the wall-clock time of at, and
// the next instant at which it may change: the period's end on the wall
// clock, or an earlier change of the zone's offset (daylight saving), after
// which the wall clock is read again. The returned instant is always after
// at, so a loop over it advances.
func (t *Tariff) periodAt(at time.Time) (Period, time.Time) {
	lt := at.In(t.Loc)
	sec := lt.Hour()*3600 + lt.Minute()*60 + lt.Second()
	p := t.find(sec / 60)
	next := at.Add(time.Duration(p.End*60-sec)*time.Second - time.Duration(lt.Nanosecond()))
	_, off := lt.Zone()
	if _, o := next.In(t.Loc).Zone(); o != off {
		next = t.offsetChange(at, next, off)
	}
	return p, next
}

// find is the period holding minute-of-day min.
func (t *Tariff) find(min int) Period {
	for _, p := range t.Periods {
		if min >= p.Start && min < p.End {
			return p
		}
	}
	return t.Periods[len(t.Periods)-1] // unreachable: validation covers [0, 1440)
}

// offsetChange finds, to the second, the first instant in (lo, hi] at which
// the zone's offset is no longer off; lo has offset off and hi does not.
func (t *Tariff) offsetChange(lo, hi time.Time, off int) time.Time {
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if _, o := mid.In(t.Loc).Zone(); o == off {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// Split attributes amount (any unit: mWh in sessions), which flowed evenly
// over [from, to), to the periods by the time spent in each. The parts sum
// to amount exactly.
func (t *Tariff) Split(from, to time.Time, amount int64) []Part {
	if amount == 0 {
		return nil
	}
	total := to.Sub(from).Milliseconds() // ms keep amount × elapsed far from overflow
	if total <= 0 {
		p, _ := t.periodAt(to)
		return []Part{{Period: p, Amount: amount}}
	}
	var parts []Part
	var given int64
	for at := from; at.Before(to); {
		p, end := t.periodAt(at)
		if end.After(to) {
			end = to
		}
		share := mulDiv(amount, end.Sub(from).Milliseconds(), total) // cumulative, so rounding never drifts
		if end.Equal(to) {
			share = amount
		}
		if n := len(parts); n > 0 && parts[n-1].Period.Type == p.Type && parts[n-1].Period.Start == p.Start { // the same Key
			parts[n-1].Amount += share - given
		} else if share-given != 0 {
			parts = append(parts, Part{Period: p, Amount: share - given})
		}
		given = share
		at = end
	}
	return parts
}

// mulDiv is a × b / c for 0 ≤ b ≤ c, without overflowing a × b.
func mulDiv(a, b, c int64) int64 {
	if a < 0 {
		return -mulDiv(-a, b, c)
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	q, _ := bits.Div64(hi, lo, uint64(c)) // hi < c since b ≤ c
	return int64(q)
}

// Part is an amount attributed to one period.
type Part struct {
	Period Period
	Amount int64
}

// Fen converts Σ Wh × price (0.0001 yuan/kWh, so units of 1e-5 fen) to fen,
// rounding half up once.
func Fen(whTimesPrice int64) int64 { return (whTimesPrice + 50_000) / 100_000 }
