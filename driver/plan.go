package driver

import (
	"fmt"
	"sort"
)

// Range is a run of registers a caller needs.
type Range struct {
	FC    uint8
	Addr  uint16
	Count uint16
}

// End is one past the last register.
func (r Range) End() int { return int(r.Addr) + int(r.Count) }

// Block is one read on the wire.
type Block = Range

// MaxBlock is the most registers one 03/04 read may ask for.
const MaxBlock = 125

// Plan coalesces ranges into the fewest reads: per function code, neighbours
// are merged when the hole between them is at most maxGap registers and the
// block stays within MaxBlock.
func Plan(ranges []Range, maxGap int) ([]Block, error) {
	rs := append([]Range(nil), ranges...)
	for _, r := range rs {
		if r.Count == 0 || r.Count > MaxBlock {
			return nil, fmt.Errorf("range fc %d addr %d: count %d out of 1..%d", r.FC, r.Addr, r.Count, MaxBlock)
		}
		if r.End() > 0x10000 {
			return nil, fmt.Errorf("range fc %d addr %d count %d runs past register 65535", r.FC, r.Addr, r.Count)
		}
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].FC != rs[j].FC {
			return rs[i].FC < rs[j].FC
		}
		return rs[i].Addr < rs[j].Addr
	})
	var out []Block
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			end := max(last.End(), r.End())
			if last.FC == r.FC && int(r.Addr) <= last.End()+maxGap && end-int(last.Addr) <= MaxBlock {
				last.Count = uint16(end - int(last.Addr))
				continue
			}
		}
		out = append(out, r)
	}
	return out, nil
}
