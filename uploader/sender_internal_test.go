package uploader

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// retry_max is a ceiling: no wait exceeds it, and each wait is at least
// half the exponential step.
func TestBackoffNeverExceedsRetryMax(t *testing.T) {
	s := NewSender(nil, nil, SenderConfig{BaseBackoff: 2 * time.Second, MaxBackoff: 3 * time.Second}, zerolog.Nop())
	for n := 1; n < 40; n++ {
		step := min(2*time.Second<<min(n-1, 20), 3*time.Second)
		for i := 0; i < 200; i++ {
			d := s.backoff(n)
			require.LessOrEqual(t, d, 3*time.Second, "round %d", n)
			require.GreaterOrEqual(t, d, step/2, "round %d", n)
		}
	}
}
