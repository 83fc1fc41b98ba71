// Package simulator is the other side of the wire: piles and meters that
// answer Modbus on a pseudo-terminal or TCP, and a stand-in for the P云 platform.
package simulator

import "sync"

// Bank is one slave's register space. Registers never set are undefined and
// reading them gets exception 02, as a real device does.
type Bank struct {
	mu   sync.Mutex
	regs [2]map[uint16]uint16 // [0] holding (03), [1] input (04)
}

// NewBank returns an empty register bank.
func NewBank() *Bank {
	return &Bank{regs: [2]map[uint16]uint16{{}, {}}}
}

func idx(fc uint8) int {
	if fc == 4 {
		return 1
	}
	return 0
}

// Set stores words from addr on.
func (b *Bank) Set(fc uint8, addr uint16, words []uint16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, w := range words {
		b.regs[idx(fc)][addr+uint16(i)] = w
	}
}

// Get reads n registers; ok is false when any is undefined.
func (b *Bank) Get(fc uint8, addr, n uint16) ([]uint16, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]uint16, n)
	for i := range out {
		v, ok := b.regs[idx(fc)][addr+uint16(i)]
		if !ok {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}
