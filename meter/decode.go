package meter

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"time"
)

// Ratios are an installation's transformer ratios (1 when direct-connected).
type Ratios struct {
	PT int64
	CT int64
}

func (r Ratios) factor(kind string) int64 {
	pt, ct := max(r.PT, 1), max(r.CT, 1)
	switch kind {
	case "pt":
		return pt
	case "ct":
		return ct
	case "ptct":
		return pt * ct
	}
	return 1
}

// DecodeError names the field and the raw value that could not be used.
type DecodeError struct {
	Profile string
	Field   string
	Raw     string
	Msg     string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("profile %s field %s: %s (raw %s)", e.Profile, e.Field, e.Msg, e.Raw)
}

// Decode turns the plan's blocks (data[i] holds Blocks()[i]) into a Reading.
func (p *Profile) Decode(data [][]byte, ratios Ratios, at time.Time) (Reading, error) {
	var r Reading
	if err := p.decodeInto(&r, data, ratios, at); err != nil {
		return Reading{}, err
	}
	return r, nil
}

// decodeInto is Decode into *r, which it overwrites: a poller decodes into
// a Reading of its own, which the field decoders (called through function
// values) would otherwise make escape to the heap on every poll.
func (p *Profile) decodeInto(r *Reading, data [][]byte, ratios Ratios, at time.Time) error {
	if len(data) != len(p.blocks) {
		return fmt.Errorf("profile %s: %d blocks given, plan has %d", p.Name, len(data), len(p.blocks))
	}
	for i, b := range p.blocks {
		if len(data[i]) != 2*int(b.Count) {
			return fmt.Errorf("profile %s: block %d has %d bytes, want %d", p.Name, i, len(data[i]), 2*b.Count)
		}
	}
	*r = Reading{Time: at}
	for i := range p.decoders {
		d := &p.decoders[i]
		regs := data[d.block][d.off : d.off+2*d.f.words()]
		if d.f.Type == "ascii" {
			if d.known && d.spec.ascii {
				d.spec.setTxt(r, decodeASCII(regs))
			}
			continue
		}
		v, res, ok, err := p.value(data, d.f, regs, ratios, max(d.spec.k, 1))
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if !d.known {
			if r.Extra == nil {
				r.Extra = map[string]int64{}
			}
			r.Extra[d.name] = v
			continue
		}
		if err := d.spec.decode(p, r, v, res, regs); err != nil {
			return err
		}
	}
	return nil
}

// fieldDecoder is a field with its table entry and the place of its
// registers in the read plan, worked out once when the profile is loaded
// rather than looked up by name on every poll.
type fieldDecoder struct {
	name       string
	f          *Field
	spec       fieldSpec
	known      bool
	block, off int // its registers start at data[block][off]
}

// placeFields places every field in the plan's blocks, in name order.
func (p *Profile) placeFields() []fieldDecoder {
	out := make([]fieldDecoder, 0, len(p.Fields))
	for _, name := range slices.Sorted(maps.Keys(p.Fields)) {
		f := p.Fields[name]
		spec, known := fieldTable[name]
		d := fieldDecoder{name: name, f: f, spec: spec, known: known, block: -1}
		for i, b := range p.blocks {
			if b.FC == f.FC && f.Addr >= b.Addr && int(f.Addr)+f.words() <= b.End() {
				d.block, d.off = i, 2*int(f.Addr-b.Addr)
				break
			}
		}
		if d.block < 0 {
			panic(fmt.Sprintf("profile %s: field %s not in the plan", p.Name, name)) // the plan is made from the fields
		}
		out = append(out, d)
	}
	return out
}

// regs returns the bytes of n registers at addr from whichever block holds them.
func (p *Profile) regs(data [][]byte, fc uint8, addr uint16, n int) []byte {
	for i, b := range p.blocks {
		if b.FC == fc && addr >= b.Addr && int(addr)+n <= b.End() {
			off := 2 * int(addr-b.Addr)
			return data[i][off : off+2*n]
		}
	}
	panic(fmt.Sprintf("profile %s: register %d not in the plan", p.Name, addr)) // validate guarantees it
}

func rawBits(f *Field, regs []byte) uint64 {
	var v uint64
	n := len(regs) / 2
	for i := 0; i < n; i++ {
		w := i
		if f.Order == "low_first" {
			w = n - 1 - i
		}
		v = v<<16 | uint64(binary.BigEndian.Uint16(regs[2*w:]))
	}
	return v
}

// value decodes a field into k × its unit, and the smallest step the register
// can show at that value (in the same units, rounded up).
func (p *Profile) value(data [][]byte, f *Field, regs []byte, ratios Ratios, k int64) (v, res int64, ok bool, err error) {
	bits := rawBits(f, regs)
	width := 16 * uint(f.words())
	if f.InvalidAllOnes && bits == ^uint64(0)>>(64-width) {
		return 0, 0, false, nil
	}
	for _, inv := range f.Invalid {
		if bits == inv {
			return 0, 0, false, nil
		}
	}
	// value = raw × num/den exactly, with the ratio and 10^dp folded in.
	num, den := f.num, f.den
	for _, m := range []int64{ratios.factor(f.Ratio), k} {
		if num > math.MaxInt64/m {
			return 0, 0, false, &DecodeError{Profile: p.Name, Field: f.Name, Raw: fmt.Sprintf("%x", bits), Msg: "scale × ratio overflows"}
		}
		num *= m
	}
	if f.DecimalsAddr != nil {
		dp := int(int16(binary.BigEndian.Uint16(p.regs(data, f.FC, *f.DecimalsAddr, 1)))) + f.DecimalsOffset
		if dp < -9 || dp > 9 {
			return 0, 0, false, &DecodeError{Profile: p.Name, Field: f.Name, Raw: fmt.Sprint(dp - f.DecimalsOffset), Msg: "decimal-point register out of range"}
		}
		for ; dp > 0; dp-- {
			if num > math.MaxInt64/10 {
				return 0, 0, false, &DecodeError{Profile: p.Name, Field: f.Name, Raw: fmt.Sprintf("%x", bits), Msg: "scale × ratio × 10^dp overflows"}
			}
			num *= 10
		}
		for ; dp < 0; dp++ {
			den *= 10 // den ≤ 1e9 from validation, × at most 1e9: fits
		}
	}
	if f.Type != "f32" {
		raw, small := int64(0), false
		switch f.Type {
		case "i16":
			raw, small = int64(int16(bits)), true
		case "i32":
			raw, small = int64(int32(bits)), true
		case "u16", "u32":
			raw, small = int64(bits), true
		}
		// Fast path: |raw| < 2^32 and num < 2^30 keep raw × num inside int64.
		if small && num < 1<<30 {
			return roundDiv(raw*num, den), (num + den - 1) / den, true, nil
		}
	}
	if f.Type == "f32" {
		fv := math.Float32frombits(uint32(bits))
		if math.IsNaN(float64(fv)) || math.IsInf(float64(fv), 0) {
			return 0, 0, false, &DecodeError{Profile: p.Name, Field: f.Name, Raw: fmt.Sprintf("%08x", bits), Msg: "not a number"}
		}
		m := float64(num) / float64(den) // a float32 reading has 24 bits; float64 scaling loses none of them
		x := float64(fv) * m
		if math.Abs(x) > 1<<62 {
			return 0, 0, false, &DecodeError{Profile: p.Name, Field: f.Name, Raw: fmt.Sprintf("%08x", bits), Msg: "value out of range"}
		}
		ulp := float64(math.Nextafter32(float32(math.Abs(float64(fv))), float32(math.Inf(1)))-float32(math.Abs(float64(fv)))) * m
		return int64(math.Round(x)), max(int64(math.Ceil(ulp)), 1), true, nil
	}
	mul := big.NewRat(num, den)
	raw := new(big.Int)
	switch f.Type {
	case "i16":
		raw.SetInt64(int64(int16(bits)))
	case "i32":
		raw.SetInt64(int64(int32(bits)))
	case "i64":
		raw.SetInt64(int64(bits))
	default:
		raw.SetUint64(bits)
	}
	x := new(big.Rat).Mul(new(big.Rat).SetInt(raw), mul)
	// round half away from zero
	q, rem := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
	if new(big.Int).Mul(new(big.Int).Abs(rem), big.NewInt(2)).Cmp(x.Denom()) >= 0 {
		q.Add(q, big.NewInt(int64(x.Sign())))
	}
	if !q.IsInt64() || q.Int64() > 1<<62 || q.Int64() < -(1<<62) {
		return 0, 0, false, &DecodeError{Profile: p.Name, Field: f.Name, Raw: fmt.Sprintf("%x", bits), Msg: "value out of range"}
	}
	step := new(big.Int).Quo(new(big.Int).Add(mul.Num(), new(big.Int).Sub(mul.Denom(), big.NewInt(1))), mul.Denom())
	if !step.IsInt64() {
		return 0, 0, false, &DecodeError{Profile: p.Name, Field: f.Name, Raw: fmt.Sprintf("%x", bits), Msg: "scale out of range"}
	}
	return q.Int64(), step.Int64(), true, nil
}

// roundDiv is a/b rounded half away from zero, for b > 0.
func roundDiv(a, b int64) int64 {
	q, r := a/b, a%b
	if r < 0 {
		r = -r
	}
	if 2*r >= b {
		if a < 0 {
			q--
		} else {
			q++
		}
	}
	return q
}

func decodeASCII(regs []byte) string {
	// byte by byte: a byte outside 0x20..0x7e is a control character or
	// part of a non-ASCII rune, dropped either way; filtered on the stack,
	// so an empty VIN (idle, NUL-padded) costs no allocation on each poll
	var buf [64]byte
	out := buf[:0]
	for _, c := range regs {
		if c >= 0x20 && c <= 0x7e {
			out = append(out, c)
		}
	}
	return string(bytes.TrimSpace(out))
}
