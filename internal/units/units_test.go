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
