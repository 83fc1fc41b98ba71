package meter

import (
	"testing"
	"time"
)

// Any profile text: parsed or refused with an error, never a panic; a
// profile that parses decodes any register image (or says why not) and
// encodes what it decoded.
func FuzzProfileDecodeEncode(f *testing.F) {
	for _, name := range []string{"ref-ac", "adl400", "sdm120", "abb-b23", "djsf1352"} {
		data, err := embedded.ReadFile("profiles/" + name + ".yaml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, []byte{0, 3, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 0x1b, 0x58}, uint16(1), uint16(1))
	}
	f.Add([]byte("name: x\nfields:\n  energy: {fc: 3, addr: 0, type: f32, scale: 1000, decimals_addr: 2}\n"), []byte{0x7f, 0xc0, 0, 0, 0, 9}, uint16(3), uint16(7))
	f.Fuzz(func(t *testing.T, doc, img []byte, pt, ct uint16) {
		p, err := ParseProfile(doc, "fuzz.yaml")
		if err != nil {
			return
		}
		data := make([][]byte, len(p.Blocks()))
		k := 0
		for i, b := range p.Blocks() {
			data[i] = make([]byte, 2*int(b.Count))
			for j := range data[i] {
				if len(img) > 0 {
					data[i][j] = img[k%len(img)]
					k++
				}
			}
		}
		ratios := Ratios{PT: int64(pt%10000) + 1, CT: int64(ct%10000) + 1}
		r, err := p.Decode(data, ratios, time.Unix(0, 0))
		if err != nil {
			return
		}
		if r.HasEnergy && (r.EnergyMWh < 0 || r.EnergyResMWh < 1) {
			t.Fatalf("energy %d mWh, resolution %d", r.EnergyMWh, r.EnergyResMWh)
		}
		_ = p.Encode(r, ratios, func(uint8, uint16, []uint16) {}) // may refuse a value, never panic
	})
}
