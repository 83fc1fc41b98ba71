package driver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCRC(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []byte{0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A}, AppendCRC([]byte{1, 3, 0, 0, 0, 1}))
}

func TestPlanCoalesces(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   []Range
		gap  int
		want []Block
	}{
		{"reference map: one read", []Range{{3, 0, 1}, {3, 1, 1}, {3, 4, 2}, {3, 10, 9}, {3, 2, 2}, {3, 6, 2}, {3, 8, 2}}, 0,
			[]Block{{3, 0, 19}}},
		{"gap allowed", []Range{{3, 0, 2}, {3, 10, 2}}, 8, []Block{{3, 0, 12}}},
		{"gap too wide", []Range{{3, 0, 2}, {3, 10, 2}}, 7, []Block{{3, 0, 2}, {3, 10, 2}}},
		{"function codes apart", []Range{{3, 0, 2}, {4, 0, 2}}, 10, []Block{{3, 0, 2}, {4, 0, 2}}},
		{"125 limit", []Range{{3, 0, 100}, {3, 100, 30}}, 0, []Block{{3, 0, 100}, {3, 100, 30}}},
		{"overlap", []Range{{3, 0, 4}, {3, 2, 4}}, 0, []Block{{3, 0, 6}}},
	}
	for _, c := range cases {
		got, err := Plan(c.in, c.gap)
		require.NoError(t, err, c.name)
		assert.Equal(t, c.want, got, c.name)
	}
	_, err := Plan([]Range{{3, 65535, 2}}, 0)
	assert.Error(t, err)
	_, err = Plan([]Range{{3, 0, 126}}, 0)
	assert.Error(t, err)
}

func TestReplyLengthFromRequest(t *testing.T) {
	t.Parallel()
	n, err := rtuReplyLen([]byte{1, 3, 0, 0, 0, 10, 0, 0})
	require.NoError(t, err)
	assert.Equal(t, 25, n)
	n, _ = rtuReplyLen([]byte{1, 6, 0, 0, 0, 10, 0, 0})
	assert.Equal(t, 8, n)
}
