package meter

import (
	"context"
	"fmt"
	"time"
)

// RegisterReader is the part of a bus a poller needs.
type RegisterReader interface {
	ReadRegisters(ctx context.Context, slave, fc uint8, addr, qty uint16) ([]byte, error)
}

// Poller reads one device through its profile's read plan.
type Poller struct {
	bus     RegisterReader
	slave   uint8
	profile *Profile
	ratios  Ratios
	data    [][]byte
	reading Reading // decoded into in place, returned as a copy
}

// NewPoller builds a poller for one slave.
func NewPoller(bus RegisterReader, slave uint8, p *Profile, r Ratios) *Poller {
	return &Poller{bus: bus, slave: slave, profile: p, ratios: r, data: make([][]byte, len(p.blocks))}
}

// Poll reads every block and decodes them, stamped at.
func (p *Poller) Poll(ctx context.Context, at time.Time) (Reading, error) {
	for i, b := range p.profile.blocks {
		data, err := p.bus.ReadRegisters(ctx, p.slave, b.FC, b.Addr, b.Count)
		if err != nil {
			return Reading{}, err
		}
		p.data[i] = data
	}
	if err := p.profile.decodeInto(&p.reading, p.data, p.ratios, at); err != nil {
		return Reading{}, fmt.Errorf("slave %d: %w", p.slave, err)
	}
	return p.reading, nil
}
