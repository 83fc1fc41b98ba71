package driver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The busy ratio is the share of the last minute spent in exchanges, for
// any duty cycle; an idle minute reads 0.
func TestLoadMeter(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		every, busy time.Duration
	}{{time.Second, 300 * time.Millisecond}, {200 * time.Millisecond, 190 * time.Millisecond}, {5 * time.Second, 70 * time.Millisecond}, {time.Second, 0}} {
		var m loadMeter
		now := t0
		for i := 0; i < 300; i++ {
			m.add(now, now.Add(c.busy))
			now = now.Add(c.every)
		}
		total, ratio := m.load(now)
		want := float64(c.busy) / float64(c.every)
		assert.InDelta(t, want, ratio, 0.03, "every %s, busy %s", c.every, c.busy)
		assert.Equal(t, 300*c.busy, total)
		_, idle := m.load(now.Add(2 * time.Minute))
		assert.Zero(t, idle, "a minute without exchanges")
	}
	var m loadMeter
	_, r := m.load(t0)
	assert.Zero(t, r, "no exchange yet")
}
