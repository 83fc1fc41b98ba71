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

	// EnergyMWh is the energy register at its native resolution, in mWh:
	// sessions difference these and round to Wh once per bill.
	EnergyMWh int64 `json:"energy_mwh"`
	EnergyWh  int64 `json:"energy_wh"` // EnergyMWh rounded, for display
	HasEnergy bool  `json:"has_energy"`
	// EnergyResMWh is the smallest change the register can show at this
	// value, in mWh: integer step × scale × PT×CT, or a float32's ULP.
	EnergyResMWh int64 `json:"energy_res_mwh,omitempty"`

	// SessionCount is the pile's transaction counter: a change proves a new
	// session even when the bridge did not see the old one end.
	SessionCount    int64 `json:"session_count,omitempty"`
	HasSessionCount bool  `json:"has_session_count,omitempty"`

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
func (r Reading) Quantised() bool { return r.EnergyResMWh > 1000 }

// EnergyStepWh is the register's resolution in whole Wh (rounded up).
func (r Reading) EnergyStepWh() int64 { return (r.EnergyResMWh + 999) / 1000 }

// SetEnergyMWh sets the energy and its rounded Wh together.
func (r *Reading) SetEnergyMWh(mwh int64) { r.EnergyMWh, r.EnergyWh = mwh, RoundWh(mwh) }

// RoundWh is mWh to Wh, half up: the one rounding of energy (a bill rounds
// once, at its end; energy is never negative).
func RoundWh(mwh int64) int64 { return (mwh + 500) / 1000 }
