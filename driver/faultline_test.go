package driver_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/driver"
	"pilebridge/simulator"
)

// syncBuffer is a log sink the bus goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// faultLine is two slaves on a simulated RS-485-to-Ethernet converter, with
// a failing line in front of it, and a bus polling through that line.
func faultLine(t *testing.T, logTo *syncBuffer) (*simulator.FaultLine, *driver.Bus) {
	t.Helper()
	srv := simulator.NewServer(zerolog.Nop())
	for _, id := range []uint8{1, 2} {
		srv.AddSlave(id).Bank.Set(3, 0, []uint16{uint16(id), 7})
	}
	up, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { up.Close() })
	go srv.ServeTCP(up, true)
	fl := simulator.NewFaultLine(up.Addr().String(), false, 1, zerolog.Nop())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go fl.Serve(ln)
	log := zerolog.Nop()
	if logTo != nil {
		log = zerolog.New(logTo)
	}
	bus, err := driver.New(filled(driver.Config{Name: "conv", Device: "rtuovertcp://" + ln.Addr().String(),
		Default: driver.SlavePolicy{Timeout: 200 * time.Millisecond, Retries: 1}, DeadAfter: 3}), log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go bus.Run(ctx)
	t.Cleanup(func() { cancel(); <-bus.Done() })
	return fl, bus
}

// pollBoth reads both slaves in turn, the way two ports' pollers share a
// line, for d, and counts each one's good reads.
func pollBoth(t *testing.T, bus *driver.Bus, d time.Duration) (good [3]int, failed int) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		for _, id := range []uint8{1, 2} {
			got, err := bus.ReadRegisters(context.Background(), id, 3, 0, 2)
			if err != nil {
				failed++
				continue
			}
			require.Equal(t, []byte{0, id, 0, 7}, got, "slave %d's own registers", id)
			good[id]++
		}
		time.Sleep(20 * time.Millisecond)
	}
	return good, failed
}

// Issue 25, item 2: a converter that closes the connection after every
// reply. Each read goes out again on a fresh connection, so neither slave
// is starved (each keeps at least half its clean-line rate), and the line
// is one lasting failure in the log, not a "down" and a "recovered" line
// per exchange (833 lines in 5 minutes before).
func TestConverterClosingAfterEveryReply(t *testing.T) {
	// alone: it holds a line to a pace or a rate, which tests beside it
	// would slow
	_, clean := faultLine(t, nil)
	cleanGood, _ := pollBoth(t, clean, 2*time.Second)

	var logs syncBuffer
	fl, bus := faultLine(t, &logs)
	fl.Set(simulator.LineCut, 1, 0)
	good, failed := pollBoth(t, bus, 2*time.Second)
	t.Logf("good reads in 2 s: clean line %v, closing after every reply %v (%d failed); reopened %d times; %d log lines",
		cleanGood[1:], good[1:], failed, bus.LineStats().Reopened, len(logs.lines()))
	for _, id := range []int{1, 2} {
		assert.GreaterOrEqual(t, 2*good[id], cleanGood[id], "slave %d keeps at least half its clean rate", id)
	}
	assert.Zero(t, failed, "every read answered")
	assert.Positive(t, bus.LineStats().Reopened)
	assert.LessOrEqual(t, len(logs.lines()), 2, "one lasting failure: %v", logs.lines())
}

// A converter that flaps: reads fail while it is down and come back within
// the reopen backoff's ceiling once it is up, however long it was down.
func TestFlappingConverterIsPolledSoonAfterItReturns(t *testing.T) {
	// alone: it holds a line to a pace or a rate, which tests beside it
	// would slow
	fl, bus := faultLine(t, nil)
	_, err := bus.ReadRegisters(context.Background(), 1, 3, 0, 2)
	require.NoError(t, err)
	fl.Set(simulator.LineDown, 0, 0)
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		_, _ = bus.ReadRegisters(context.Background(), 1, 3, 0, 2)
		time.Sleep(50 * time.Millisecond)
	}
	fl.Set(simulator.LineClean, 0, 0)
	back := time.Now()
	require.Eventually(t, func() bool {
		_, err := bus.ReadRegisters(context.Background(), 1, 3, 0, 2)
		return err == nil
	}, 5*time.Second, 50*time.Millisecond)
	t.Logf("polled again %s after the converter returned", time.Since(back).Round(time.Millisecond))
	assert.Less(t, time.Since(back), 3*time.Second, "within the 2 s reopen ceiling (and a poll)")
}

// Replies spoiled on the way (a flipped bit, another slave's address) are
// never taken for the addressed slave's registers; the retry gets them.
func TestSpoiledRepliesAreNeverTaken(t *testing.T) {
	t.Parallel()
	for _, f := range []simulator.LineFault{simulator.LineCorrupt, simulator.LineWrongSlave} {
		t.Run(string(f), func(t *testing.T) {
			fl, bus := faultLine(t, nil)
			fl.Set(f, 0, 0)
			good, failed := pollBoth(t, bus, time.Second) // pollBoth checks each good read's registers
			_, spoiled := fl.Counts()
			t.Logf("%s: %v good, %d failed, %d replies spoiled", f, good[1:], failed, spoiled)
			assert.Positive(t, spoiled)
			assert.Positive(t, good[1]+good[2])
		})
	}
}
