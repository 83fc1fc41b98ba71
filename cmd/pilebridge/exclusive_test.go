package main

import (
	"fmt"
	"os"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 25, item 3: one master per serial line. With the daemon polling a
// pty, `pilebridge read` and `scan --probe` on the same line refuse, name
// the daemon, and put nothing on the line: the daemon's exchanges stay
// clean. Once the daemon is gone, read works.
func TestReadRefusesALineTheDaemonHolds(t *testing.T) {
	// not parallel: it reads the line's error counters, which a loaded
	// machine moves (a timeout) without any second master
	s := newStation(t, "listen: 127.0.0.1:0\n")
	b := s.startBridge()
	cfg, err := os.ReadFile(s.config)
	require.NoError(t, err)
	link := regexp.MustCompile(`device: (\S+), baud`).FindStringSubmatch(string(cfg))[1]
	lineErrors := func() (good, bad int64) {
		var st struct {
			Buses []struct {
				Slaves []struct {
					OK          int64 `json:"ok"`
					Timeouts    int64 `json:"timeouts"`
					CRCErrors   int64 `json:"crc_errors"`
					FrameErrors int64 `json:"frame_errors"`
				} `json:"slaves"`
			} `json:"buses"`
		}
		require.NoError(t, getJSON("http://"+s.listenAddr()+"/status", &st))
		for _, sl := range st.Buses[0].Slaves {
			good, bad = good+sl.OK, bad+sl.Timeouts+sl.CRCErrors+sl.FrameErrors
		}
		return good, bad
	}
	s.waitFor("the daemon polls the pile", 10*time.Second, func() bool { good, _ := lineErrors(); return good > 0 })
	_, before := lineErrors()

	daemon := fmt.Sprintf("in use by pid %d", b.cmd.Process.Pid)
	for _, args := range [][]string{
		{"read", "--device", link, "--slave", "3", "--baud", "115200", "--profile", "ref-dc"},
		{"read", "--device", link, "--slave", "3", "--baud", "115200", "--raw", "--addr", "0", "--count", "4"},
		{"read", "--device", link, "--slave", "3", "--baud", "115200", "--profile", "ref-dc", "--watch"},
		{"scan", "--probe", "--device", link, "--bauds", "115200", "--parity", "N", "--slaves", "1-4"},
	} {
		type result struct {
			out, errs string
			code      int
		}
		done := make(chan result, 1)
		go func() { // --watch would run for ever if it were let onto the line
			out, errs, code := runCLI(t, args...)
			done <- result{out, errs, code}
		}()
		var out, errs string
		var code int
		select {
		case r := <-done:
			out, errs, code = r.out, r.errs, r.code
		case <-time.After(10 * time.Second):
			t.Fatalf("%v did not refuse: it is talking on the daemon's line", args)
		}
		assert.NotEqual(t, 0, code, "%v: %s", args, out)
		assert.Contains(t, errs, daemon, "%v names the daemon", args)
		assert.Contains(t, errs, "pilebridge run", "%v names what it is", args)
		assert.Contains(t, errs, "one master per RS-485 line", args)
	}
	time.Sleep(time.Second) // the daemon's exchanges after the attempts
	good, after := lineErrors()
	assert.Equal(t, before, after, "the daemon saw no collision on its line")
	assert.Positive(t, good)

	require.NoError(t, b.stop(syscall.SIGTERM))
	out, errs, code := runCLI(t, "read", "--device", link, "--slave", "3", "--baud", "115200", "--profile", "ref-dc")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "energy")
}
