package units

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDecimal(t *testing.T) {
	assert.Equal(t, "7654.321", KWh(7654321))
	assert.Equal(t, "0.005", KWh(5))
	assert.Equal(t, "-1.05", Yuan(-105))
	assert.Equal(t, "230.5", Decimal(2305, 10))
	assert.Equal(t, "42", Decimal(42, 1))
}

func TestKWhOfMWh(t *testing.T) {
	assert.Equal(t, "5000.000", KWhOfMWh(5_000_000_000))
	assert.Equal(t, "0.533", KWhOfMWh(533_000))
	assert.Equal(t, "1.2345", KWhOfMWh(1_234_500), "a float register's sub-Wh digits")
	assert.Equal(t, "0.000001", KWhOfMWh(1))
	assert.Equal(t, "-4999.522", KWhOfMWh(-4_999_522_000))
}
