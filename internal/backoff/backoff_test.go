package backoff

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPolicyDoublesToItsCap(t *testing.T) {
	p := Policy{Base: 200 * time.Millisecond, Max: 2 * time.Second}
	for n, want := range map[int]time.Duration{-1: 200 * time.Millisecond, 0: 200 * time.Millisecond, 1: 200 * time.Millisecond,
		2: 400 * time.Millisecond, 4: 1600 * time.Millisecond, 5: 2 * time.Second, 1000: 2 * time.Second} {
		assert.Equal(t, want, p.After(n), "after %d failures", n)
	}
	long := Policy{Base: 10 * time.Minute, Max: time.Hour}
	assert.Equal(t, time.Hour, long.After(1<<20), "a long base doubled often never wraps")
	assert.Equal(t, 200*time.Millisecond, p.Next(0))
	assert.Equal(t, 2*time.Second, p.Next(1500*time.Millisecond))
	for n := 1; n < 100; n++ {
		d := p.Jittered(n)
		assert.True(t, d >= p.After(n)/2 && d <= p.After(n) && d <= p.Max, "jittered %s within [d/2, d]", d)
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	assert.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled)
	assert.Less(t, time.Since(start), time.Second)
	assert.NoError(t, Sleep(context.Background(), time.Millisecond))
}
