package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"pilebridge/meter"
	"pilebridge/simulator"
)

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}

// `pilebridge read` reads every shipped profile end to end from the simulator.
func TestReadEveryProfileFromPilesim(t *testing.T) {
	t.Parallel()
	reg, err := meter.LoadRegistry("")
	require.NoError(t, err)
	for _, name := range reg.Names() {
		t.Run(name, func(t *testing.T) {
			p, _ := reg.Get(name)
			link := filepath.Join(t.TempDir(), "tty")
			rig, err := simulator.ServeOnPty(link, p, 7654320, 9)
			require.NoError(t, err)
			defer rig.Close()
			require.NoError(t, rig.Piles[9].Update(func(r *meter.Reading) { r.PowerW, r.Status = 11000, meter.StatusCharging }))

			out, errs, code := runCLI(t, "read", "--device", link, "--slave", "9", "--profile", name, "--baud", "9600", "--parity", "N", "--json")
			require.Equal(t, 0, code, errs)
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &m), out)
			assert.EqualValues(t, 7654320, m["energy_wh"])
			assert.EqualValues(t, 11000, m["power_w"])
			if p.HasStatus() {
				assert.Equal(t, "charging", m["status"])
			}

			out, _, code = runCLI(t, "read", "--device", link, "--slave", "9", "--profile", name, "--baud", "9600", "--parity", "N")
			require.Equal(t, 0, code)
			assert.Contains(t, out, "energy")
			assert.Contains(t, out, "Wh")
		})
	}
}

func TestReadErrorsAreClear(t *testing.T) {
	t.Parallel()
	_, errs, code := runCLI(t, "read", "--device", "/nonexistent/tty", "--profile", "ref-ac")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "/nonexistent/tty")
	_, errs, code = runCLI(t, "read", "--device", "/dev/null", "--profile", "nope")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `no profile named "nope"`)
}

func TestProfilesAndScan(t *testing.T) {
	t.Parallel()
	out, _, code := runCLI(t, "profiles")
	require.Equal(t, 0, code)
	for _, n := range []string{"ref-ac", "ref-dc", "dtsu666", "ddsu666", "djsf1352", "adl400", "sdm120", "sdm630", "abb-b23"} {
		assert.Contains(t, out, n)
	}
	assert.Contains(t, out, "embedded:profiles/ref-ac.yaml")
	out, errs, code := runCLI(t, "scan")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "USB VID:PID")
}

// Records queued while the platform is down survive kill -9 and are delivered
// after restart; `outbox list` shows them, offline and through the running daemon.
func TestOutboxAcrossKillAndCLI(t *testing.T) {
	t.Parallel()
	s := newStation(t, "listen: 127.0.0.1:0\n")

	s.plat.Inject(simulator.PlatformFault{Kind: "502", Count: 1_000_000}) // the platform is down
	b := s.startBridge()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.charging(ctx)
	start := s.meterWh()
	s.startSession(60000) // the session's first reading, before any energy flows
	s.waitFor("charging seen", 10*time.Second, func() bool { return strings.Contains(s.log(), `"to":"charging"`) })
	time.Sleep(time.Second) // energy flows
	s.set(meter.StatusFinished, 0, 3)
	delta := s.meterWh() - start

	// while it runs, the CLI goes through the daemon
	var out string
	s.waitFor("the bill queued and tried", 10*time.Second, func() bool {
		o, _, code := runCLI(t, "outbox", "list", "--config", s.config)
		out = o
		return code == 0 && strings.Contains(o, "final") && strings.Contains(o, "HTTP 502")
	})
	assert.Contains(t, out, "pending")

	_ = b.stop(syscall.SIGKILL)
	out, errs, code := runCLI(t, "outbox", "list", "--config", s.config)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "final", "still queued on disk after kill -9")

	s.plat.ClearFaults()
	b = s.startBridge()
	s.waitFor("delivery after restart", 10*time.Second, func() bool { return len(s.finals()) == 1 })
	require.NoError(t, b.stop(syscall.SIGTERM))
	f := s.finals()[0]
	assert.Equal(t, delta, f.Quantity)
	assert.Equal(t, "急停", f.StateDesc)
	out, _, code = runCLI(t, "outbox", "list", "--all", "--config", s.config)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "delivered")
	assert.NotContains(t, out, "pending ")

	logData, err := os.ReadFile(filepath.Join(s.dir, "bridge.log"))
	require.NoError(t, err)
	assert.NotContains(t, string(logData), "e2e-secret", "the app secret is never logged")
}

// freeAddr picks a port for the daemon below the kernel's ephemeral range, so
// no ":0" listener (the stand-in's, another test's) can be handed it meanwhile.
func freeAddr(t *testing.T) string {
	for i := 0; i < 100; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(10000))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port in 20000-29999")
	return ""
}

func getBody(t *testing.T, url string) string {
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}

// The operator's view while the platform rejects records (wrong secret, say):
// status, metrics and device/sync, then `outbox retry --parked` once fixed.
func TestStatusMetricsAndParkedRetry(t *testing.T) {
	t.Parallel()
	s := newStation(t, "listen: 127.0.0.1:0\n")
	s.plat.Inject(simulator.PlatformFault{Path: simulator.PathReplenish, Kind: "401", Count: 1_000_000})
	b := s.startBridge()
	listen := s.listenAddr()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.charging(ctx)
	s.set(meter.StatusCharging, 60000, 0)
	time.Sleep(1500 * time.Millisecond)
	s.set(meter.StatusFinished, 0, 1)
	s.waitFor("the bill parked", 10*time.Second, func() bool {
		o, _, _ := runCLI(t, "outbox", "list", "--config", s.config)
		return strings.Contains(o, "parked") && strings.Contains(o, "final")
	})
	// after a restart the parked bill is still in sight: /status, /metrics, the log
	require.NoError(t, b.stop(syscall.SIGTERM))
	b = s.startBridge()
	listen = s.listenAddr() // a port of its own again
	var counts struct {
		Outbox struct {
			Parked       int64   `json:"parked"`
			OldestParked *string `json:"oldest_parked_at"`
			Records      []struct {
				Reason string `json:"reason"`
			} `json:"parked_records"`
		} `json:"outbox"`
		Unhealthy []string `json:"unhealthy"`
	}
	s.waitFor("the restarted daemon's status", 10*time.Second, func() bool {
		return getJSON("http://"+listen+"/status", &counts) == nil
	})
	assert.Positive(t, counts.Outbox.Parked, "parked counted from the store after a restart")
	assert.NotNil(t, counts.Outbox.OldestParked)
	require.NotEmpty(t, counts.Outbox.Records)
	assert.Contains(t, counts.Outbox.Records[0].Reason, "401", "the platform's reason")
	assert.Contains(t, strings.Join(counts.Unhealthy, "\n"), "parked by the platform")
	log, _ := os.ReadFile(filepath.Join(s.dir, "bridge.log"))
	assert.Contains(t, string(log), `"parked":`, "the startup log warns of parked records")
	_, errs, code := runCLI(t, "outbox", "retry", "NO-SUCH-ORDER", "--config", s.config)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `no parked record of order "NO-SUCH-ORDER"`)

	var st struct {
		Ports []struct {
			State string `json:"state"`
		} `json:"ports"`
		Buses []struct {
			Name   string `json:"name"`
			Slaves []struct {
				Slave int    `json:"slave"`
				OK    uint64 `json:"ok"`
			} `json:"slaves"`
		} `json:"buses"`
	}
	body := getBody(t, "http://"+listen+"/status")
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	require.Len(t, st.Ports, 1)
	assert.Equal(t, "finished", st.Ports[0].State)
	require.Len(t, st.Buses, 1)
	assert.Equal(t, "l1", st.Buses[0].Name)
	assert.Equal(t, 3, st.Buses[0].Slaves[0].Slave)
	assert.Positive(t, st.Buses[0].Slaves[0].OK)
	assert.NotContains(t, body, "0001-01-01", "unset times are null")
	assert.NotRegexp(t, `"[A-Z][A-Za-z]*":`, body, "snake_case keys")
	assert.NotContains(t, body, "_ns\"", "durations in ms")
	metrics := getBody(t, "http://"+listen+"/metrics")
	assert.Contains(t, metrics, `pilebridge_modbus_exchanges_total{bus="l1",outcome="ok",slave="3"}`)
	assert.Contains(t, metrics, `pilebridge_uploads_total{outcome="parked"}`)
	assert.Contains(t, metrics, `pilebridge_port_state{port="E2E01/1",state="finished"} 1`)
	assert.Contains(t, metrics, `pilebridge_port_state{port="E2E01/1",state="charging"} 0`, "every state a series")
	assert.Contains(t, metrics, `pilebridge_build_info{version=`)
	assert.Contains(t, metrics, `pilebridge_port_soc_percent{port="E2E01/1"} 40`)
	assert.Contains(t, metrics, "process_resident_memory_bytes")
	assert.Contains(t, metrics, "go_goroutines")
	assert.NotContains(t, metrics, `outcome="skipped"`, "a read failed fast is not an exchange")
	assert.Contains(t, metrics, `pilebridge_meter_resets_total{port="E2E01/1"} 0`)
	assert.Contains(t, metrics, `pilebridge_modbus_stray_frames_total{bus="l1"} 0`)
	assert.Regexp(t, `pilebridge_outbox_records\{state="parked"\} [1-9]`, metrics)
	assert.Contains(t, metrics, `pilebridge_outbox_oldest_age_seconds{state="parked"}`)

	// device/sync saw the port charging, then occupied (finished, still plugged)
	var states []int
	for _, r := range s.plat.Received(simulator.PathDevice) {
		var d struct {
			State int `json:"state"`
			Port  []struct {
				State int `json:"state"`
			} `json:"port"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &d))
		assert.Equal(t, 1, d.State)
		states = append(states, d.Port[0].State)
	}
	assert.Contains(t, states, 2)
	assert.Equal(t, 3, states[len(states)-1])

	s.plat.ClearFaults() // the secret was fixed on the platform side
	out, errs, code := runCLI(t, "outbox", "retry", "--parked", "--config", s.config)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "requeued 1 record(s)")
	assert.Contains(t, out, "dropped", "its progress records are obsolete")
	s.waitFor("the bill delivered", 10*time.Second, func() bool { return len(s.finals()) == 1 })
	s.waitFor("the answer counted by its code", 5*time.Second, func() bool {
		return strings.Contains(getBody(t, "http://"+listen+"/metrics"), `pilebridge_upload_answers_total{code="1001"} 1`)
	})
	require.NoError(t, b.stop(syscall.SIGTERM))
	assert.Len(t, s.bills(), 1, "only the bill: no stale progress after it")
}

// The local API refuses what a web page in the operator's browser could
// send: another Host (DNS rebinding), another Origin, a POST without the
// token.
func TestLocalAPIRefusals(t *testing.T) {
	t.Parallel()
	s := newStation(t, "listen: 127.0.0.1:0\nlisten_hosts: [pilebridge.local]\n")
	b := s.startBridge()
	listen := s.listenAddr()
	defer b.stop(syscall.SIGTERM)
	tokenFile := filepath.Join(s.dir, "data", "listen_token")
	s.waitFor("the API token", 10*time.Second, func() bool { _, err := os.Stat(tokenFile); return err == nil })
	st, err := os.Stat(tokenFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	tok, err := os.ReadFile(tokenFile)
	require.NoError(t, err)
	do := func(method, path, host, origin, token string) int {
		req, err := http.NewRequest(method, "http://"+listen+path, nil)
		require.NoError(t, err)
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		var code int
		s.waitFor("an answer", 5*time.Second, func() bool {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			code = resp.StatusCode
			return true
		})
		return code
	}
	good := strings.TrimSpace(string(tok))
	_, port, _ := net.SplitHostPort(listen)
	assert.Equal(t, 200, do("GET", "/status", "", "", ""), "the board's own address")
	assert.Equal(t, 200, do("GET", "/outbox", "localhost:"+port, "", ""))
	assert.Equal(t, 200, do("GET", "/outbox", "pilebridge.local:"+port, "", ""), "a configured name")
	assert.Equal(t, 421, do("GET", "/outbox", "evil.example:"+port, "", ""), "DNS rebinding: VIN and plates stay home")
	assert.Equal(t, 421, do("POST", "/outbox/retry?parked=1", "evil.example", "", good))
	assert.Equal(t, 401, do("POST", "/outbox/retry?parked=1", "", "", ""), "no token")
	assert.Equal(t, 401, do("POST", "/outbox/retry?parked=1", "", "", "wrong-token-wrong-token"))
	assert.Equal(t, 403, do("POST", "/outbox/retry?parked=1", "", "http://evil.example", good), "cross-site POST")
	assert.Equal(t, 200, do("POST", "/outbox/retry?parked=1", "", "http://"+listen, good), "same origin with the token")
	assert.Equal(t, 200, do("POST", "/outbox/retry?parked=1", "", "", good), "the CLI: no Origin, the token")
	out, errs, code := runCLI(t, "outbox", "retry", "--parked", "--config", s.config)
	assert.Equal(t, 0, code, errs)
	assert.Contains(t, out, "requeued 0 record(s)", "the CLI reads the token through the daemon")
}

// Every command's --help describes its flags on stdout and exits 0; no
// config is needed for it.
func TestEveryCommandHasHelp(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string // part of a flag's or the command's description
	}{
		{[]string{"--help"}, "Each command's --help describes its flags"}, {[]string{"-h"}, "pilebridge check"}, {[]string{"help"}, "pilebridge sessions"},
		{[]string{"run", "--help"}, "-config"}, {[]string{"check", "-h"}, "78 naming every mistake"}, {[]string{"scan", "--help"}, "opens none"},
		{[]string{"read", "--help"}, "serial path, tcp://host:port"}, {[]string{"profiles", "--help"}, "user profiles directory"},
		{[]string{"outbox", "--help"}, "requeue every parked record"}, {[]string{"outbox", "list", "--help"}, "include recently delivered"},
		{[]string{"outbox", "retry", "-h"}, "-parked"}, {[]string{"sessions", "--help"}, "in tariff.time_zone"},
		{[]string{"db", "--help"}, "fill in from data_dir/backup"}, {[]string{"db", "salvage", "--help"}, "-config"},
	} {
		out, errs, code := runCLI(t, c.args...)
		assert.Equal(t, 0, code, "%v: %s", c.args, errs)
		assert.Contains(t, out, "usage", "%v", c.args)
		assert.Contains(t, out, c.want, "%v", c.args)
	}
	out, _, code := runCLI(t, "read", "--help")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "serial path, tcp://host:port or rtuovertcp://host:port")
	for _, v := range []string{"--version", "-version", "version"} {
		out, _, code := runCLI(t, v)
		assert.Equal(t, 0, code)
		assert.True(t, strings.HasPrefix(out, "pilebridge "), "%s: %q", v, out)
	}
	_, errs, code := runCLI(t, "frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, `unknown command "frobnicate"`)
}

// read for commissioning: engineering units, a continuous watch, and a raw
// register dump that shows the energy register as the meter holds it.
func TestReadUnitsWatchAndRaw(t *testing.T) {
	t.Parallel()
	reg, err := meter.LoadRegistry("")
	require.NoError(t, err)
	p, _ := reg.Get("ref-ac")
	link := filepath.Join(t.TempDir(), "tty")
	rig, err := simulator.ServeOnPty(link, p, 7654321, 1)
	require.NoError(t, err)
	defer rig.Close()
	require.NoError(t, rig.Piles[1].Update(func(r *meter.Reading) {
		r.PowerW, r.Status, r.VoltageDV, r.CurrentCA = 11000, meter.StatusCharging, 2305, 4783
		r.SessionCount, r.HasSessionCount = 5, true
	}))

	// every field the profile has, as its register holds it
	out, errs, code := runCLI(t, "read", "--device", link, "--profile", "ref-ac", "--json")
	require.Equal(t, 0, code, errs)
	var asJSON map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &asJSON), out)
	raw, _, code := runCLI(t, "read", "--device", link, "--raw", "--addr", "19", "--count", "2", "--json")
	require.Equal(t, 0, code)
	var counter []struct {
		U32 *uint32 `json:"u32_abcd"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &counter), raw)
	assert.EqualValues(t, *counter[0].U32, asJSON["session_count"], "session_count as its register shows it")
	assert.EqualValues(t, 5, asJSON["session_count"])
	assert.Equal(t, "charging", asJSON["status"])
	out, _, _ = runCLI(t, "read", "--device", link, "--raw", "--addr", "0x13", "--count", "1")
	assert.Regexp(t, `\b19\s+0x0013\b`, out, "an address shown in decimal and hex, as manuals give either")

	out, errs, code = runCLI(t, "read", "--device", link, "--profile", "ref-ac")
	require.Equal(t, 0, code, errs)
	assert.Regexp(t, `energy\s+7654\.32\d\s+kWh`, out, "kWh with 3 decimals")
	assert.Regexp(t, `power\s+11\.000\s+kW`, out)
	assert.Regexp(t, `voltage\s+230\.5\s+V`, out)
	assert.Regexp(t, `current\s+47\.83\s+A`, out)

	// the energy register is u32 at 4, high word first, in Wh; the pile
	// charges at 11 kW (3 Wh a second) meanwhile, so the register read lies
	// between the meter before the read and after it
	before, err := rig.Piles[1].MeterWh()
	require.NoError(t, err)
	out, errs, code = runCLI(t, "read", "--device", link, "--raw", "--fc", "3", "--addr", "4", "--count", "3", "--json")
	after, err := rig.Piles[1].MeterWh()
	require.NoError(t, err)
	require.Equal(t, 0, code, errs)
	var rows []struct {
		Addr uint16  `json:"addr"`
		U16  uint16  `json:"u16"`
		U32  *uint32 `json:"u32_abcd"`
		I32  *int32  `json:"i32_abcd"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
	require.Len(t, rows, 3)
	wh := int64(*rows[0].U32)
	assert.True(t, before <= wh && wh <= after, "the register as the meter holds it: %d Wh, the meter %d Wh before the read and %d after", wh, before, after)
	assert.EqualValues(t, wh>>16, rows[0].U16, "the high word first")
	assert.EqualValues(t, 11000>>16, rows[2].U16, "power's high word")
	assert.Nil(t, rows[2].U32, "no pair past the last register")
	before, err = rig.Piles[1].MeterWh()
	require.NoError(t, err)
	out, _, code = runCLI(t, "read", "--device", link, "--raw", "--addr", "4", "--count", "2")
	require.Equal(t, 0, code)
	after, err = rig.Piles[1].MeterWh()
	require.NoError(t, err)
	assert.Contains(t, out, "F32 (CDAB)")
	shown := false
	for _, n := range regexp.MustCompile(`\b\d+\b`).FindAllString(out, -1) {
		v, _ := strconv.ParseInt(n, 10, 64)
		shown = shown || (before <= v && v <= after)
	}
	assert.True(t, shown, "the energy counter as u32 (between %d and %d Wh):\n%s", before, after, out)

	_, errs, code = runCLI(t, "read", "--device", link, "--raw", "--fc", "5")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "--fc 5: want 3 or 4")

	// --watch: a line per reading until interrupted
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	var buf bytes.Buffer
	require.NoError(t, cmdRead(ctx, []string{"--device", link, "--profile", "ref-ac", "--watch", "--interval", "200ms"}, &buf, io.Discard))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	assert.Contains(t, lines[0], "ENERGY_kWh")
	assert.GreaterOrEqual(t, len(lines)-1, 4, "about one reading every 200 ms:\n%s", buf.String())
	assert.Contains(t, lines[1], "charging")
	assert.Contains(t, lines[1], "11.000")
}

// Issue 26, item 5: `pilebridge db backup` while the daemon runs asks the
// daemon for the hot copy (before: refused, "in use"); the copy is whole.
func TestDBBackupThroughTheRunningDaemon(t *testing.T) {
	t.Parallel()
	s := newStation(t, "listen: 127.0.0.1:0\n")
	b := s.startBridge()
	s.listenAddr()
	out, errs, code := runCLI(t, "db", "backup", "--config", s.config)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "backup written by the running daemon:")
	file := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "backup written by the running daemon:"))
	require.NoError(t, b.stop(syscall.SIGTERM))
	db, err := bbolt.Open(file, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte("outbox")) == nil {
			return fmt.Errorf("the copy has no outbox")
		}
		return nil
	}))
}
