package station

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"pilebridge/internal/config"
	"pilebridge/session"
)

// Issue 27, item 1: a car park, the way it runs. Two bays, cars one after
// another at each: a car drives up (the camera above the bay reads it from
// then on, every 3 s, one read in ten a misread, now and then a passing
// car), plugs in, charges, finishes, stays a while, unplugs and drives off
// (read until it is gone); the next one comes. The hub is asked as the
// runner asks it (every second while a session is open, the plate kept
// when better), and told what the runner tells it. Every bill carries its
// own car's plate or none, never another car's (before: several did).
func TestCarParkEveryBillItsOwnCar(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("PILEBRIDGE_CARPARK_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "PILEBRIDGE_CARPARK_SEED")
	}
	t.Logf("seed %d (PILEBRIDGE_CARPARK_SEED repeats it)", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	t0 := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	now := t0
	cfg := &config.Config{Plates: config.Plates{Window: 10 * time.Minute},
		Piles: []config.Pile{{DeviceNo: "P", Ports: []config.Port{{PortNo: "1"}, {PortNo: "2"}}}}}
	h := newPlateHub(cfg, zerolog.Nop(), nil)
	h.now = func() time.Time { return now }

	plateOf := func(n int) string { return fmt.Sprintf("川A%05d", 10000+n) }
	misread := func(p string) string {
		r := []rune(p)
		i := 3 + rng.IntN(len(r)-3)
		r[i] = rune('0' + (int(r[i]-'0')+1+rng.IntN(8))%10)
		return string(r)
	}
	type phase int
	const (
		empty phase = iota
		arriving
		charging
		finished
		leaving
	)
	type bayState struct {
		port       string
		phase      phase
		car        string
		until      time.Time // this phase ends
		nextRead   time.Time
		opened     time.Time
		plate      session.PlateRead
		sessions   int
		withPlate  int
		wrongPlate []string
	}
	bays := []*bayState{{port: "P/1"}, {port: "P/2"}}
	cars := 0
	const perBay = 100
	for done := false; !done; now = now.Add(time.Second) {
		done = true
		for _, b := range bays {
			if b.sessions < perBay || b.phase != empty {
				done = false
			}
			// the camera above the bay reads whoever is there
			if b.phase != empty && !now.Before(b.nextRead) {
				b.nextRead = now.Add(3 * time.Second)
				p := b.car
				switch x := rng.IntN(50); {
				case x < 5:
					p = misread(p)
				case x == 5:
					p = fmt.Sprintf("川B%05d", rng.IntN(100000)) // a car passing by
				}
				h.put(b.port, session.PlateRead{Plate: p, Source: session.PlateFromCamera, At: now})
			}
			if b.phase == charging {
				if pr, ok := h.PlateFor(b.port, b.opened); ok && pr.Better(b.plate.Plate, b.plate.Source, b.plate.At) {
					b.plate = pr
				}
			}
			if now.Before(b.until) {
				continue
			}
			switch b.phase {
			case empty:
				if b.sessions == perBay {
					continue
				}
				cars++
				b.car, b.phase, b.until = plateOf(cars), arriving, now.Add(time.Duration(5+rng.IntN(40))*time.Second)
				b.nextRead = now.Add(time.Duration(rng.IntN(3)) * time.Second)
			case arriving: // plugged in: the session opens
				b.phase, b.opened, b.plate = charging, now, session.PlateRead{}
				b.until = now.Add(time.Duration(20+rng.IntN(300)) * time.Second)
			case charging: // the pile says finished: the session ends
				h.Ended(b.port, b.opened, now)
				b.sessions++
				switch {
				case b.plate.Plate == b.car:
					b.withPlate++
				case b.plate.Plate != "":
					b.wrongPlate = append(b.wrongPlate, fmt.Sprintf("session of %s billed %s (read %s)", b.car, b.plate.Plate, b.plate.At.Format(time.TimeOnly)))
				}
				b.phase, b.until = finished, now.Add(time.Duration(rng.IntN(60))*time.Second)
			case finished: // unplugged: idle
				h.Left(b.port, now)
				b.phase, b.until = leaving, now.Add(time.Duration(3+rng.IntN(20))*time.Second)
			case leaving: // gone; the next car may come at once
				b.phase, b.until = empty, now.Add(time.Duration(rng.IntN(20))*time.Second)
			}
		}
	}
	for _, b := range bays {
		t.Logf("bay %s: %d sessions, %d with their car's plate, %d with none, %d with another", b.port, b.sessions, b.withPlate,
			b.sessions-b.withPlate-len(b.wrongPlate), len(b.wrongPlate))
		require.Empty(t, b.wrongPlate, "seed %d", seed)
		require.Greater(t, b.withPlate, perBay*9/10, "nearly every car's plate is found (seed %d)", seed)
	}
}
