package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
	"pilebridge/simulator"
	"pilebridge/uploader"
)

// A closed session is in the ledger with its bill and the platform's seqno,
// through the running daemon and on the stopped database alike; a rejected
// bill is there as parked with the platform's reason.
func TestSessionsLedger(t *testing.T) {
	t.Parallel()
	s := newStation(t, "listen: 127.0.0.1:0\n")
	b := s.startBridge()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.charging(ctx)

	session := func(stop int64) bill {
		n := len(s.finals())
		start := s.meterWh()
		s.startSession(60000)
		time.Sleep(1500 * time.Millisecond)
		s.set(meter.StatusFinished, 0, stop)
		delta := s.meterWh() - start
		s.waitFor("the final bill", 10*time.Second, func() bool { return len(s.finals()) == n+1 })
		f := s.finals()[n]
		require.Equal(t, delta, f.Quantity)
		s.set(meter.StatusIdle, 0, 0)
		time.Sleep(600 * time.Millisecond)
		return f
	}
	first := session(1)
	// the next bill is rejected once: parked, with the platform's reason
	s.plat.Inject(simulator.PlatformFault{Path: simulator.PathReplenish, Match: `"state":3`, Kind: "401", Count: 1})
	s.startSession(60000)
	time.Sleep(1500 * time.Millisecond)
	s.set(meter.StatusFinished, 0, 2)

	var through []uploader.LedgerEntry
	s.waitFor("two bills in the ledger, one parked", 10*time.Second, func() bool {
		out, _, code := runCLI(t, "sessions", "--json", "--config", s.config)
		through = nil
		if code != 0 || json.Unmarshal([]byte(out), &through) != nil || len(through) != 2 {
			return false
		}
		return through[1].Status == uploader.LedgerParked
	})
	assert.Equal(t, first.Order, through[0].Record.Order)
	assert.Equal(t, uploader.LedgerDelivered, through[0].Status)
	assert.Regexp(t, `^\d{32}$`, through[0].Seqno)
	assert.Equal(t, first.Quantity, through[0].Record.QuantityWh)
	assert.Equal(t, first.EnergyValue, through[0].Record.EnergyFen)
	assert.Contains(t, through[1].Reason, "401")
	require.NoError(t, b.stop(syscall.SIGTERM))

	// the stopped database answers the same, as CSV, filtered by day
	today := time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)
	out, errs, code := runCLI(t, "sessions", "--csv", "--since", today, "--until", today, "--config", s.config)
	require.Equal(t, 0, code, errs)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 3, out)
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	assert.Equal(t, "order", rows[0][0])
	assert.Equal(t, first.Order, rows[1][col["order"]])
	assert.Equal(t, "delivered", rows[1][col["status"]])
	assert.Equal(t, through[0].Seqno, rows[1][col["seqno"]])
	assert.Equal(t, "parked", rows[2][col["status"]])

	out, _, code = runCLI(t, "sessions", "--since", "2001-01-01", "--until", "2001-01-02", "--config", s.config)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "0 sessions")
	out, _, code = runCLI(t, "sessions", "--config", s.config)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "2 sessions")
	assert.Regexp(t, `START \(\S+ [+-]\d\d:\d\d\)`, out, "times say their zone")
	assert.Regexp(t, `times in \S+ \(`, out)
	_, errs, code = runCLI(t, "sessions", "--since", "yesterday", "--config", s.config)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `--since: "yesterday": want YYYY-MM-DD or an RFC 3339 time`)
}
