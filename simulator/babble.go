package simulator

import (
	"context"
	"io"
	"math/rand/v2"
	"time"
)

// Babble writes random bytes to w until ctx ends or a write fails: a faulty
// device or a converter that streams noise onto the line. With gap 0 it
// writes 256-byte bursts back to back (as fast as the reader takes them);
// otherwise one byte every gap (a slow babble that never leaves the line
// silent for 3.5 characters).
func Babble(ctx context.Context, w io.Writer, gap time.Duration) error {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	buf := make([]byte, 256)
	for ctx.Err() == nil {
		n := len(buf)
		if gap > 0 {
			n = 1
		}
		for i := range buf[:n] {
			buf[i] = byte(rng.Uint32())
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		if gap > 0 {
			preciseSleep(gap) // a Go timer fires up to a millisecond late: longer than the line's silence
		}
	}
	return ctx.Err()
}
