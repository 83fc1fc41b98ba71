package uploader

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// retry_max is a ceiling: no wait exceeds it, and each wait is at least
// half the exponential step.
func TestBackoffNeverExceedsRetryMax(t *testing.T) {
	s, err := NewSender(nil, nil, SenderConfig{Workers: 1, Batch: 1, BaseBackoff: 2 * time.Second, MaxBackoff: 3 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n < 40; n++ {
		step := min(2*time.Second<<min(n-1, 20), 3*time.Second)
		for i := 0; i < 200; i++ {
			d := s.backoff(n)
			require.LessOrEqual(t, d, 3*time.Second, "round %d", n)
			require.GreaterOrEqual(t, d, step/2, "round %d", n)
		}
	}
}

// The uploader's constructors take values, not defaults (the config owns
// those): a zero where one is needed is an error naming it.
func TestConstructorsRejectZeros(t *testing.T) {
	full := SenderConfig{Workers: 4, Batch: 64, BaseBackoff: time.Second, MaxBackoff: time.Minute}
	for want, c := range map[string]SenderConfig{
		"workers":    {Batch: 64, BaseBackoff: time.Second, MaxBackoff: time.Minute},
		"batch":      {Workers: 4, BaseBackoff: time.Second, MaxBackoff: time.Minute},
		"retry_base": {Workers: 4, Batch: 64, MaxBackoff: time.Minute},
		"retry_max":  {Workers: 4, Batch: 64, BaseBackoff: time.Second},
	} {
		_, err := NewSender(nil, nil, c, zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s zero: %v", want, err)
		}
	}
	if _, err := NewSender(nil, nil, full, zerolog.Nop()); err != nil {
		t.Error(err)
	}
	if _, err := NewClient(ClientConfig{BaseURL: "https://x"}); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("client without a timeout: %v", err)
	}
	if _, err := NewDeviceSync(nil, 0, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "device_sync_interval") {
		t.Errorf("device sync without an interval: %v", err)
	}
	if _, err := NewOutbox(nil, 0, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "outbox_max_records") {
		t.Errorf("outbox without a cap: %v", err)
	}
}
