package pii

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMasks(t *testing.T) {
	assert.Equal(t, "川A******", Plate("川A660N11"))
	assert.Equal(t, "川A*******", Plate("川AD123451"), "a new-energy plate")
	assert.Equal(t, "138****8000", Mobile("13800138000"))
	assert.Equal(t, "LST**************", VIN("LSTOP103212132001"), "the maker, not the car")
	assert.Equal(t, "", Plate(""))
	assert.Equal(t, "***", Mobile("123"), "too short to hide anything: starred whole")
	for _, s := range []string{"川A660N11", "13800138000", "LSTOP103212132001"} {
		for _, m := range []string{Plate(s), Mobile(s), VIN(s)} {
			assert.NotEqual(t, s, m)
			assert.LessOrEqual(t, len([]rune(m)), len([]rune(s)))
		}
		assert.Equal(t, len([]rune(s)), len([]rune(Mobile(s))), "the length is kept")
	}
	// a camera's garbage as long as its push is no longer than a plate
	assert.Len(t, []rune(Plate(strings.Repeat("A", 40_000))), 10)
}
