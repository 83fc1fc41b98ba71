package session

import (
	"slices"
	"time"

	"pilebridge/meter"
)

// Billed is energy in one tariff period, at the prices of that period.
type Billed struct {
	Type        string `json:"type"`
	MWh         int64  `json:"mwh"`
	Electricity Price  `json:"electricity"`
	Service     Price  `json:"service"`
}

// Bill is a session's quantity and fees, built from its periods.
type Bill struct {
	QuantityWh int64
	EnergyFen  int64
	ServiceFen int64
	Periods    []PeriodWh
}

// PeriodWh is one period's whole Wh in a bill.
type PeriodWh struct {
	Key string
	Wh  int64
}

// BuildBill rounds the periods' mWh to Wh once: cumulatively, in key order,
// so that Σ period Wh = round(Σ mWh) exactly, then prices each period's Wh
// and rounds the sum to fen once (docs/billing.md, "Quantity" and "Fees").
func BuildBill(periods map[string]*Billed) Bill {
	var b Bill
	b.QuantityWh, b.EnergyFen, b.ServiceFen = sumBill(periods, &b.Periods)
	return b
}

// sumBill is BuildBill's arithmetic; lines, if not nil, gets each period's
// Wh. Without lines it allocates nothing for up to 16 periods (the status
// board asks for the fees on every poll).
func sumBill(periods map[string]*Billed, lines *[]PeriodWh) (wh, energyFen, serviceFen int64) {
	var buf [16]string
	keys := buf[:0]
	for k := range periods {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var cum, given, e, v int64
	for _, k := range keys {
		p := periods[k]
		cum += p.MWh
		w := roundMWh(cum) - given
		given += w
		e += w * int64(p.Electricity)
		v += w * int64(p.Service)
		if lines != nil {
			*lines = append(*lines, PeriodWh{Key: k, Wh: w})
		}
	}
	return given, Fen(e), Fen(v)
}

// roundMWh is mWh to Wh: meter.RoundWh, the one rounding of energy.
func roundMWh(mwh int64) int64 { return meter.RoundWh(mwh) }

// book attributes mWh that flowed evenly over [from, to) to tariff periods.
func book(periods map[string]*Billed, t *Tariff, from, to time.Time, mwh int64) {
	var key [32]byte
	for _, p := range t.Split(from, to, mwh) {
		k := p.Period.appendKey(key[:0])
		b := periods[string(k)] // no allocation: the conversion is only for the lookup
		if b == nil {
			b = &Billed{Type: p.Period.Type, Electricity: p.Period.Electricity, Service: p.Period.Service}
			periods[string(k)] = b
		}
		b.MWh += p.Amount
	}
}
