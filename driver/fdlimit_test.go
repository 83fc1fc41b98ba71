package driver_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"pilebridge/driver"
)

// A serial port whose descriptor is above 1023 (a daemon with many
// connections open) reads like any other. go.bug.st/serial's own Read
// waits with select(2) and panics there (index out of range in
// unix.FdSet); the driver polls the descriptor itself. Found when the
// end-to-end tests first ran side by side in one process.
func TestSerialPortAboveDescriptor1023(t *testing.T) {
	var held []*os.File
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	for {
		f, err := os.Open(os.DevNull)
		require.NoError(t, err, "the soft descriptor limit (Go raises it to the hard one)")
		held = append(held, f)
		if f.Fd() > 1100 {
			break
		}
	}
	l := ptyLine(t, 0, driver.SlavePolicy{Timeout: 300 * time.Millisecond}, 7)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := l.bus.ReadRegisters(ctx, 7, 3, 0, 2)
	require.NoError(t, err)
	require.Equal(t, words(7, 70), got)
	// and a read that times out (nobody at slave 9) is a timeout, not a panic
	_, err = l.bus.ReadRegisters(ctx, 9, 3, 0, 1)
	require.Error(t, err)
}
