package meter

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkDecode: one poll's decode of the reference map (the poll loop's CPU cost per port).
func BenchmarkDecodeRefAC(b *testing.B) {
	reg, _ := LoadRegistry("")
	p, _ := reg.Get("ref-ac")
	img := p.Image(regs{}.u16(3, 0, 3, 0, 0, 0xFFFF).u32(3, 4, 1234567).u32(3, 6, 7000).u16(3, 8, 2200, 3182).u16(3, 10, ascii("LSTOP103212132001", 9)...))
	at := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := p.Decode(img, Ratios{}, at); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeDTSU666(b *testing.B) {
	reg, _ := LoadRegistry("")
	p, _ := reg.Get("dtsu666")
	img := p.Image(regs{}.f32(3, 0x101E, 1234.567).f32(3, 0x2006, 2301).f32(3, 0x200C, 10500).f32(3, 0x2012, 24150))
	at := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := p.Decode(img, Ratios{}, at); err != nil {
			b.Fatal(err)
		}
	}
}

// imageReader answers a poller's reads from a register image.
type imageReader struct {
	p   *Profile
	img [][]byte
}

func (r imageReader) ReadRegisters(_ context.Context, _, fc uint8, addr, qty uint16) ([]byte, error) {
	for i, b := range r.p.Blocks() {
		if b.FC == fc && b.Addr == addr && b.Count == qty {
			return r.img[i], nil
		}
	}
	return nil, fmt.Errorf("no block fc %d at %d", fc, addr)
}

// A poll of a charging pile allocates its VIN's text and nothing else: the
// reading is decoded in place (it was one 240-byte allocation a poll).
func TestPollAllocatesOnlyText(t *testing.T) {
	reg, err := LoadRegistry("")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := reg.Get("ref-ac")
	img := p.Image(regs{}.u16(3, 0, 3, 0, 0, 0xFFFF).u32(3, 4, 1234567).u32(3, 6, 7000).u16(3, 8, 2200, 3182).u16(3, 10, ascii("LSTOP103212132001", 9)...))
	poller := NewPoller(imageReader{p, img}, 1, p, Ratios{})
	at := time.Now()
	var r Reading
	allocs := testing.AllocsPerRun(100, func() {
		if r, err = poller.Poll(context.Background(), at); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("%v allocations a poll, want at most 1 (the VIN)", allocs)
	}
	if r.VIN != "LSTOP103212132001" || r.EnergyWh != 1234567 || r.PowerW != 7000 {
		t.Errorf("poll read %+v", r)
	}
	// a copy returned earlier is not changed by the next poll
	first := r
	img[0][9] = 0 // a byte of the energy's high word
	if r, err = poller.Poll(context.Background(), at); err != nil {
		t.Fatal(err)
	}
	if first.EnergyWh != 1234567 || r.EnergyWh == 1234567 {
		t.Errorf("first %d, second %d", first.EnergyWh, r.EnergyWh)
	}
}
