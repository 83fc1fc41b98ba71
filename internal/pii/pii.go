// Package pii masks the personal data a charging record carries: the car's
// VIN, its plate and the driver's mobile number. A plate with a time and a
// place is whereabouts data (PIPL art. 28); what is shown without the
// local API's token, on the page and in logs, is masked by these rules
// alone, so every place masks alike.
package pii

import "strings"

// keep shows the first head and last tail runes of s and stars between; a
// value too short to hide anything is starred whole.
func keep(s string, head, tail int) string {
	r := []rune(s)
	if len(r) == 0 {
		return ""
	}
	if len(r) <= head+tail {
		return strings.Repeat("*", len(r))
	}
	return string(r[:head]) + strings.Repeat("*", len(r)-head-tail) + string(r[len(r)-tail:])
}

// maxPlate bounds a masked plate: a plate has at most 8 characters, and a
// camera's garbage as long as its push must not become a line as long.
const maxPlate = 10

// Plate keeps the province and the city letter only: 川A660N11 → 川A******
// (where the car is registered, not which car it is). Anything past
// maxPlate characters is cut first.
func Plate(s string) string {
	if r := []rune(s); len(r) > maxPlate {
		s = string(r[:maxPlate])
	}
	return keep(s, 2, 0)
}

// Mobile keeps the operator prefix and the last four digits: 13800138000 →
// 138****8000.
func Mobile(s string) string { return keep(s, 3, 4) }

// VIN keeps the world manufacturer identifier only (the first three
// characters): LSTOP103212132001 → LST**************. The serial number at
// its end would follow one car from visit to visit.
func VIN(s string) string { return keep(s, 3, 0) }
