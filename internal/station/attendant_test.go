package station

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"pilebridge/internal/config"
)

// The lockout in simulated time: attendantTries wrong codes lock one
// address for attendantLock, not the others; attendantTriesAll from many
// addresses lock everyone; the lock ends.
func TestAttendantGate(t *testing.T) {
	g := attendantGate{byAddr: map[string]*codeTries{}}
	now := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	for i := 0; i < attendantTries-1; i++ {
		g.failed("10.0.0.1", now)
	}
	_, locked := g.locked("10.0.0.1", now)
	assert.False(t, locked, "a few slips are allowed")
	g.failed("10.0.0.1", now)
	until, locked := g.locked("10.0.0.1", now)
	assert.True(t, locked)
	assert.Equal(t, now.Add(attendantLock), until)
	_, locked = g.locked("10.0.0.2", now)
	assert.False(t, locked, "another phone is not locked out")
	_, locked = g.locked("10.0.0.1", now.Add(attendantLock))
	assert.False(t, locked, "the lock ends")

	later := now.Add(time.Hour)
	for i := 0; i < attendantTriesAll; i++ {
		g.failed(fmt.Sprintf("10.0.1.%d", i), later)
	}
	_, locked = g.locked("10.0.0.9", later)
	assert.True(t, locked, "a guesser with many addresses locks the form for everyone")

	g = attendantGate{byAddr: map[string]*codeTries{}}
	for i := 0; i < 3*maxGateAddrs; i++ {
		g.failed(fmt.Sprintf("addr-%d", i), later.Add(time.Duration(i)*attendantLock))
	}
	assert.LessOrEqual(t, len(g.byAddr), maxGateAddrs, "bounded")
}

func TestAttendantOf(t *testing.T) {
	list := []config.Attendant{{Name: "王师傅", Code: "480731"}, {Name: "Li", Code: "k7p2x9"}}
	a, ok := attendantOf(list, "k7p2x9")
	assert.True(t, ok)
	assert.Equal(t, "Li", a.Name)
	_, ok = attendantOf(list, "480732")
	assert.False(t, ok)
	_, ok = attendantOf([]config.Attendant{{Name: "x", Code: ""}}, "")
	assert.False(t, ok, "an empty code is nobody's")
}
