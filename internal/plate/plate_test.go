package plate

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"川A12345":    "川A12345",
		"川a12345":    "川A12345",
		"川A·12345":   "川A12345",
		"川 A-123 45": "川A12345",
		"川Ａ１２３４５":    "川A12345", // full width
		"川Ａ　１２３４５":   "川A12345", // with an ideographic space
		"粤BD12345":   "粤BD12345",
		"粤B12345F":   "粤B12345F",
		"京A1234警":    "京A1234警",
		"沪A1234领":    "沪A1234领",
		"川A1234学":    "川A1234学",
		"粤Z1234港":    "粤Z1234港",
		"使014578":    "使014578",
		" 琼ax123b ":  "琼AX123B",
		"新A·DF1234":  "新ADF1234",
	} {
		got, err := Normalize(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, got, in)
		}
	}
}

func TestNormalizeRefuses(t *testing.T) {
	for in, why := range map[string]string{
		"":            "empty",
		"  ":          "empty",
		"AB12345":     "province",
		"川112345":     "issuing authority",
		"川I12345":     "issuing authority",
		"川A1234":      "6 characters",
		"川A123456789": "11 characters",
		"川A12O45":     "five serial characters",
		"川A1234甲":     "five serial characters",
		"川AZ12345":    "new-energy",
		"川A1234DD":    "new-energy",
		"使01457":      "embassy",
		"无牌车":         "province",
		"川A12 34?":    "five serial",
	} {
		_, err := Normalize(in)
		if assert.Error(t, err, in) {
			assert.Contains(t, err.Error(), why, in)
		}
	}
}

// Whatever the input, a plate that passes is in normal form: normalising
// it again changes nothing.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"川A12345", "粤BD12345", "川Ａ１２３４５", "使014578", "京A1234警", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Normalize(s)
		if err != nil {
			return
		}
		again, err := Normalize(n)
		if err != nil || again != n {
			t.Fatalf("%q → %q → %q, %v", s, n, again, err)
		}
	})
}
