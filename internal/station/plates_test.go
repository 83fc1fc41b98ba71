package station

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	same := 0
	for _, r := range h.bays["P1/1"].reads {
		if r.Plate == "川A55555" {
			same++
			assert.Equal(t, 5, r.n, "read five times")
		}
	}
	assert.Equal(t, 1, same, "a camera pushing the same plate is one read")

	for i := 0; i < 3*maxReadsPerPort; i++ {
		h.put("P1/1", cam(fmt.Sprintf("川A%05d", i), now))
	}
	assert.LessOrEqual(t, len(h.bays["P1/1"].reads), maxReadsPerPort, "a chatty camera is bounded")
}

// Issue 27, item 5: refused pushes are sized for an SD card: 1000 pushes of
// 64 KiB from an address no camera is configured at, each naming a 64 KiB
// serial number, add a few lines to the log (one a minute at most per
// address, every field bounded), not 62 MiB.
func TestRefusedPushesAreSizedForTheCard(t *testing.T) {
	now := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	var log bytes.Buffer
	cfg := &config.Config{Plates: config.Plates{Window: 10 * time.Minute, Cameras: []config.Camera{{Serial: "cam-bay1", From: []string{"192.0.2.10"}, Ports: []string{"P1/1"}}}},
		Piles: []config.Pile{{DeviceNo: "P1", Ports: []config.Port{{PortNo: "1"}}}}}
	h := newPlateHub(cfg, zerolog.New(&log), nil)
	h.now = func() time.Time { return now }
	serial := strings.Repeat("S", 64<<10-200)
	body := fmt.Sprintf(`{"AlarmInfoPlate":{"serialno":%q,"result":{"PlateResult":{"license":"%s"}}}}`, serial, strings.Repeat("川", 10))
	// from an unlisted address (not read at all), then from the camera's
	// address naming a serial number nobody configured (read, refused)
	for _, addr := range []string{"192.0.2.99:5000", "192.0.2.10:5000"} {
		log.Reset()
		for i := 0; i < 1000; i++ {
			req := httptest.NewRequest(http.MethodPost, "/plates/camera", strings.NewReader(body))
			req.RemoteAddr = addr
			w := httptest.NewRecorder()
			h.serveCamera(alarmInfoPlate)(w, req)
			require.Equal(t, http.StatusForbidden, w.Code)
			now = now.Add(100 * time.Millisecond)
		}
		t.Logf("from %s: 1000 refused pushes of %d KiB over %s: %d bytes of log, %d lines", addr, len(body)>>10, 100*time.Second, log.Len(), strings.Count(log.String(), "\n"))
		assert.Less(t, log.Len(), 100<<10)
	}
	assert.Equal(t, uint64(2000), h.Counts()[[2]string{"camera", "refused"}], "every one counted")
	pushes := h.Pushes()
	require.Len(t, pushes, keepPushes, "the page keeps the latest few")
	assert.Equal(t, "serial not configured", pushes[0].Why)
	assert.LessOrEqual(t, len(pushes[0].Camera), 64+3, "the serial bounded")
}

// A session that opens after the last one ended, with no unplug seen in
// between (the poll missed the idle moment): what the camera reads from
// then on is the new car, not the departed one's.
func TestNewSessionWithoutUnplugSeenTakesItsOwnReads(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	cfg := &config.Config{Plates: config.Plates{Window: 10 * time.Minute}, Piles: []config.Pile{{DeviceNo: "P1", Ports: []config.Port{{PortNo: "1"}}}}}
	h := newPlateHub(cfg, zerolog.Nop(), nil)
	cam := func(p string, at time.Time) session.PlateRead {
		return session.PlateRead{Plate: p, Source: session.PlateFromCamera, At: at, Confidence: 90}
	}
	first := t0
	h.put("P1/1", cam("川A11111", first.Add(time.Second)))
	got, ok := h.PlateFor("P1/1", first)
	require.True(t, ok)
	require.Equal(t, "川A11111", got.Plate)
	h.Ended("P1/1", first, t0.Add(time.Minute))
	h.put("P1/1", cam("川A11111", t0.Add(61*time.Second))) // the first car, still there
	second := t0.Add(62 * time.Second)                    // no Left: the idle was missed
	_, ok = h.PlateFor("P1/1", second)
	assert.False(t, ok, "the departing car's read is not the new session's")
	h.put("P1/1", cam("川A22222", second.Add(100*time.Millisecond)))
	got, ok = h.PlateFor("P1/1", second)
	require.True(t, ok, "the new car's read, made after its session opened")
	assert.Equal(t, "川A22222", got.Plate)
}
