// Package backoff is the one doubling delay the bridge waits between
// failures (a line reopened, a dead slave, the platform, a store write),
// and the one wait that ends with its context.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy doubles from Base after each failure, up to Max.
type Policy struct {
	Base, Max time.Duration
}

// After is the delay after the n-th failure in a row (n ≥ 1): Base, 2·Base,
// 4·Base… never above Max. n ≤ 0 counts as 1.
func (p Policy) After(n int) time.Duration {
	d := p.Base
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2 // at most 63 doublings before Max is passed: no overflow
	}
	if d > p.Max || d <= 0 {
		d = p.Max
	}
	return d
}

// Jittered is After(n) spread over [d/2, d], so that many waiters do not
// come back at once; Max is still never exceeded.
func (p Policy) Jittered(n int) time.Duration {
	d := p.After(n)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Next is the delay after cur: doubled, at least Base, at most Max (for
// callers that keep the last delay rather than a count).
func (p Policy) Next(cur time.Duration) time.Duration {
	return min(max(2*cur, p.Base), p.Max)
}

// Sleep waits d or until ctx ends, and says which: ctx.Err() when it
// ended first.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
