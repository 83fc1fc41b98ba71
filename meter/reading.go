// Package meter knows registers: profiles (YAML data) say where each quantity
// lives and how it is encoded, and decode register blocks into integer readings.
package meter

import (
	"fmt"
	"time"
)

// Status is what the pile says it is doing.
type Status int

const (
	StatusUnknown Status = iota
	StatusIdle
	StatusPlugged
	StatusStarting
	StatusCharging
	StatusFinishing
	StatusFinished
	StatusFault
	StatusStartFailed
)

var statusNames = map[Status]string{
	StatusUnknown: "unknown", StatusIdle: "idle", StatusPlugged: "plugged",
	StatusStarting: "starting", StatusCharging: "charging", StatusFinishing: "finishing",
	StatusFinished: "finished", StatusFault: "fault", StatusStartFailed: "start_failed",
}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// ParseStatus maps a profile's status name to a Status.
func ParseStatus(name string) (Status, error) {
	for s, n := range statusNames {
		if n == name && s != StatusUnknown {
			return s, nil
		}
	}
	return StatusUnknown, fmt.Errorf("unknown status %q (want idle, plugged, starting, charging, finishing, finished, fault or start_failed)", name)
}

// MarshalText makes statuses readable in JSON and YAML.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a status name.
func (s *Status) UnmarshalText(b []byte) error {
	if string(b) == "unknown" {
		*s = StatusUnknown
		return nil
	}
	v, err := ParseStatus(string(b))
	*s = v
	return err
}

// Reading is one decoded poll of a port, in integers at fixed units. A Has*
// flag is false when the profile lacks the field or the meter marked it invalid.
type Reading struct {
	Time time.Time `json:"time"`

	EnergyWh  int64 `json:"energy_wh"`
	HasEnergy bool  `json:"has_energy"`
	// EnergyStepWh is the register's resolution in Wh when it is coarser than
	// 1 Wh (a float32 kWh register past ~8 192 kWh); 0 means exact.
	EnergyStepWh int64 `json:"energy_step_wh,omitempty"`

	PowerW    int64 `json:"power_w"`
	HasPower  bool  `json:"has_power"`
	VoltageDV int64 `json:"voltage_dv"` // 0.1 V
	CurrentCA int64 `json:"current_ca"` // 0.01 A
	SOC       int   `json:"soc"`
	HasSOC    bool  `json:"has_soc"`

	Status     Status `json:"status"`
	HasStatus  bool   `json:"has_status"`
	RawStatus  int64  `json:"raw_status"`
	FaultCode  int64  `json:"fault_code"`
	FaultText  string `json:"fault_text,omitempty"`
	StopCode   int64  `json:"stop_code"`
	StopReason string `json:"stop_reason,omitempty"`
	VIN        string `json:"vin,omitempty"`
	Mobile     string `json:"mobile,omitempty"` // phone or user id the pile collected

	// Extra holds the profile's other numeric fields, by name, in the field's unit.
	Extra map[string]int64 `json:"extra,omitempty"`
}

// Quantised says the energy register cannot resolve single Wh.
func (r Reading) Quantised() bool { return r.EnergyStepWh > 1 }
