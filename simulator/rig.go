package simulator

import (
	"github.com/rs/zerolog"

	"pilebridge/meter"
)

// Rig is simulated devices answering on a new pseudo-terminal: what a test
// or a bench needs in place of an RS-485 line with piles on it.
type Rig struct {
	Line   *PtyLine
	Server *Server
	Piles  map[uint8]*Pile
}

// ServeOnPty creates a pty (linked at link, if set) and one device per slave
// id, each presenting prof with energyWh on its meter.
func ServeOnPty(link string, prof *meter.Profile, energyWh int64, slaves ...uint8) (*Rig, error) {
	line, err := OpenPty(link)
	if err != nil {
		return nil, err
	}
	r := &Rig{Line: line, Server: NewServer(zerolog.Nop()), Piles: map[uint8]*Pile{}}
	for _, id := range slaves {
		p, err := NewPile(prof, meter.Ratios{}, r.Server.AddSlave(id).Bank, energyWh)
		if err != nil {
			line.Close()
			return nil, err
		}
		r.Piles[id] = p
	}
	go r.Server.AttachPty(line)
	return r, nil
}

// Close ends the line.
func (r *Rig) Close() error { return r.Line.Close() }
