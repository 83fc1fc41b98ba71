// Package units prints the integers the bridge keeps (Wh, fen, 0.1 V,
// 0.01 A) in the units people read (kWh, yuan, V, A), exactly: no float
// ever touches an amount.
package units

import (
	"fmt"
	"strconv"
	"strings"
)

// Decimal prints v/div exactly, with as many decimals as div has zeros
// (div a power of ten; 1 or less: v as it is).
func Decimal(v, div int64) string {
	if div <= 1 {
		return strconv.FormatInt(v, 10)
	}
	digits := len(strconv.FormatInt(div, 10)) - 1
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%0*d", sign, v/div, digits, v%div)
}

// KWh prints Wh as kWh with three decimals.
func KWh(wh int64) string { return Decimal(wh, 1000) }

// KWhOfMWh prints mWh (a meter reading) as kWh, exactly: three decimals,
// more where the value has them.
func KWhOfMWh(mwh int64) string {
	s := Decimal(mwh, 1_000_000)
	keep := strings.IndexByte(s, '.') + 4
	for len(s) > keep && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	return s
}

// Yuan prints fen as yuan with two decimals.
func Yuan(fen int64) string { return Decimal(fen, 100) }
