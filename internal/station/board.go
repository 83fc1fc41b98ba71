package station

import (
	"sort"
	"sync"
	"time"

	"pilebridge/internal/config"
	"pilebridge/internal/promtext"
	"pilebridge/meter"
	"pilebridge/session"
	"pilebridge/uploader"
)

// portView is what the status page shows of a port.
type portView struct {
	Key         string            `json:"port"`
	Pile        string            `json:"device_no"`
	PortNo      string            `json:"port_no"`
	Alias       string            `json:"alias,omitempty"`
	State       session.PortState `json:"state"`
	Order       string            `json:"order,omitempty"`
	QuantityWh  int64             `json:"quantity_wh"`
	EnergyFen   int64             `json:"energy_fen"`
	ServiceFen  int64             `json:"service_fen"`
	StartedAt   *time.Time        `json:"session_started_at"`
	Plate       string            `json:"plate,omitempty"`        // the session's; masked without the token
	PlateSource string            `json:"plate_source,omitempty"` // vin, camera, api or attendant
	EnergyWh    int64             `json:"meter_energy_wh"`
	PowerW      int64             `json:"power_w"`
	SOC         *int              `json:"soc_percent"`
	Quantised   bool              `json:"energy_quantised,omitempty"`
	FaultText   string            `json:"fault,omitempty"`
	Error       string            `json:"poll_error,omitempty"`
	LastReading *time.Time        `json:"last_reading_at"`
	UpdatedAt   time.Time         `json:"updated_at"`

	reported bool                      // its pile's device/sync report has seen this port
	interval *promtext.HistogramValues // its pilebridge_port_reading_interval_seconds
	// what StartedAt, SOC and LastReading point to: set in place on every
	// poll, copied only when the view is (snapshot)
	startedAt, lastReading time.Time
	soc                    int
}

// repoint makes a copied view's pointers point into the copy.
func (v *portView) repoint() {
	if v.StartedAt != nil {
		v.StartedAt = &v.startedAt
	}
	if v.SOC != nil {
		v.SOC = &v.soc
	}
	if v.LastReading != nil {
		v.LastReading = &v.lastReading
	}
}

// statusBoard keeps the latest view of every port and feeds device/sync.
type statusBoard struct {
	mu      sync.Mutex
	ports   map[string]*portView
	piles   map[string]config.Pile
	devsync *uploader.DeviceSync
	version string // the bridge's, for device/sync
}

func newStatusBoard(ds *uploader.DeviceSync, version string) *statusBoard {
	return &statusBoard{ports: map[string]*portView{}, piles: map[string]config.Pile{}, devsync: ds, version: version}
}

func (s *statusBoard) addPort(key string, p config.Pile, pt config.Port) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ports[key] = &portView{Key: key, Pile: p.DeviceNo, PortNo: pt.PortNo, Alias: pt.Alias, State: session.Idle,
		interval: promtext.NewHistogram(intervalBounds)}
	s.piles[p.DeviceNo] = p
}

func (s *statusBoard) observe(key string, st session.PortState, sess *session.Session, r meter.Reading, err error) {
	s.mu.Lock()
	v := s.ports[key]
	was, wasFault := v.State, v.FaultText
	v.State, v.UpdatedAt, v.Error = st, time.Now().UTC(), ""
	if err != nil {
		v.Error = err.Error()
	} else {
		v.EnergyWh, v.PowerW, v.Quantised, v.FaultText = r.EnergyWh, r.PowerW, r.Quantised(), r.FaultText
		at := r.Time.UTC()
		if v.LastReading != nil && at.After(*v.LastReading) {
			v.interval.Observe(at.Sub(*v.LastReading).Seconds())
		}
		v.lastReading, v.LastReading, v.SOC = at, &v.lastReading, nil
		if r.HasSOC {
			v.soc, v.SOC = r.SOC, &v.soc
		}
	}
	v.Order, v.QuantityWh, v.EnergyFen, v.ServiceFen, v.StartedAt, v.Plate, v.PlateSource = "", 0, 0, 0, nil, "", ""
	if sess != nil {
		v.startedAt = sess.StartTime.UTC()
		v.Order, v.QuantityWh, v.StartedAt = sess.Order, sess.QuantityWh(), &v.startedAt
		v.Plate, v.PlateSource = sess.Plate, string(sess.PlateSource)
		v.EnergyFen, v.ServiceFen = sess.Fees()
	}
	if v.reported && v.State == was && v.FaultText == wasFault {
		s.mu.Unlock() // the report depends on nothing else: build it only on a change
		return
	}
	v.reported = true
	dev := s.deviceLocked(v.Pile)
	s.mu.Unlock()
	s.devsync.Update(dev)
}

// deviceLocked builds a pile's device/sync report from its ports.
func (s *statusBoard) deviceLocked(deviceNo string) uploader.DeviceStatus {
	p := s.piles[deviceNo]
	ports := make([]uploader.PortView, 0, len(p.Ports))
	for _, pt := range p.Ports {
		v := s.ports[config.PortKey(p.DeviceNo, pt.PortNo)]
		ports = append(ports, uploader.PortView{PortNo: pt.PortNo, Alias: pt.Alias, State: v.State, FaultText: v.FaultText})
	}
	return uploader.DeviceOf(uploader.PileInfo{DeviceNo: p.DeviceNo, Name: p.Name, DeviceType: p.DeviceType,
		EnergyCode: p.EnergyCode, RatedPowerW: p.RatedPowerW, Version: s.version}, ports)
}

func (s *statusBoard) snapshot() []portView {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]portView, 0, len(s.ports))
	for _, v := range s.ports {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	for i := range out {
		out[i].repoint() // not into the live view, which the next poll changes
	}
	return out
}
