package session

import "time"

// PlateSource says where a session's plate came from.
type PlateSource string

// Plate sources, from the weakest.
const (
	PlateFromVIN       PlateSource = "vin"       // the config's VIN table
	PlateFromCamera    PlateSource = "camera"    // a camera above the bay
	PlateFromAPI       PlateSource = "api"       // a parking system or script (POST /plates)
	PlateFromAttendant PlateSource = "attendant" // typed in by the station's attendant
)

func (s PlateSource) rank() int {
	switch s {
	case PlateFromAttendant:
		return 3
	case PlateFromCamera, PlateFromAPI:
		return 2
	case PlateFromVIN:
		return 1
	}
	return 0
}

// PlateRead is a plate seen for a port: already in normal form.
type PlateRead struct {
	Plate      string
	Source     PlateSource
	By         string // the attendant's name, for an attendant's entry
	At         time.Time
	Confidence int // 0..100 where the source gives one
}

// Better says whether p should replace the plate a session has from cur
// (source) at curAt: an attendant's entry wins over any other source; among
// equals the later read wins.
func (p PlateRead) Better(cur string, src PlateSource, curAt time.Time) bool {
	if p.Plate == "" {
		return false
	}
	if cur == "" {
		return true
	}
	if p.Source.rank() != src.rank() {
		return p.Source.rank() > src.rank()
	}
	return p.At.After(curAt) && p.Plate != cur
}

// SetPlate gives the open session plate p when it is better than the one it
// has (Better). It returns whether the session changed; the next record
// carries the plate.
func (m *Machine) SetPlate(p PlateRead) bool {
	s := m.sess
	if s == nil || !p.Better(s.Plate, s.PlateSource, s.PlateAt) {
		return false
	}
	s.Plate, s.PlateSource, s.PlateBy, s.PlateAt = p.Plate, p.Source, p.By, p.At
	return true
}
