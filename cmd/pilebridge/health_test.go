package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/simulator"
)

// fakeSystemd is a NOTIFY_SOCKET: it keeps every datagram the daemon sends.
type fakeSystemd struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func newFakeSystemd(t *testing.T) *fakeSystemd {
	f := &fakeSystemd{path: filepath.Join(t.TempDir(), "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: f.path, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			f.mu.Lock()
			f.msgs = append(f.msgs, string(buf[:n]))
			f.mu.Unlock()
		}
	}()
	return f
}

func (f *fakeSystemd) count(msg string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// The real daemon under a fake systemd: READY=1 once running, WATCHDOG=1
// at a third of WATCHDOG_USEC, STOPPING=1 on SIGTERM.
func TestSystemdNotifyAndWatchdog(t *testing.T) {
	t.Parallel()
	sd := newFakeSystemd(t)
	s := newStation(t, "")
	logf, err := os.Create(filepath.Join(s.dir, "bridge.log"))
	require.NoError(t, err)
	defer logf.Close()
	cmd := exec.Command(bridgeBin, "run", "--config", s.config)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sd.path, "WATCHDOG_USEC=600000")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = dieWithTheTest()
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	s.waitFor("READY=1", 10*time.Second, func() bool { return sd.count("READY=1") == 1 })
	s.waitFor("watchdog pings", 5*time.Second, func() bool { return sd.count("WATCHDOG=1") >= 5 })
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())
	assert.Equal(t, 1, sd.count("STOPPING=1"))
}

// /healthz: ok while polling; 503 naming the bus when the pile goes silent,
// and naming the parked bill when the platform rejects one.
func TestHealthz(t *testing.T) {
	t.Parallel()
	s := newStation(t, "listen: 127.0.0.1:0\n")
	s.startBridge()
	listen := s.listenAddr()
	url := "http://" + listen + "/healthz"
	get := func() (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	s.waitFor("healthy", 10*time.Second, func() bool { c, _ := get(); return c == 200 })
	_, body := get()
	assert.Equal(t, "ok\n", body)

	s.rig.Server.Slave(3).Inject(simulator.Fault{Kind: simulator.FaultNoAnswer, Count: 1 << 30})
	s.waitFor("503 for the silent bus", 15*time.Second, func() bool {
		c, b := get()
		return c == 503 && strings.Contains(b, "bus l1: no good exchange for")
	})
	s.rig.Server.Slave(3).Clear()
	s.waitFor("healthy again", 15*time.Second, func() bool { c, _ := get(); return c == 200 })

	s.plat.Inject(simulator.PlatformFault{Path: simulator.PathReplenish, Kind: "401", Count: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.charging(ctx)
	s.startSession(60000)
	s.waitFor("503 for the parked record", 15*time.Second, func() bool {
		c, b := get()
		return c == 503 && strings.Contains(b, "1 record(s) parked by the platform")
	})
}

// A bus configured for the kernel's RS-485 mode on a tty without one (a
// pty) does not open, and the log names why.
func TestRS485RefusedIsNamed(t *testing.T) {
	t.Parallel()
	s := newStation(t, "")
	cfg, err := os.ReadFile(s.config)
	require.NoError(t, err)
	cfg = []byte(strings.Replace(string(cfg), "retries: 1}", "retries: 1, rs485: {enabled: true}}", 1))
	require.NoError(t, os.WriteFile(s.config, cfg, 0o600))
	_, errs, code := runCLI(t, "check", "--config", s.config)
	require.Equal(t, 0, code, "check accepts the mode: only the tty can refuse it: %s", errs)
	s.startBridge()
	s.waitFor("the refusal in the log", 10*time.Second, func() bool {
		log, _ := os.ReadFile(filepath.Join(s.dir, "bridge.log"))
		return strings.Contains(string(log), "the tty driver has no RS-485 mode (TIOCSRS485 refused)")
	})
	assert.Empty(t, s.bills())
}
