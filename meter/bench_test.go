package meter

import (
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
