package driver

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Discard drops what a gateway sent before the request (a late reply), and
// reports a gateway that closed the connection.
func TestTCPDiscard(t *testing.T) {
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

	require.NoError(t, l.Discard(), "nothing buffered: returns at once")
	_, err = peer.Write(make([]byte, 1300)) // more than one recv's worth
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // let loopback deliver it
	require.NoError(t, l.Discard())
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
	assert.ErrorContains(t, l.Discard(), "EOF")
}
