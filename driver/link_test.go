package driver

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Discard drops what a gateway sent before the request (a late reply), and
// reports a gateway that closed the connection.
func TestTCPDiscard(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	l, err := dialTCP(ln.Addr().String(), time.Second)
	require.NoError(t, err)
	defer l.Close()
	peer := <-accepted

	dropped, err := l.Discard()
	require.NoError(t, err, "nothing buffered: returns at once")
	assert.Zero(t, dropped)
	_, err = peer.Write(make([]byte, 1300)) // more than one recv's worth
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // let loopback deliver it
	dropped, err = l.Discard()
	require.NoError(t, err)
	assert.Equal(t, 1300, dropped)
	n, err := l.ReadBefore(make([]byte, 16), time.Now().Add(20*time.Millisecond))
	assert.Zero(t, n, "the stale bytes are gone")
	assert.ErrorIs(t, err, ErrTimeout)

	_, err = peer.Write([]byte{1, 2, 3})
	require.NoError(t, err)
	buf := make([]byte, 16)
	n, err = l.ReadBefore(buf, time.Now().Add(time.Second))
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2, 3}, buf[:n], "bytes after the discard are read")

	require.NoError(t, peer.Close())
	time.Sleep(50 * time.Millisecond)
	_, err = l.Discard()
	assert.ErrorContains(t, err, "EOF")
}

// hungLink is a device whose write never returns, as a wedged USB driver.
type hungLink struct{ release chan struct{} }

func (l *hungLink) Write(p []byte) (int, error) { <-l.release; return 0, ErrLineDown }
func (l *hungLink) ReadBefore([]byte, time.Time) (int, error) {
	<-l.release
	return 0, ErrTimeout
}
func (l *hungLink) Discard() (int, error) { return 0, nil }
func (l *hungLink) Close() error          { return nil }

// A bus whose exchange outlives every timeout and retry says it is stuck;
// an idle bus, or one inside its timeouts, does not.
func TestBusStuck(t *testing.T) {
	t.Parallel()
	b, err := New(Config{Name: "hung", Device: "tcp://127.0.0.1:1", Default: SlavePolicy{Timeout: 50 * time.Millisecond},
		DeadAfter: 3, DeadBase: 2 * time.Second, DeadMax: time.Minute}, zerolog.Nop())
	require.NoError(t, err)
	assert.Equal(t, 11050*time.Millisecond, b.stuckAt, "one attempt: timeout + reconnect + slack")
	hung := &hungLink{release: make(chan struct{})}
	b.tr.open = func() (link, error) { return hung, nil }
	b.stuckAt = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { close(hung.release); cancel(); <-b.Done() }()
	go b.Run(ctx)
	_, stuck := b.Stuck()
	assert.False(t, stuck, "idle")
	go func() { _, _ = b.ReadRegisters(ctx, 1, 3, 0, 2) }()
	require.Eventually(t, func() bool { _, s := b.Stuck(); return s }, 2*time.Second, 10*time.Millisecond)
	d, _ := b.Stuck()
	assert.Greater(t, d, 100*time.Millisecond)
}
