package meter

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"pilebridge/driver"
)

var typeWords = map[string]int{"u16": 1, "i16": 1, "u32": 2, "i32": 2, "u64": 4, "i64": 4, "f32": 2, "ascii": 0}

// Field says where a quantity lives and how to turn its registers into an
// integer in the quantity's unit.
type Field struct {
	Name  string `yaml:"-"`
	FC    uint8  `yaml:"fc"`
	Addr  uint16 `yaml:"addr"`
	Type  string `yaml:"type"`
	Words int    `yaml:"words"` // ascii only: registers of text
	Order string `yaml:"order"` // high_first (default) or low_first, for 32/64-bit types
	Scale string `yaml:"scale"` // exact decimal or fraction: raw × scale = value in the field's unit
	Unit  string `yaml:"unit"`  // for extra fields: the unit printed by `pilebridge read`
	Ratio string `yaml:"ratio"` // none, pt, ct or ptct: installation ratios applied
	// DecimalsAddr names a register (same fc) holding a decimal-point count dp;
	// the value is then raw × 10^(dp + DecimalsOffset) × scale (Acrel DC meters).
	DecimalsAddr   *uint16  `yaml:"decimals_addr"`
	DecimalsOffset int      `yaml:"decimals_offset"`
	Invalid        []uint64 `yaml:"invalid"`          // raw values that mean "no value"
	InvalidAllOnes bool     `yaml:"invalid_all_ones"` // all bits set means "no value"

	Line int `yaml:"-"`

	num, den int64 // scale as an exact fraction
}

// Profile is one meter's or pile controller's register map.
type Profile struct {
	Name        string            `yaml:"name"`
	Description string            `yaml:"description"`
	Kind        string            `yaml:"kind"` // pile or meter
	Defaults    LineDefaults      `yaml:"defaults"`
	Fields      map[string]*Field `yaml:"fields"`
	StatusMap   map[int64]string  `yaml:"status_map"`
	Faults      map[int64]string  `yaml:"faults"`
	StopReasons map[int64]string  `yaml:"stop_reasons"`
	// MaxGap is how many unused registers a coalesced read may span.
	MaxGap *int `yaml:"max_gap"`

	Source string `yaml:"-"` // "embedded" or the file path

	statuses map[int64]Status
	ranges   []driver.Range
	blocks   []driver.Block
	decoders []fieldDecoder // the fields in name order, placed in blocks
}

// LineDefaults are the serial settings the device ships with.
type LineDefaults struct {
	Baud     int    `yaml:"baud"`
	Parity   string `yaml:"parity"`
	StopBits int    `yaml:"stop_bits"`
	Slave    int    `yaml:"slave"`
}

var fieldKeys = map[string]bool{"fc": true, "addr": true, "type": true, "words": true, "order": true, "scale": true,
	"unit": true, "ratio": true, "decimals_addr": true, "decimals_offset": true, "invalid": true, "invalid_all_ones": true}

var profileKeys = map[string]bool{"name": true, "description": true, "kind": true, "defaults": true, "fields": true,
	"status_map": true, "faults": true, "stop_reasons": true, "max_gap": true}

// ProfileError names the file, line and field of a bad profile.
type ProfileError struct {
	Source string
	Line   int
	Field  string
	Msg    string
}

func (e *ProfileError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": field %s", e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// ParseProfile reads and validates one profile document.
func ParseProfile(data []byte, source string) (*Profile, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &ProfileError{Source: source, Msg: err.Error()}
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, &ProfileError{Source: source, Msg: "a profile is a YAML mapping"}
	}
	doc := root.Content[0]
	if err := checkKeys(doc, profileKeys, source, ""); err != nil {
		return nil, err
	}
	p := &Profile{Source: source}
	if err := doc.Decode(p); err != nil {
		return nil, &ProfileError{Source: source, Msg: err.Error()}
	}
	// Second pass over the fields for their line numbers and unknown keys.
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value != "fields" {
			continue
		}
		fields := doc.Content[i+1]
		for j := 0; j+1 < len(fields.Content); j += 2 {
			name := fields.Content[j].Value
			if err := checkKeys(fields.Content[j+1], fieldKeys, source, name); err != nil {
				return nil, err
			}
			if f := p.Fields[name]; f != nil {
				f.Line = fields.Content[j].Line
			}
		}
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func checkKeys(n *yaml.Node, allowed map[string]bool, source, field string) error {
	if n.Kind != yaml.MappingNode {
		return &ProfileError{Source: source, Line: n.Line, Field: field, Msg: "want a mapping"}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !allowed[k.Value] {
			return &ProfileError{Source: source, Line: k.Line, Field: field, Msg: fmt.Sprintf("unknown key %q", k.Value)}
		}
	}
	return nil
}

func (p *Profile) fail(f *Field, format string, args ...any) error {
	e := &ProfileError{Source: p.Source, Msg: fmt.Sprintf(format, args...)}
	if f != nil {
		e.Field, e.Line = f.Name, f.Line
	}
	return e
}

// validate checks the whole profile and names every mistake at once (a
// profile's author fixes them in one go, as check promises for the config).
func (p *Profile) validate() error {
	var errs []error
	if p.Name == "" {
		errs = append(errs, p.fail(nil, "name is missing"))
	}
	if p.Kind == "" {
		p.Kind = "meter"
	}
	if p.Kind != "meter" && p.Kind != "pile" {
		errs = append(errs, p.fail(nil, "kind %q: want pile or meter", p.Kind))
	}
	if p.Fields["energy"] == nil {
		errs = append(errs, p.fail(nil, "the energy field is missing: a bill needs it"))
	}
	names := make([]string, 0, len(p.Fields))
	for n := range p.Fields {
		names = append(names, n)
	}
	sort.Strings(names)
	fieldsOK := true
	for _, name := range names {
		f := p.Fields[name]
		f.Name = name
		if err := p.validateField(f); err != nil {
			errs, fieldsOK = append(errs, err), false
		}
	}
	p.statuses = map[int64]Status{}
	if _, ok := p.Fields["status"]; ok && len(p.StatusMap) == 0 {
		errs = append(errs, p.fail(p.Fields["status"], "a status field needs a status_map"))
	}
	raws := make([]int64, 0, len(p.StatusMap))
	for raw := range p.StatusMap {
		raws = append(raws, raw)
	}
	sort.Slice(raws, func(i, j int) bool { return raws[i] < raws[j] })
	for _, raw := range raws {
		s, err := ParseStatus(p.StatusMap[raw])
		if err != nil {
			errs = append(errs, p.fail(p.Fields["status"], "status_map %d: %v", raw, err))
			continue
		}
		p.statuses[raw] = s
	}
	if p.MaxGap != nil && (*p.MaxGap < 0 || *p.MaxGap > 120) {
		errs = append(errs, p.fail(nil, "max_gap %d out of 0..120", *p.MaxGap))
	}
	if !fieldsOK {
		return errors.Join(errs...) // overlaps and the plan need every field's size
	}
	// Overlaps: two fields reading the same register is a typo in a map.
	for i, a := range names {
		for _, b := range names[i+1:] {
			fa, fb := p.Fields[a], p.Fields[b]
			if fa.FC == fb.FC && int(fa.Addr) < int(fb.Addr)+fb.words() && int(fb.Addr) < int(fa.Addr)+fa.words() {
				errs = append(errs, p.fail(fb, "registers %d..%d overlap field %s (%d..%d)", fb.Addr, int(fb.Addr)+fb.words()-1, a, fa.Addr, int(fa.Addr)+fa.words()-1))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	p.ranges = p.ranges[:0]
	for _, n := range names {
		f := p.Fields[n]
		p.ranges = append(p.ranges, driver.Range{FC: f.FC, Addr: f.Addr, Count: uint16(f.words())})
		if f.DecimalsAddr != nil {
			p.ranges = append(p.ranges, driver.Range{FC: f.FC, Addr: *f.DecimalsAddr, Count: 1})
		}
	}
	gap := 16
	if p.MaxGap != nil {
		gap = *p.MaxGap
	}
	blocks, err := driver.Plan(p.ranges, gap)
	if err != nil {
		return p.fail(nil, "%v", err)
	}
	p.blocks = blocks
	p.decoders = p.placeFields()
	return nil
}

func (p *Profile) validateField(f *Field) error {
	if f.FC != 3 && f.FC != 4 {
		return p.fail(f, "fc %d: want 3 (holding) or 4 (input)", f.FC)
	}
	w, ok := typeWords[f.Type]
	if !ok {
		return p.fail(f, "unknown type %q (want u16, i16, u32, i32, u64, i64, f32 or ascii)", f.Type)
	}
	if f.Type == "ascii" {
		if f.Words < 1 || f.Words > 64 {
			return p.fail(f, "ascii needs words: 1..64, got %d", f.Words)
		}
	} else if f.Words != 0 && f.Words != w {
		return p.fail(f, "words %d does not fit type %s", f.Words, f.Type)
	}
	if int(f.Addr)+f.words() > 0x10000 {
		return p.fail(f, "registers %d+%d run past 65535", f.Addr, f.words())
	}
	switch f.Order {
	case "":
		f.Order = "high_first"
	case "high_first", "low_first":
	default:
		return p.fail(f, "order %q: want high_first or low_first", f.Order)
	}
	switch f.Ratio {
	case "", "none", "pt", "ct", "ptct":
	default:
		return p.fail(f, "ratio %q: want none, pt, ct or ptct", f.Ratio)
	}
	if f.Scale == "" {
		f.Scale = "1"
	}
	r, ok := new(big.Rat).SetString(f.Scale)
	if !ok || r.Sign() <= 0 {
		return p.fail(f, "scale %q: want a positive decimal or fraction like 0.01 or 1/3", f.Scale)
	}
	if !r.Num().IsInt64() || !r.Denom().IsInt64() || r.Num().Int64() > 1e9 || r.Denom().Int64() > 1e9 {
		return p.fail(f, "scale %q is too fine or too large", f.Scale)
	}
	f.num, f.den = r.Num().Int64(), r.Denom().Int64()
	if f.DecimalsAddr != nil && (f.DecimalsOffset < -9 || f.DecimalsOffset > 9) {
		return p.fail(f, "decimals_offset %d out of -9..9", f.DecimalsOffset)
	}
	spec, known := fieldTable[f.Name]
	if !known && f.Unit == "" {
		return p.fail(f, "unknown field name: give it a unit (e.g. unit: Wh) or use one of "+knownFieldNames)
	}
	if known && spec.ascii && f.Type != "ascii" {
		return p.fail(f, "%s must be ascii", f.Name)
	}
	if known && !spec.ascii && f.Type == "ascii" {
		return p.fail(f, "%s cannot be ascii", f.Name)
	}
	return nil
}

func (f *Field) words() int {
	if f.Type == "ascii" {
		return f.Words
	}
	return typeWords[f.Type]
}

// Blocks is the read plan: the fewest register reads that cover every field.
func (p *Profile) Blocks() []driver.Block { return p.blocks }

// HasStatus says the pile reports its state; without it sessions come from power.
func (p *Profile) HasStatus() bool { return p.Fields["status"] != nil }

// UnitOf is the unit a field decodes to.
func (p *Profile) UnitOf(name string) string {
	if s, ok := fieldTable[name]; ok {
		return s.unit
	}
	if f := p.Fields[name]; f != nil {
		return f.Unit
	}
	return ""
}

// FieldNames lists the fields in register order.
func (p *Profile) FieldNames() []string {
	names := make([]string, 0, len(p.Fields))
	for n := range p.Fields {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := p.Fields[names[i]], p.Fields[names[j]]
		if a.FC != b.FC {
			return a.FC < b.FC
		}
		return a.Addr < b.Addr
	})
	return names
}

// StatusRaw is the first raw value that the profile maps to s (for the simulator).
func (p *Profile) StatusRaw(s Status) (int64, bool) {
	best, found := int64(math.MaxInt64), false
	for raw, st := range p.statuses {
		if st == s && raw < best {
			best, found = raw, true
		}
	}
	return best, found
}

// EnergyWrapMWh is where the energy register rolls over, in mWh, for
// unsigned integer registers; 0 when it cannot (float or 64-bit) or when the
// span does not fit.
func (p *Profile) EnergyWrapMWh(r Ratios) int64 {
	f := p.Fields["energy"]
	if f == nil || (f.Type != "u16" && f.Type != "u32") {
		return 0
	}
	span := new(big.Int).Lsh(big.NewInt(1), uint(16*f.words()))
	x := new(big.Rat).Mul(new(big.Rat).SetInt(span), big.NewRat(f.num, f.den))
	x.Mul(x, new(big.Rat).SetInt64(r.factor(f.Ratio)*1000))
	if !x.IsInt() || !x.Num().IsInt64() {
		return 0
	}
	return x.Num().Int64()
}
