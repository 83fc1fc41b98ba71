package driver

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// stallLink hands out chunks as a serial port would after this process
// was stalled: each read first waits out its chunk's stall (ignoring the
// deadline, as a descheduled process does), then returns the bytes the
// kernel buffered meanwhile. After the chunks it times out.
type stallLink struct {
	chunks []stallChunk
	closed bool
}

type stallChunk struct {
	stall time.Duration
	bytes int
}

func (l *stallLink) Write(p []byte) (int, error) { return len(p), nil }
func (l *stallLink) Discard() (int, error)       { return 0, nil }
func (l *stallLink) Close() error                { l.closed = true; return nil }
func (l *stallLink) ReadBefore(p []byte, deadline time.Time) (int, error) {
	if len(l.chunks) == 0 {
		time.Sleep(time.Until(deadline))
		return 0, ErrTimeout
	}
	c := l.chunks[0]
	l.chunks = l.chunks[1:]
	time.Sleep(c.stall)
	return min(c.bytes, len(p)), nil
}

// A late reply that reached the kernel within the quarantine is a late
// reply, even when this process reads it only after the quarantine's end
// (it was descheduled on a loaded board); only bytes that keep coming
// after the end are a babble. Before, the stalled read alone closed the
// line as babbling (a TestBoard failure on a loaded CI machine).
func TestDrainLateAfterAStallIsNotABabble(t *testing.T) {
	const window = 20 * time.Millisecond
	cases := []struct {
		name   string
		chunks []stallChunk
		babble bool
	}{
		{"late reply read in time", []stallChunk{{0, 9}}, false},
		{"late reply read after a stall past the end", []stallChunk{{2 * window, 9}}, false},
		{"reply straddling the end", []stallChunk{{window / 2, 4}, {window, 5}}, false},
		{"bytes still coming after the end", []stallChunk{{2 * window, 9}, {time.Millisecond, 9}}, true},
		{"more than two replies' worth", []stallChunk{{0, 260}, {0, 260}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := &stallLink{chunks: c.chunks}
			tr := &transport{framing: framingRTU, silence: silenceFor(115200), log: zerolog.Nop(), link: l}
			tr.quarantineUntil = time.Now().Add(window)
			tr.drainLate()
			babbled := tr.babbles.Load() > 0
			if babbled != c.babble {
				t.Fatalf("babble %v, want %v", babbled, c.babble)
			}
			if l.closed != c.babble {
				t.Fatalf("line closed %v, want %v (only a babble closes it)", l.closed, c.babble)
			}
			if !tr.quarantineUntil.IsZero() {
				t.Fatal("the quarantine is not over after the drain")
			}
		})
	}
}
