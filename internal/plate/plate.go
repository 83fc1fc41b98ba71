// Package plate reads Chinese licence plates: the shape check and the
// normal form every source is brought to (a camera, a parking system, the
// attendant, the VIN table), so that one car's plate compares equal
// whatever typed or read it.
package plate

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// provinces are the 31 province-level abbreviations a plate starts with.
const provinces = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"

// suffixes end a special plate of four serial characters: police, coach,
// consulate, trailer, Hong Kong and Macao cross-border, test vehicle.
const suffixes = "警学领挂港澳试"

// Normalize brings s to the normal form (full-width letters and digits to
// ASCII, upper case, no spaces, dots or dashes) and checks its shape:
//
//	川A12345    province, issuing letter, five serial characters
//	川AD12345   new-energy small car (letter A–K first, then five)
//	川A12345D   new-energy large vehicle (five digits, then D or F)
//	川A1234警   four serial characters and a suffix (警学领挂港澳试)
//	使014578    embassy: 使 and six digits
//
// Serial characters are digits and letters but I and O. The error says what
// does not fit.
func Normalize(s string) (string, error) {
	n := normalForm(s)
	if n == "" {
		return "", fmt.Errorf("plate %q: empty", s)
	}
	if why := shape(n); why != "" {
		return "", fmt.Errorf("plate %q: %s", s, why)
	}
	return n, nil
}

func normalForm(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 0xFF01 && r <= 0xFF5E: // full-width ASCII
			r -= 0xFEE0
		case r == 0x3000: // ideographic space
			continue
		}
		switch r {
		case ' ', '\t', '.', '-', '_', '·', '・', '•', '\u00A0':
			continue
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

func serial(r rune) bool {
	return (r >= '0' && r <= '9') || (r >= 'A' && r <= 'Z' && r != 'I' && r != 'O')
}

func digits(rs []rune) bool {
	for _, r := range rs {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func allSerial(rs []rune) bool {
	for _, r := range rs {
		if !serial(r) {
			return false
		}
	}
	return true
}

// shape is "" for a plate of a known shape, or what is wrong.
func shape(n string) string {
	rs := []rune(n)
	if rs[0] == '使' {
		if len(rs) == 7 && digits(rs[1:]) {
			return ""
		}
		return "an embassy plate is 使 and six digits"
	}
	if !strings.ContainsRune(provinces, rs[0]) {
		return fmt.Sprintf("starts with %q, not a province's character", string(rs[0]))
	}
	if len(rs) < 2 || rs[1] < 'A' || rs[1] > 'Z' || rs[1] == 'I' || rs[1] == 'O' {
		return "the second character is the issuing authority's letter"
	}
	rest := rs[2:]
	switch len(rest) {
	case 5:
		if allSerial(rest) {
			return ""
		}
		if allSerial(rest[:4]) && strings.ContainsRune(suffixes, rest[4]) {
			return ""
		}
		return "five serial characters (digits and letters but I and O), or four and a suffix " + suffixes
	case 6:
		if strings.ContainsRune("ABCDEFGHJK", rest[0]) && allSerial(rest[1:]) {
			return "" // new-energy small car
		}
		if digits(rest[:5]) && (rest[5] == 'D' || rest[5] == 'F') {
			return "" // new-energy large vehicle
		}
		return "a new-energy plate is a letter A–K and five serial characters, or five digits and D or F"
	}
	return fmt.Sprintf("%d characters: a plate has 7 (8 for new energy)", utf8.RuneCountInString(n))
}
