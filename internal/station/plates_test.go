package station

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"

	"pilebridge/internal/config"
	"pilebridge/session"
)

func hubAt(now *time.Time) *plateHub {
	cfg := &config.Config{Plates: config.Plates{Window: 10 * time.Minute},
		Piles: []config.Pile{{DeviceNo: "P1", Ports: []config.Port{{PortNo: "1"}}}}}
	h := newPlateHub(cfg, zerolog.Nop(), nil)
	h.now = func() time.Time { return *now }
	return h
}

// The window before a session opens, a read going to the session of the
// car that was there only, repeats counted as one read, and a bounded
// memory per bay.
func TestPlateHubJoinRules(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	now := t0
	h := hubAt(&now)
	cam := func(p string, at time.Time) session.PlateRead {
		return session.PlateRead{Plate: p, Source: session.PlateFromCamera, At: at}
	}
	h.put("P1/1", cam("川A11111", t0))
	now = t0.Add(11 * time.Minute)
	_, ok := h.PlateFor("P1/1", now)
	assert.False(t, ok, "read 11 min before the session opened: outside the 10 min window")

	h.put("P1/1", cam("川A22222", now))
	opened := now.Add(30 * time.Second)
	got, ok := h.PlateFor("P1/1", opened)
	assert.True(t, ok)
	assert.Equal(t, "川A22222", got.Plate, "a read 30 s before plug-in")
	now = opened.Add(time.Minute)
	h.put("P1/1", session.PlateRead{Plate: "川A33333", Source: session.PlateFromAttendant, At: now})
	h.put("P1/1", cam("川A44444", now.Add(time.Second)))
	got, _ = h.PlateFor("P1/1", opened)
	assert.Equal(t, "川A33333", got.Plate, "the attendant over a later camera read")

	// the session ends, the car is still there, then leaves
	h.Ended("P1/1", opened, now.Add(2*time.Second))
	h.put("P1/1", cam("川A44444", now.Add(3*time.Second)))
	h.Left("P1/1", now.Add(5*time.Second))
	h.put("P1/1", cam("川A22222", now.Add(6*time.Second))) // it drives off
	next := now.Add(2 * time.Minute)
	_, ok = h.PlateFor("P1/1", next)
	assert.False(t, ok, "nothing read during or after the first session goes to the next one")

	now = next.Add(time.Second)
	for i := 0; i < 5; i++ {
		h.put("P1/1", cam("川A55555", now.Add(time.Duration(i)*time.Second)))
	}
	h.put("P1/1", cam("川A55556", now.Add(6*time.Second))) // one misread, later
	got, ok = h.PlateFor("P1/1", next)
	assert.True(t, ok)
	assert.Equal(t, "川A55555", got.Plate, "the plate read most often, not the latest misread")
	assert.Len(t, h.bays["P1/1"].reads, 2, "a camera pushing the same plate is one read")

	for i := 0; i < 3*maxReadsPerPort; i++ {
		h.put("P1/1", cam(fmt.Sprintf("川A%05d", i), now))
	}
	assert.LessOrEqual(t, len(h.bays["P1/1"].reads), maxReadsPerPort, "a chatty camera is bounded")
}
