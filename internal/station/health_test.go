package station

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The pings stop while a loop is stuck and resume when it is not.
func TestWatchdogStopsWhileStuck(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "30000")
	t.Setenv("WATCHDOG_PID", "")
	a := &Station{log: zerolog.Nop()}
	var mu sync.Mutex
	var stuck bool
	var pings []bool // whether the daemon was stuck at each ping
	notify := func(string) error {
		mu.Lock()
		defer mu.Unlock()
		pings = append(pings, stuck)
		return nil
	}
	alive := func(time.Time) error {
		mu.Lock()
		defer mu.Unlock()
		if stuck {
			return errors.New("bus l1: one exchange running for 1m")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.watchdog(ctx, notify, alive); close(done) }()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(pings) }
	require.Eventually(t, func() bool { return count() >= 3 }, 2*time.Second, 5*time.Millisecond)
	mu.Lock()
	stuck = true
	mu.Unlock()
	n := count()
	time.Sleep(100 * time.Millisecond) // ten watchdog periods
	assert.LessOrEqual(t, count(), n+1, "at most a ping already under way")
	mu.Lock()
	stuck = false
	mu.Unlock()
	require.Eventually(t, func() bool { return count() >= n+3 }, 2*time.Second, 5*time.Millisecond)
	cancel()
	<-done
	for i, p := range pings {
		assert.False(t, p, "ping %d sent while stuck", i)
	}
}

// Every reason has its words in both languages, and every figure it
// carries appears in both: the page shows the Chinese, /healthz the English.
func TestReasonsSpeakBothLanguages(t *testing.T) {
	for kind, texts := range reasonTexts {
		assert.NotEmpty(t, texts[0], kind)
		assert.NotEmpty(t, texts[1], kind)
		for _, m := range regexp.MustCompile(`\{\w+\}`).FindAllString(texts[0], -1) {
			assert.Contains(t, texts[1], m, "%s: the Chinese says %s too", kind, m)
		}
	}
	r := newReason("parked", "", "records", "2")
	assert.Equal(t, "outbox: 2 record(s) parked by the platform; see `pilebridge outbox list`", r.Text)
	assert.Equal(t, "发件箱: 2 条记录被平台拒收,见 pilebridge outbox list", r.say(true))
}
