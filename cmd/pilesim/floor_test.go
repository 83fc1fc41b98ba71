package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/simulator"
)

// The bare client over a real serial line (a pseudo-terminal) makes the
// same read of every slave every interval, until its context ends.
func TestFloorOverSerial(t *testing.T) {
	t.Parallel()
	link := filepath.Join(t.TempDir(), "ttyV0")
	pty, err := simulator.OpenPty(link)
	require.NoError(t, err)
	t.Cleanup(func() { pty.Close() })
	srv := simulator.NewServer(zerolog.Nop())
	srv.Baud = 115200
	for _, id := range []uint8{1, 2} {
		srv.AddSlave(id).Bank.Set(3, 0, make([]uint16, 21))
	}
	go srv.AttachPty(pty)

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	require.NoError(t, cmdFloor(ctx, []string{"--serial", link, "--baud", "115200", "--slaves", "2",
		"--qty", "21", "--interval", "100ms"}))
	for _, id := range []uint8{1, 2} {
		// 15 intervals in the window; the first read is at once
		n := srv.Slave(id).ReadCount()
		assert.True(t, n >= 10 && n <= 16, "slave %d read %d times in 1.5 s at a 100 ms interval", id, n)
	}
}

// A line where nobody answers ends the floor with an error saying so,
// rather than measuring a client that waits.
func TestFloorSerialSilence(t *testing.T) {
	t.Parallel()
	link := filepath.Join(t.TempDir(), "ttyV0")
	pty, err := simulator.OpenPty(link)
	require.NoError(t, err)
	t.Cleanup(func() { pty.Close() })
	srv := simulator.NewServer(zerolog.Nop()) // no slaves: silence
	go srv.AttachPty(pty)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = cmdFloor(ctx, []string{"--serial", link, "--baud", "115200", "--slaves", "1", "--interval", "100ms"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "before the deadline")
	assert.NoError(t, ctx.Err(), "the floor ended by itself")
}

func TestFloorWantsOneKindOfLine(t *testing.T) {
	t.Parallel()
	err := cmdFloor(context.Background(), []string{"--serial", "/dev/null", "127.0.0.1:1"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "either line addresses or --serial")
}
