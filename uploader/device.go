package uploader

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/session"
)

// Device states (device_state) and port states (port_state).
const (
	DeviceAvailable = 1
	DeviceFault     = -1
	DeviceOffline   = -2

	PortIdle     = 1
	PortCharging = 2
	PortOccupied = 3 // plugged, not charging
	PortFault    = -1
)

// PortStatus is one port in a device/sync report.
type PortStatus struct {
	No        string `json:"no"`
	State     int    `json:"state"`
	StateDesc string `json:"state_desc,omitempty"`
	Alias     string `json:"alias"`
}

// DeviceStatus is one pile's device/sync report.
type DeviceStatus struct {
	No         string            `json:"no"`
	Name       string            `json:"name"`
	Type       int               `json:"type"`
	State      int               `json:"state"`
	StateDesc  string            `json:"state_desc,omitempty"`
	EnergyCode string            `json:"energy_code"`
	Port       []PortStatus      `json:"port"`
	Metadata   map[string]string `json:"metadata"` // always sent: a platform that requires it answers 400 otherwise
}

type deviceBody struct {
	Common
	DeviceStatus
}

// DeviceSync reports device states on change and every interval. The latest
// state wins, so nothing is queued durably.
type DeviceSync struct {
	client   *Client
	interval time.Duration
	log      zerolog.Logger

	mu      sync.Mutex
	latest  map[string]DeviceStatus
	nextAt  map[string]time.Time // when each device is due to be sent
	failing bool
	kick    chan struct{}
}

// NewDeviceSync builds a reporter.
func NewDeviceSync(c *Client, interval time.Duration, log zerolog.Logger) (*DeviceSync, error) {
	if interval <= 0 {
		return nil, errors.New("device sync: device_sync_interval must be set")
	}
	return &DeviceSync{client: c, interval: interval, log: log,
		latest: map[string]DeviceStatus{}, nextAt: map[string]time.Time{},
		kick: make(chan struct{}, 1)}, nil
}

// Update sets a device's state; a change is sent promptly.
func (d *DeviceSync) Update(st DeviceStatus) {
	sort.Slice(st.Port, func(i, j int) bool { return st.Port[i].No < st.Port[j].No })
	d.mu.Lock()
	changed := !reflect.DeepEqual(d.latest[st.No], st)
	d.latest[st.No] = st
	if changed {
		d.nextAt[st.No] = time.Time{}
	}
	d.mu.Unlock()
	if changed {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
}

// Run sends until ctx ends.
func (d *DeviceSync) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		case <-t.C:
		}
		d.flush(ctx)
	}
}

func (d *DeviceSync) flush(ctx context.Context) {
	now := time.Now()
	d.mu.Lock()
	var due []DeviceStatus
	for no, st := range d.latest {
		if !now.Before(d.nextAt[no]) {
			due = append(due, st)
		}
	}
	d.mu.Unlock()
	for _, st := range due {
		body, err := Marshal(deviceBody{Common: d.client.common(), DeviceStatus: st})
		if err != nil {
			d.log.Error().Err(err).Str("device", st.No).Msg("device status not encodable")
			continue
		}
		_, err = d.client.Post(ctx, PathDevice, body)
		d.mu.Lock()
		if err != nil {
			if !d.failing {
				d.log.Warn().Err(err).Str("device", st.No).Msg("device status not delivered, will retry")
			}
			d.failing = true
			d.nextAt[st.No] = now.Add(10 * time.Second)
		} else {
			if d.failing {
				d.log.Info().Msg("device status delivered again")
			}
			d.failing = false
			if reflect.DeepEqual(d.latest[st.No], st) {
				d.nextAt[st.No] = now.Add(d.interval)
			}
		}
		d.mu.Unlock()
	}
}

// PileInfo is what device/sync says of a pile besides its ports.
type PileInfo struct {
	DeviceNo, Name string
	DeviceType     int
	EnergyCode     string
	RatedPowerW    int64
	Version        string // the bridge's, as DEVICE_SOFTWARE_VERSION
}

// PortView is one port as device/sync reports it.
type PortView struct {
	PortNo, Alias string
	State         session.PortState
	FaultText     string // shown instead of 故障 when the pile gives one
}

// DeviceOf builds a pile's device/sync report from its ports' states: the
// pile is offline when every port is, faulted when every port is faulted
// or offline, available otherwise.
func DeviceOf(p PileInfo, ports []PortView) DeviceStatus {
	dev := DeviceStatus{No: p.DeviceNo, Name: p.Name, Type: p.DeviceType, EnergyCode: p.EnergyCode,
		State: DeviceAvailable, StateDesc: "可用", Metadata: map[string]string{
			"DEVICE_SOFTWARE_VERSION": p.Version, "DEVICE_PROTOCOL_VERSION": "modbus"}}
	if dev.Name == "" {
		dev.Name = p.DeviceNo
	}
	offline, faulted := 0, 0
	for _, pt := range ports {
		desc := portDescs[pt.State]
		if pt.State == session.Faulted && pt.FaultText != "" {
			desc = pt.FaultText
		}
		alias := pt.Alias
		if alias == "" {
			alias = pt.PortNo // the platform wants one for every port
		}
		dev.Port = append(dev.Port, PortStatus{No: pt.PortNo, State: portStates[pt.State], StateDesc: desc, Alias: alias})
		switch pt.State {
		case session.Offline:
			offline++
		case session.Faulted:
			faulted++
		}
	}
	switch {
	case offline == len(ports):
		dev.State, dev.StateDesc = DeviceOffline, "离线"
	case offline+faulted == len(ports):
		dev.State, dev.StateDesc = DeviceFault, "故障"
	}
	if p.RatedPowerW > 0 {
		dev.Metadata["DEVICE_CHARGE_POWER"] = strconv.FormatInt(p.RatedPowerW*10000, 10)
	}
	return dev
}
