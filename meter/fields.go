package meter

import "fmt"

// fieldSpec is one well-known field a profile may declare: the unit it is
// decoded into, how its value enters a Reading (decode) and leaves it
// (encode, for the simulator), and how the read command shows it. Decode,
// Encode, profile validation and `pilebridge read` all use this table, so
// a field is declared once; a name not in it is a profile's own extra
// quantity (Reading.Extra), with the unit the profile gives.
type fieldSpec struct {
	unit  string // the integer unit it is decoded into
	ascii bool   // text (VIN, mobile), not a number
	key   string // its key in `read --json`
	// Div and Eng show the integer in an engineering unit: v/div Eng
	// (Wh/1000 kWh); div 0: shown as it is.
	div int64
	eng string
	// k multiplies the decoded value: energy is kept in mWh, at the
	// register's own resolution; 0 means 1.
	k int64
	// floor: the simulator writes the register truncated to its step, as a
	// meter shows the energy counted so far.
	floor  bool
	decode func(p *Profile, r *Reading, v, res int64, raw []byte) error // numeric fields
	encode func(p *Profile, r Reading) (v int64, ok bool, err error)    // ok false: not reported
	text   func(r Reading) string                                       // ascii fields
	setTxt func(r *Reading, s string)
	show   func(r Reading) any // for `read --json` and `read`
}

var fieldTable = map[string]fieldSpec{
	"energy": {unit: "Wh", key: "energy_wh", div: 1000, eng: "kWh", k: 1000, floor: true,
		decode: func(p *Profile, r *Reading, v, res int64, raw []byte) error {
			if v < 0 {
				return &DecodeError{Profile: p.Name, Field: "energy", Raw: fmt.Sprintf("% x", raw), Msg: fmt.Sprintf("negative energy %d mWh", v)}
			}
			r.SetEnergyMWh(v)
			r.HasEnergy, r.EnergyResMWh = true, max(res, 1)
			return nil
		},
		encode: func(_ *Profile, r Reading) (int64, bool, error) { return r.EnergyMWh, true, nil },
		show:   func(r Reading) any { return r.EnergyWh }},
	"power": {unit: "W", key: "power_w", div: 1000, eng: "kW",
		decode: func(_ *Profile, r *Reading, v, _ int64, _ []byte) error { r.PowerW, r.HasPower = v, true; return nil },
		encode: func(_ *Profile, r Reading) (int64, bool, error) { return r.PowerW, true, nil },
		show:   func(r Reading) any { return r.PowerW }},
	"voltage": {unit: "0.1 V", key: "voltage_dv", div: 10, eng: "V",
		decode: func(_ *Profile, r *Reading, v, _ int64, _ []byte) error { r.VoltageDV = v; return nil },
		encode: func(_ *Profile, r Reading) (int64, bool, error) { return r.VoltageDV, true, nil },
		show:   func(r Reading) any { return r.VoltageDV }},
	"current": {unit: "0.01 A", key: "current_ca", div: 100, eng: "A",
		decode: func(_ *Profile, r *Reading, v, _ int64, _ []byte) error { r.CurrentCA = v; return nil },
		encode: func(_ *Profile, r Reading) (int64, bool, error) { return r.CurrentCA, true, nil },
		show:   func(r Reading) any { return r.CurrentCA }},
	"soc": {unit: "%", key: "soc_pct", div: 1, eng: "%",
		decode: func(_ *Profile, r *Reading, v, _ int64, _ []byte) error {
			if v >= 0 && v <= 100 { // out of range is "not reported", not a reason to drop the poll
				r.SOC, r.HasSOC = int(v), true
			}
			return nil
		},
		encode: func(_ *Profile, r Reading) (int64, bool, error) { return int64(r.SOC), r.HasSOC, nil },
		show: func(r Reading) any {
			if !r.HasSOC {
				return nil
			}
			return r.SOC
		}},
	"status": {key: "status",
		decode: func(p *Profile, r *Reading, v, _ int64, _ []byte) error {
			r.RawStatus = v
			s, known := p.statuses[v]
			if !known {
				return &DecodeError{Profile: p.Name, Field: "status", Raw: fmt.Sprint(v), Msg: "status value not in status_map"}
			}
			r.Status, r.HasStatus = s, true
			return nil
		},
		encode: func(p *Profile, r Reading) (int64, bool, error) {
			raw, ok := p.StatusRaw(r.Status)
			if !ok {
				return 0, false, fmt.Errorf("profile %s has no raw value for status %s", p.Name, r.Status)
			}
			return raw, true, nil
		},
		show: func(r Reading) any {
			if !r.HasStatus {
				return nil
			}
			return r.Status.String()
		}},
	"fault": {key: "fault",
		decode: func(p *Profile, r *Reading, v, _ int64, _ []byte) error {
			r.FaultCode = v
			if v != 0 {
				r.FaultText = p.Faults[v]
				if r.FaultText == "" {
					r.FaultText = fmt.Sprintf("故障码%d", v)
				}
			}
			return nil
		},
		encode: func(_ *Profile, r Reading) (int64, bool, error) { return r.FaultCode, true, nil },
		show: func(r Reading) any {
			if r.FaultText != "" {
				return fmt.Sprintf("%d %s", r.FaultCode, r.FaultText)
			}
			return r.FaultCode
		}},
	"stop_reason": {key: "stop_reason",
		decode: func(p *Profile, r *Reading, v, _ int64, _ []byte) error {
			r.StopCode, r.StopReason = v, p.StopReasons[v]
			return nil
		},
		encode: func(_ *Profile, r Reading) (int64, bool, error) { return r.StopCode, true, nil },
		show: func(r Reading) any {
			if r.StopReason != "" {
				return fmt.Sprintf("%d %s", r.StopCode, r.StopReason)
			}
			return r.StopCode
		}},
	// session_count is the pile's transaction counter: it changes once per
	// session, so a change proves a new session (see docs/billing.md).
	"session_count": {key: "session_count",
		decode: func(_ *Profile, r *Reading, v, _ int64, _ []byte) error {
			r.SessionCount, r.HasSessionCount = v, true
			return nil
		},
		encode: func(_ *Profile, r Reading) (int64, bool, error) { return r.SessionCount, true, nil },
		show: func(r Reading) any {
			if !r.HasSessionCount {
				return nil
			}
			return r.SessionCount
		}},
	"vin": {ascii: true, key: "vin", text: func(r Reading) string { return r.VIN },
		setTxt: func(r *Reading, s string) { r.VIN = s }, show: func(r Reading) any { return r.VIN }},
	"mobile": {ascii: true, key: "mobile", text: func(r Reading) string { return r.Mobile },
		setTxt: func(r *Reading, s string) { r.Mobile = s }, show: func(r Reading) any { return r.Mobile }},
}

// knownFieldNames lists the table's names, for messages.
const knownFieldNames = "energy, power, voltage, current, soc, status, fault, stop_reason, session_count, vin, mobile"

// FieldKey is the field's key in `read --json`.
func FieldKey(name string) string {
	if s, ok := fieldTable[name]; ok {
		return s.key
	}
	return name
}

// FieldValue is the field's value in r as `read` shows it: the integer in
// its decoded unit, a text, or nil when the reading does not carry it.
func FieldValue(r Reading, name string) any {
	if s, ok := fieldTable[name]; ok {
		return s.show(r)
	}
	if v, ok := r.Extra[name]; ok {
		return v
	}
	return nil
}

// FieldEngineering gives the field's value in r as a decimal in an
// engineering unit (kWh, kW, V, A): the integer, its divisor and the unit.
// ok is false for a field that has none (shown as it is).
func FieldEngineering(r Reading, name string) (v, div int64, unit string, ok bool) {
	s, known := fieldTable[name]
	if !known || s.div == 0 {
		return 0, 0, "", false
	}
	n, isInt := s.show(r).(int64)
	if !isInt {
		if i, isSmall := s.show(r).(int); isSmall {
			n, isInt = int64(i), true
		}
	}
	if !isInt {
		return 0, 0, "", false
	}
	return n, s.div, s.eng, true
}
