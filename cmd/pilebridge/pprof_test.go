package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Profiles show the daemon's memory (the app secret among it): --pprof
// takes a loopback address only, says why otherwise, and serves nothing.
func TestPprofOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:6060", "example.com:6060", "nonsense"} {
		err := servePprof(ctx, addr, zerolog.Nop())
		require.Error(t, err, addr)
		assert.Contains(t, err.Error(), "--pprof", addr)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	require.NoError(t, servePprof(ctx, addr, zerolog.Nop()))
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/debug/pprof/cmdline")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotEmpty(t, body)

	cancel() // the daemon stops: so do its profiles
	require.Eventually(t, func() bool {
		_, err := c.Get("http://" + addr + "/debug/pprof/cmdline")
		return err != nil
	}, 5*time.Second, 50*time.Millisecond)
}
