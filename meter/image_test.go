package meter

import "encoding/binary"

// Image builds the register bytes of the plan's blocks from a set of
// registers: test and benchmark helper for "decode this known image".
func (p *Profile) Image(regs map[uint8]map[uint16]uint16) [][]byte {
	out := make([][]byte, len(p.blocks))
	for i, b := range p.blocks {
		buf := make([]byte, 2*int(b.Count))
		for k := 0; k < int(b.Count); k++ {
			binary.BigEndian.PutUint16(buf[2*k:], regs[b.FC][b.Addr+uint16(k)])
		}
		out[i] = buf
	}
	return out
}
