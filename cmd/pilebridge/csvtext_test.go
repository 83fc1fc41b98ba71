package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Issue 28, item 5: what the platform or a pile sent cannot become a
// formula in a spreadsheet; numbers stay numbers.
func TestCSVCellsAreText(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`=HYPERLINK("http://x","y")`: `'=HYPERLINK("http://x","y")`,
		"+86 138":                    "'+86 138",
		"@SUM(A1)":                   "'@SUM(A1)",
		"-1+1":                       "'-1+1",
		"\tx":                        "'\tx",
		"\rx":                        "'\rx",
		"-1":                         "-1",
		"123":                        "123",
		"川A12345":                    "川A12345",
		"":                           "",
	} {
		assert.Equal(t, want, csvText(in), "%q", in)
	}
}
