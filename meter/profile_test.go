package meter

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type regs map[uint8]map[uint16]uint16

func (r regs) u16(fc uint8, addr uint16, v ...uint16) regs {
	if r[fc] == nil {
		r[fc] = map[uint16]uint16{}
	}
	for i, w := range v {
		r[fc][addr+uint16(i)] = w
	}
	return r
}

func (r regs) u32(fc uint8, addr uint16, v uint32) regs {
	return r.u16(fc, addr, uint16(v>>16), uint16(v))
}
func (r regs) f32(fc uint8, addr uint16, v float32) regs {
	return r.u32(fc, addr, math.Float32bits(v))
}
func (r regs) u64(fc uint8, addr uint16, v uint64) regs {
	return r.u16(fc, addr, uint16(v>>48), uint16(v>>32), uint16(v>>16), uint16(v))
}

func ascii(s string, words int) []uint16 {
	out := make([]uint16, words)
	for i := range out {
		hi, lo := byte(' '), byte(' ')
		if 2*i < len(s) {
			hi = s[2*i]
		}
		if 2*i+1 < len(s) {
			lo = s[2*i+1]
		}
		out[i] = uint16(hi)<<8 | uint16(lo)
	}
	return out
}

func registry(t *testing.T) *Registry {
	r, err := LoadRegistry("")
	require.NoError(t, err)
	return r
}

func decode(t *testing.T, name string, img regs, ratios Ratios) Reading {
	t.Helper()
	p, err := registry(t).Get(name)
	require.NoError(t, err)
	r, err := p.Decode(p.Image(img), ratios, time.Unix(0, 0))
	require.NoError(t, err, name)
	return r
}

// Every shipped profile decodes a hand-built register image to the right integers.
func TestShippedProfilesDecodeKnownImages(t *testing.T) {
	type want struct {
		energy, power, voltage, current int64
	}
	cases := []struct {
		name   string
		img    regs
		ratios Ratios
		want   want
	}{
		{"dtsu666", regs{}.f32(3, 0x101E, 1234.567).f32(3, 0x2006, 2301).f32(3, 0x200C, 10500).f32(3, 0x2012, 24150), Ratios{}, want{1234567, 2415, 2301, 1050}},
		{"ddsu666", regs{}.f32(4, 0x4000, 1234.567).f32(4, 0x2000, 230.1).f32(4, 0x2002, 10.5).f32(4, 0x2004, 2.415), Ratios{}, want{1234567, 2415, 2301, 1050}},
		// V 7500 at dp 2 = 750.0 V; I -1234 at dp 1 = -12.34 A; P 925 at dp 1 = 9.25 kW
		{"djsf1352", regs{}.u16(3, 0, 7500, 2, 0xFB2E, 1).u16(3, 4, 0, 0, 0, 0, 925, 1, 0, 0).u32(3, 12, 987654), Ratios{}, want{987654, 9250, 7500, -1234}},
		// secondary values through a 40:1 CT
		{"adl400", regs{}.u32(3, 0, 123456).u32(3, 2, 1).u32(3, 4, 2).u32(3, 6, 3).u32(3, 8, 4).u16(3, 0x61, 2301, 0, 0, 125).u32(3, 0x16A, 1500), Ratios{PT: 1, CT: 40}, want{49382400, 60000, 2301, 5000}},
		{"sdm120", regs{}.f32(4, 0, 230.1).f32(4, 6, 10.5).f32(4, 0x0C, 2415).f32(4, 0x48, 1234.567), Ratios{}, want{1234567, 2415, 2301, 1050}},
		{"sdm630", regs{}.f32(4, 0, 230.1).f32(4, 6, 10.5).f32(4, 0x34, 2415).f32(4, 0x48, 1234.567), Ratios{}, want{1234567, 2415, 2301, 1050}},
		{"abb-b23", regs{}.u64(3, 0x5000, 123456789).u32(3, 0x5B00, 2301).u32(3, 0x5B0C, 1050).u32(3, 0x5B14, 241500), Ratios{}, want{1234567890, 2415, 2301, 1050}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// fill the plan's holes so every block is complete
			p, _ := registry(t).Get(c.name)
			for _, b := range p.Blocks() {
				for a := b.Addr; int(a) < b.End(); a++ {
					if _, ok := c.img[b.FC][a]; !ok {
						c.img.u16(b.FC, a, 0)
					}
				}
			}
			r := decode(t, c.name, c.img, c.ratios)
			assert.True(t, r.HasEnergy)
			assert.Equal(t, c.want, want{r.EnergyWh, r.PowerW, r.VoltageDV, r.CurrentCA})
			assert.False(t, r.HasStatus, "meters have no status")
		})
	}
}

func TestReferencePileMap(t *testing.T) {
	for _, name := range []string{"ref-ac", "ref-dc"} {
		img := regs{}.u16(3, 0, 3, 2, 0, 87).u32(3, 4, 1234567).u32(3, 6, 7000).u16(3, 8, 2200, 3182).u16(3, 10, ascii("LSTOP103212132001", 9)...)
		r := decode(t, name, img, Ratios{})
		assert.Equal(t, StatusCharging, r.Status)
		assert.EqualValues(t, 1234567, r.EnergyWh)
		assert.EqualValues(t, 7000, r.PowerW)
		assert.Equal(t, 87, r.SOC)
		assert.True(t, r.HasSOC)
		assert.Equal(t, "LSTOP103212132001", r.VIN)
		assert.Equal(t, "绝缘故障", r.FaultText)
		p, _ := registry(t).Get(name)
		assert.Len(t, p.Blocks(), 1, "the reference map is one read")
	}
	img := regs{}.u16(3, 0, 5, 0, 1, 0xFFFF).u32(3, 4, 10).u32(3, 6, 0).u16(3, 8, 0, 0).u16(3, 10, ascii("", 9)...)
	r := decode(t, "ref-ac", img, Ratios{})
	assert.False(t, r.HasSOC, "0xFFFF is no SOC")
	assert.Equal(t, "SOC已充满", r.StopReason)
	assert.Equal(t, StatusFinished, r.Status)
}

func TestInvalidMarkersAndBadValues(t *testing.T) {
	img := regs{}.u64(3, 0x5000, math.MaxUint64).u16(3, 0x5B00, make([]uint16, 22)...)
	r := decode(t, "abb-b23", img, Ratios{})
	assert.False(t, r.HasEnergy, "all 0xFF is no value")

	p, _ := registry(t).Get("sdm120")
	nan := regs{}.f32(4, 0x48, float32(math.NaN())).u16(4, 0, make([]uint16, 14)...)
	_, err := p.Decode(p.Image(nan), Ratios{}, time.Now())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "energy")

	p, _ = registry(t).Get("ref-ac")
	bad := regs{}.u16(3, 0, make([]uint16, 19)...).u16(3, 0, 99)
	_, err = p.Decode(p.Image(bad), Ratios{}, time.Now())
	assert.ErrorContains(t, err, "status value not in status_map")
}

func TestDecimalPointOverflowIsAnError(t *testing.T) {
	p, err := ParseProfile([]byte("name: x\nfields:\n  energy: {fc: 3, addr: 0, type: u32, decimals_addr: 2, scale: 1000000000, ratio: ptct}\n"), "x.yaml")
	require.NoError(t, err)
	img := regs{}.u32(3, 0, 5).u16(3, 2, 9) // dp 9: 1e9 × 1e9 × PT×CT 1e8 overflows int64
	_, err = p.Decode(p.Image(img), Ratios{PT: 10000, CT: 10000}, time.Now())
	assert.ErrorContains(t, err, "overflows")
}

func TestFloatEnergyIsFlaggedQuantised(t *testing.T) {
	img := regs{}.f32(4, 0x48, 100000).u16(4, 0, make([]uint16, 14)...)
	r := decode(t, "sdm120", img, Ratios{})
	assert.EqualValues(t, 100000000, r.EnergyWh)
	assert.True(t, r.Quantised())
	assert.EqualValues(t, 7813, r.EnergyResMWh, "float32 step at 100 000 kWh is 2^-7 kWh = 7.8125 Wh")
	assert.EqualValues(t, 8, r.EnergyStepWh())
	small := decode(t, "sdm120", regs{}.f32(4, 0x48, 1000).u16(4, 0, make([]uint16, 14)...), Ratios{})
	assert.False(t, small.Quantised())
}

func TestEncodeInvertsDecode(t *testing.T) {
	reg := registry(t)
	for _, name := range reg.Names() {
		p, _ := reg.Get(name)
		in := Reading{PowerW: 7000, VoltageDV: 2200, CurrentCA: 3100, Status: StatusCharging, VIN: "LSTOP103212132001"}
		in.SetEnergyMWh(1234560_000)
		img := regs{}
		require.NoError(t, p.Encode(in, Ratios{PT: 1, CT: 1}, func(fc uint8, addr uint16, w []uint16) { img.u16(fc, addr, w...) }))
		for _, b := range p.Blocks() {
			for a := b.Addr; int(a) < b.End(); a++ {
				if _, ok := img[b.FC][a]; !ok {
					img.u16(b.FC, a, 0)
				}
			}
		}
		out, err := p.Decode(p.Image(img), Ratios{PT: 1, CT: 1}, time.Now())
		require.NoError(t, err, name)
		assert.Equal(t, in.EnergyWh, out.EnergyWh, name)
		assert.Equal(t, in.PowerW, out.PowerW, name)
	}
}

// A register's resolution, from each manual's scale: an integer step of
// 0.01 kWh is 10 000 mWh, times the PT×CT ratio; whole Wh is 1000 mWh.
func TestEnergyResolution(t *testing.T) {
	cases := []struct {
		name   string
		img    regs
		ratios Ratios
		res    int64
	}{
		{"ref-ac", regs{}.u32(3, 4, 1234567).u16(3, 0, 3), Ratios{}, 1000},
		{"adl400", regs{}.u32(3, 0, 123456), Ratios{}, 10_000},
		{"adl400", regs{}.u32(3, 0, 123456), Ratios{PT: 1, CT: 10}, 100_000},
		{"abb-b23", regs{}.u64(3, 0x5000, 123456789), Ratios{}, 10_000},
	}
	for _, c := range cases {
		p, _ := registry(t).Get(c.name)
		for _, b := range p.Blocks() {
			for a := b.Addr; int(a) < b.End(); a++ {
				if _, ok := c.img[b.FC][a]; !ok {
					c.img.u16(b.FC, a, 0)
				}
			}
		}
		r, err := p.Decode(p.Image(c.img), c.ratios, time.Now())
		require.NoError(t, err, c.name)
		assert.EqualValues(t, c.res, r.EnergyResMWh, "%s %+v", c.name, c.ratios)
	}
}

// The simulator's registers truncate energy to the register's step, as a
// meter's counter does: 1 234 567.891 Wh on a 0.01 kWh register reads
// 1 234 560 Wh, never 1 234 570.
func TestEncodeTruncatesEnergy(t *testing.T) {
	p, _ := registry(t).Get("adl400")
	in := Reading{}
	in.SetEnergyMWh(1_234_567_891)
	img := regs{}
	require.NoError(t, p.Encode(in, Ratios{}, func(fc uint8, addr uint16, w []uint16) { img.u16(fc, addr, w...) }))
	assert.EqualValues(t, uint16(123456>>16), img[3][0])
	assert.EqualValues(t, uint16(123456&0xFFFF), img[3][1])
}

func TestBadProfilesAreNamed(t *testing.T) {
	cases := map[string]string{
		"name: x\nfields:\n  power: {fc: 3, addr: 0, type: u16}\n":                                                                    "energy field is missing",
		"name: x\nfields:\n  energy: {fc: 3, addr: 0, type: u24}\n":                                                                   "x.yaml:3: field energy: unknown type \"u24\"",
		"name: x\nfields:\n  energy: {fc: 3, addr: 0, type: u32}\n  power: {fc: 3, addr: 1, type: u16}\n":                             "x.yaml:4: field power: registers 1..1 overlap field energy",
		"name: x\nfields:\n  energy: {fc: 3, addr: 65535, type: u32}\n":                                                               "run past 65535",
		"name: x\nfields:\n  energy: {fc: 5, addr: 0, type: u32}\n":                                                                   "fc 5",
		"name: x\nfields:\n  energy: {fc: 3, addr: 0, type: u32, scale: abc}\n":                                                       "scale \"abc\"",
		"name: x\nfields:\n  energy: {fc: 3, addr: 0, type: u32, sacle: 1}\n":                                                         "x.yaml:3: field energy: unknown key \"sacle\"",
		"name: x\nfields:\n  energy: {fc: 3, addr: 0, type: u32}\n  status: {fc: 3, addr: 2, type: u16}\n":                            "needs a status_map",
		"name: x\nfields:\n  energy: {fc: 3, addr: 0, type: u32}\n  status: {fc: 3, addr: 2, type: u16}\nstatus_map: {0: sleeping}\n": "unknown status \"sleeping\"",
		"name: x\nfields:\n  energy: {fc: 3, addr: 0, type: u32}\n  thing: {fc: 3, addr: 2, type: u16}\n":                             "field thing: unknown field name",
		"fields:\n  energy: {fc: 3, addr: 0, type: u32}\n":                                                                            "name is missing",
	}
	for doc, want := range cases {
		_, err := ParseProfile([]byte(doc), "x.yaml")
		require.Error(t, err, doc)
		assert.Contains(t, err.Error(), want)
	}
}

func TestUserProfilesOverrideByName(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ddsu.yaml"), []byte(
		"name: ddsu666\ndescription: fc 03 firmware\nfields:\n  energy: {fc: 3, addr: 0x4000, type: f32, scale: 1000}\n"), 0o644))
	reg, err := LoadRegistry(dir)
	require.NoError(t, err)
	p, err := reg.Get("ddsu666")
	require.NoError(t, err)
	assert.EqualValues(t, 3, p.Fields["energy"].FC)
	assert.Equal(t, filepath.Join(dir, "ddsu.yaml"), p.Source)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("name: broken\nfields: {}\n"), 0o644))
	_, err = LoadRegistry(dir)
	assert.ErrorContains(t, err, "bad.yaml")
}

func TestEnergyWrap(t *testing.T) {
	reg := registry(t)
	p, _ := reg.Get("ref-ac")
	assert.EqualValues(t, int64(1)<<32*1000, p.EnergyWrapMWh(Ratios{}))
	p, _ = reg.Get("adl400")
	assert.EqualValues(t, int64(1)<<32*10*40*1000, p.EnergyWrapMWh(Ratios{CT: 40}))
	p, _ = reg.Get("sdm120")
	assert.Zero(t, p.EnergyWrapMWh(Ratios{}))
}

// Every well-known field is in one table, and each one a profile declares
// shows in `read`: session_count once read as 0 beside its register's 5.
func TestFieldTableCoversEveryField(t *testing.T) {
	for _, name := range strings.Split(knownFieldNames, ", ") {
		spec, ok := fieldTable[name]
		require.True(t, ok, name)
		assert.NotEmpty(t, spec.key, name)
		assert.NotNil(t, spec.show, name)
		if spec.ascii {
			assert.NotNil(t, spec.text, name)
		} else {
			assert.NotNil(t, spec.decode, name)
			assert.NotNil(t, spec.encode, name)
		}
	}
	assert.Len(t, fieldTable, len(strings.Split(knownFieldNames, ", ")), "the names message lists every field")
	r := Reading{SessionCount: 5, HasSessionCount: true}
	assert.EqualValues(t, 5, FieldValue(r, "session_count"))
	assert.Equal(t, "session_count", FieldKey("session_count"))
	v, div, unit, ok := FieldEngineering(Reading{EnergyWh: 1234567}, "energy")
	assert.True(t, ok)
	assert.Equal(t, []any{int64(1234567), int64(1000), "kWh"}, []any{v, div, unit})
}

// A profile's mistakes are named all at once, each with its field and line.
func TestEveryProfileMistakeAtOnce(t *testing.T) {
	doc := `name: x
kind: charger
fields:
  energy: {fc: 5, addr: 0, type: u32}
  power: {fc: 3, addr: 10, type: u17}
  status: {fc: 3, addr: 20, type: u16}
`
	_, err := ParseProfile([]byte(doc), "x.yaml")
	require.Error(t, err)
	for _, want := range []string{`kind "charger": want pile or meter`, "fc 5: want 3", `unknown type "u17"`, "a status field needs a status_map"} {
		assert.Contains(t, err.Error(), want)
	}
	var pe *ProfileError
	assert.ErrorAs(t, err, &pe, "each mistake is a ProfileError")
}

// A text register (VIN, mobile) is its printable ASCII, trimmed: NUL
// padding, control bytes and non-ASCII bytes dropped; idle, it costs no
// allocation.
func TestDecodeASCII(t *testing.T) {
	for _, c := range []struct {
		regs []byte
		want string
	}{
		{[]byte("LSVAM4187C2184847\x00"), "LSVAM4187C2184847"},
		{[]byte(" LSVAM4187C2184847 "), "LSVAM4187C2184847"},
		{make([]byte, 18), ""},
		{[]byte("                  "), ""},
		{[]byte("AB\x01C\x7fD\xe4\xb8\xadE"), "ABCDE"},
		{[]byte("\x00\x00 A B \x00"), "A B"},
		{nil, ""},
	} {
		assert.Equal(t, c.want, decodeASCII(c.regs), "%q", c.regs)
	}
	idle := make([]byte, 18)
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = decodeASCII(idle) }))
}
