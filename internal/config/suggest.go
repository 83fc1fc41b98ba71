package config

import (
	"reflect"
	"regexp"
	"strings"
)

// suggest is the key of the config closest to the unknown key at path
// (platform.progres_interval → progress_interval), among the keys its
// parent takes; "" when none is close.
func suggest(path string) string {
	parts := strings.Split(indexRe.ReplaceAllString(path, ""), ".")
	t := reflect.TypeOf(Config{})
	for _, p := range parts[:len(parts)-1] {
		f, ok := fieldByKey(t, p)
		if !ok {
			return ""
		}
		t = f
	}
	unknown := parts[len(parts)-1]
	best, bestD := "", 3 // at most two edits, and fewer than a third of the word
	for _, k := range keysOf(t) {
		if d := editDistance(unknown, k); d < bestD && d*3 <= len(k) {
			best, bestD = k, d
		}
	}
	return best
}

var indexRe = regexp.MustCompile(`\[\d+\]`)

// fieldByKey is the type behind key in struct type t (slices, maps and
// pointers looked through).
func fieldByKey(t reflect.Type, key string) (reflect.Type, bool) {
	t = elem(t)
	if t.Kind() != reflect.Struct {
		return nil, false
	}
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name == key {
			return elem(t.Field(i).Type), true
		}
	}
	return nil, false
}

func elem(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	return t
}

// keysOf are the yaml keys of struct type t.
func keysOf(t reflect.Type) []string {
	t = elem(t)
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// editDistance is the optimal-string-alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours (buad →
// baud) count one each.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
