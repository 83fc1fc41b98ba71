package meter

import (
	"fmt"
	"math"
	"math/big"
)

// RegisterSetter stores registers; the simulator's register bank is one.
type RegisterSetter func(fc uint8, addr uint16, words []uint16)

// Encode writes a reading into registers as this profile's device would
// present it: the inverse of Decode, used by the simulator so that every
// profile can be served over the wire.
func (p *Profile) Encode(r Reading, ratios Ratios, set RegisterSetter) error {
	for name, f := range p.Fields {
		spec, known := fieldTable[name]
		k, floor := max(spec.k, 1), spec.floor
		var v int64
		switch {
		case known && spec.ascii:
			words := make([]uint16, f.Words)
			b := []byte(spec.text(r))
			for i := range words {
				var hi, lo byte = ' ', ' '
				if 2*i < len(b) {
					hi = b[2*i]
				}
				if 2*i+1 < len(b) {
					lo = b[2*i+1]
				}
				words[i] = uint16(hi)<<8 | uint16(lo)
			}
			set(f.FC, f.Addr, words)
			continue
		case known:
			val, ok, err := spec.encode(p, r)
			if err != nil {
				return err
			}
			if !ok {
				if len(f.Invalid) > 0 { // not reported: the value the device shows then
					set(f.FC, f.Addr, splitWords(f, f.Invalid[0]))
				}
				continue
			}
			v = val
		default:
			v = r.Extra[name]
		}
		if f.DecimalsAddr != nil {
			// dp = -offset makes 10^(dp+offset) = 1: the raw register carries
			// the value at the field's scale, losing nothing.
			set(f.FC, *f.DecimalsAddr, []uint16{uint16(int16(-f.DecimalsOffset))})
		}
		bits, err := p.rawFor(f, v, k, floor, ratios)
		if err != nil {
			return err
		}
		set(f.FC, f.Addr, splitWords(f, bits))
	}
	return nil
}

// rawFor inverts value(): raw = v / (k × scale × ratio × 10^(dp+offset)),
// rounded to nearest, or truncated when floor is set.
func (p *Profile) rawFor(f *Field, v, k int64, floor bool, ratios Ratios) (uint64, error) {
	mul := new(big.Rat).Mul(big.NewRat(f.num, f.den), big.NewRat(ratios.factor(f.Ratio)*k, 1))
	x := new(big.Rat).Quo(new(big.Rat).SetInt64(v), mul)
	if f.Type == "f32" {
		fv, _ := x.Float64()
		return uint64(math.Float32bits(float32(fv))), nil
	}
	q, rem := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
	if !floor && new(big.Int).Mul(new(big.Int).Abs(rem), big.NewInt(2)).Cmp(x.Denom()) >= 0 {
		q.Add(q, big.NewInt(int64(x.Sign())))
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("field %s: %d does not fit", f.Name, v)
	}
	n := q.Int64()
	width := 16 * uint(f.words())
	switch f.Type {
	case "i16", "i32", "i64":
		lim := int64(1) << (width - 1)
		if width < 64 && (n < -lim || n >= lim) {
			return 0, fmt.Errorf("field %s: %d does not fit %s", f.Name, v, f.Type)
		}
		return uint64(n) & (^uint64(0) >> (64 - width)), nil
	default:
		if n < 0 || (width < 64 && uint64(n) > ^uint64(0)>>(64-width)) {
			return 0, fmt.Errorf("field %s: %d does not fit %s", f.Name, v, f.Type)
		}
		return uint64(n), nil
	}
}

func splitWords(f *Field, bits uint64) []uint16 {
	n := f.words()
	words := make([]uint16, n)
	for i := 0; i < n; i++ {
		w := uint16(bits >> (16 * uint(n-1-i)))
		if f.Order == "low_first" {
			words[n-1-i] = w
		} else {
			words[i] = w
		}
	}
	return words
}
