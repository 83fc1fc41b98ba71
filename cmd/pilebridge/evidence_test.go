package main

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
)

// mwhOf reads a printed kWh figure back into mWh, exactly.
func mwhOf(t *testing.T, kwh string) int64 {
	whole, frac, _ := strings.Cut(kwh, ".")
	frac = (frac + "000000")[:6]
	w, err := strconv.ParseInt(whole, 10, 64)
	require.NoError(t, err, kwh)
	f, err := strconv.ParseInt(frac, 10, 64)
	require.NoError(t, err, kwh)
	if strings.HasPrefix(whole, "-") {
		return w*1_000_000 - f
	}
	return w*1_000_000 + f
}

// The evidence behind a bill with a meter swapped mid-session: `sessions
// --order` prints the start and end readings (the simulated meters' own
// registers), the gap across the swap, and the figures add up to the
// quantity; the CSV has start_reading and end_reading.
func TestSessionsOrderPrintsTheEvidence(t *testing.T) {
	t.Parallel()
	s := newStation(t, "")
	b := s.startBridge()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.charging(ctx)
	start := s.meterWh()
	s.startSession(60000)
	time.Sleep(1500 * time.Millisecond)
	oldLast := s.meterWh()
	require.NoError(t, s.pile.Update(func(r *meter.Reading) { r.EnergyMWh = 500_000 })) // a new meter, reading 500 Wh
	s.waitFor("the bridge to take the new meter", 15*time.Second, func() bool { return strings.Contains(s.log(), "meter reset") })
	time.Sleep(1500 * time.Millisecond)
	s.set(meter.StatusFinished, 0, 1)
	end := s.meterWh()
	s.waitFor("the final bill", 10*time.Second, func() bool { return len(s.finals()) == 1 })
	f := s.finals()[0]
	require.NoError(t, b.stop(15)) // SIGTERM: the CLI reads the database itself

	out, err := exec.Command(bridgeBin, "sessions", "--order", f.Order, "--config", s.config).CombinedOutput()
	require.NoError(t, err, "%s", out)
	text := string(out)
	t.Logf("pilebridge sessions --order %s:\n%s", f.Order, text)
	field := func(re string) []string {
		m := regexp.MustCompile(re).FindStringSubmatch(text)
		require.NotNil(t, m, "%s in:\n%s", re, text)
		return m[1:]
	}
	startMWh := mwhOf(t, field(`start reading +(\S+) kWh`)[0])
	endMWh := mwhOf(t, field(`end reading +(\S+) kWh`)[0])
	gap := field(`old register last (\S+) kWh .*new register first (\S+) kWh`)
	oldMWh, newMWh := mwhOf(t, gap[0]), mwhOf(t, gap[1])
	quantity, err := strconv.ParseInt(field(`quantity +(\d+) Wh`)[0], 10, 64)
	require.NoError(t, err)

	// the readings are the simulated meters' registers (whole Wh)
	assert.Equal(t, start*1000, startMWh, "the old meter at the start")
	assert.Equal(t, end*1000, endMWh, "the new meter at the end")
	assert.True(t, oldMWh <= oldLast*1000 && oldMWh >= startMWh, "the old meter's last reading, before the swap: %d", oldMWh)
	assert.GreaterOrEqual(t, newMWh, int64(500_000), "the new meter's first")
	// and they add up to the bill
	counted := endMWh - startMWh - (newMWh - oldMWh)
	assert.Equal(t, (counted+500)/1000, quantity)
	assert.Equal(t, f.Quantity, quantity, "the bill at the platform")

	csvOut, err := exec.Command(bridgeBin, "sessions", "--csv", "--config", s.config).CombinedOutput()
	require.NoError(t, err, "%s", csvOut)
	lines := strings.Split(strings.TrimSpace(string(csvOut)), "\n")
	require.Len(t, lines, 2)
	assert.True(t, strings.HasSuffix(lines[0], ",start_reading,end_reading"), lines[0])
	assert.True(t, strings.HasSuffix(lines[1], ","+field(`start reading +(\S+) kWh`)[0]+","+field(`end reading +(\S+) kWh`)[0]), lines[1])
}
