package meter

import "pilebridge/internal/limits"

// Plausible says whether a reading could come from a working meter or
// pile with this profile: energy, power, voltage and SOC in their ranges
// (what `scan --probe` keeps).
func (p *Profile) Plausible(r Reading) bool {
	if !r.HasEnergy || r.EnergyWh < 0 || r.EnergyWh > 1_000_000_000_000 {
		return false
	}
	if r.HasPower && (r.PowerW < -limits.MaxPowerW || r.PowerW > limits.MaxPowerW) {
		return false
	}
	if p.Fields["voltage"] != nil && (r.VoltageDV < 0 || r.VoltageDV > 10_000) {
		return false
	}
	if r.HasSOC && (r.SOC < 0 || r.SOC > 100) {
		return false
	}
	return true
}
