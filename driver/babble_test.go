package driver_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/driver"
	"pilebridge/simulator"
)

// A line that babbles (a converter streaming noise, a device stuck
// sending) must never hold its bus: every read returns within its timeouts,
// the bus never looks hung to the watchdog, the babble is counted, and the
// line is reopened after a backoff rather than read at full speed. A good
// bus beside it keeps its poll rate.
func TestBabblingLineIsBounded(t *testing.T) {
	// alone: it holds a line to a pace or a rate, which tests beside it
	// would slow
	cases := []struct {
		name string
		gap  time.Duration
		pty  bool
	}{
		{"gateway fast", 0, false},
		{"gateway slow", 800 * time.Microsecond, false},
		{"pty slow", 800 * time.Microsecond, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pol := driver.SlavePolicy{Timeout: 200 * time.Millisecond, Retries: 1}
			var dev string
			watch := &gapWatch{}
			if c.pty {
				link := filepath.Join(t.TempDir(), "ttyB")
				pty, err := simulator.OpenPty(link)
				require.NoError(t, err)
				t.Cleanup(func() { pty.Close() })
				go simulator.Babble(ctx, watch.on(pty), c.gap)
				dev = link
			} else {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				t.Cleanup(func() { ln.Close() })
				go func() {
					for {
						conn, err := ln.Accept()
						if err != nil {
							return
						}
						go func() { defer conn.Close(); simulator.Babble(ctx, watch.on(conn), c.gap) }()
					}
				}()
				dev = "rtuovertcp://" + ln.Addr().String()
			}
			bad := startBus(t, driver.Config{Name: "babble", Device: dev, Default: pol,
				Serial:    driver.SerialParams{Baud: 115200, DataBits: 8, Parity: "N", StopBits: 1},
				DeadAfter: 3, DeadBase: 300 * time.Millisecond, DeadMax: time.Second})
			good := ptyLine(t, 0, pol, 1)

			var stuck atomic.Bool
			go func() {
				for ctx.Err() == nil {
					if _, s := bad.Stuck(); s {
						stuck.Store(true)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
			goodReads := make(chan int)
			go func() {
				n := 0
				for end := time.Now().Add(3 * time.Second); time.Now().Before(end); n++ {
					if _, err := good.bus.ReadRegisters(ctx, 1, 3, 0, 4); err != nil {
						t.Errorf("the good bus failed: %v", err)
					}
					time.Sleep(50 * time.Millisecond)
				}
				goodReads <- n
			}()
			var before syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			start := time.Now()
			longest := time.Duration(0)
			for time.Since(start) < 3*time.Second {
				t0 := time.Now()
				done := make(chan struct{})
				go func() {
					_, _ = bad.ReadRegisters(ctx, 1, 3, 0, 4)
					close(done)
				}()
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Fatal("a read on the babbling line did not return in 5 s")
				}
				longest = max(longest, time.Since(t0))
				time.Sleep(50 * time.Millisecond)
			}
			var after syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			t.Logf("%s: longest read %s; test process CPU %.1f%% of a core (babbler and good bus included)",
				c.name, longest.Round(time.Millisecond), 100*cpu.Seconds()/time.Since(start).Seconds())
			assert.Less(t, longest, 2*time.Second, "a read is bounded by its timeouts")
			assert.False(t, stuck.Load(), "the watchdog never sees the bus hung")
			// The babbler is a goroutine of this process: under qemu-user,
			// or with other test binaries on both cores, it is descheduled
			// for longer than a character's silence, and by the clock the
			// line then fell silent. The line is bounded all the same
			// (above). No babble counted is a failure unless the babbler
			// really left the line silent for 3.5 characters.
			pause := watch.longest()
			switch {
			case bad.LineStats().Babbles > 0:
			case os.Getenv("PILEBRIDGE_QEMU") != "" || (c.gap > 0 && pause >= 1750*time.Microsecond):
				t.Logf("%s: no babble counted, and the babbler fell silent for %s (3.5 characters are 1.75 ms): the machine starved it", c.name, pause)
			default:
				t.Errorf("%s: the babble is not counted (the babbler's longest pause %s)", c.name, pause)
			}
			assert.Greater(t, <-goodReads, 40, "the good bus kept its pace (one read per ~50 ms)")
		})
	}
}

// A gateway that accepts and then drops every connection is not redialled
// in a loop: the reconnect backoff grows until a good exchange, not until a
// connect (before, each accept reset it: ~2 connects and log lines a second).
func TestAcceptThenFailGatewayBacksOff(t *testing.T) {
	// alone: it holds a line to a pace or a rate, which tests beside it
	// would slow
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var accepts atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close()
		}
	}()
	bus := startBus(t, driver.Config{Name: "flaky", Device: "rtuovertcp://" + ln.Addr().String(),
		Default: driver.SlavePolicy{Timeout: 100 * time.Millisecond}, DeadAfter: 1000})
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); {
		_, _ = bus.ReadRegisters(context.Background(), 1, 3, 0, 1)
		time.Sleep(20 * time.Millisecond)
	}
	// backoff 0.2, 0.4, 0.8, 1.6 s...: about 5 connects in 4 s
	assert.LessOrEqual(t, accepts.Load(), int64(8), "connects in 4 s")
	assert.GreaterOrEqual(t, accepts.Load(), int64(3), "it does keep trying")
}

// A slave dead for a while (skipped in backoff far more often than tried)
// and then answering again: its success rate counts the exchanges on the
// wire only. It once subtracted the skips from the exchanges in uint64,
// wrapped, and read 0.0 % for good.
func TestSuccessPercentAfterADeadSpell(t *testing.T) {
	t.Parallel()
	l := ptyLine(t, 0, driver.SlavePolicy{Timeout: 50 * time.Millisecond}, 1)
	l.srv.Slave(1).Inject(simulator.Fault{Kind: simulator.FaultNoAnswer, Count: 3})
	for i := 0; i < 40; i++ { // dead after 3 silences, then skipped until its backoff ends
		_, _ = l.bus.ReadRegisters(context.Background(), 1, 3, 0, 4)
	}
	require.Eventually(t, func() bool {
		_, err := l.bus.ReadRegisters(context.Background(), 1, 3, 0, 4)
		return err == nil
	}, 3*time.Second, 50*time.Millisecond)
	st := l.bus.Stats()[1]
	require.Greater(t, st.Skipped, st.Exchanges, "skipped more often than tried")
	pct, ok := st.SuccessPercent()
	require.True(t, ok)
	want := float64(int(1000*float64(st.OK)/float64(st.Exchanges))) / 10 // answered / tried on the wire
	assert.Equal(t, want, pct)
	assert.Positive(t, pct)
	_, ok = driver.SlaveStats{}.SuccessPercent()
	assert.False(t, ok, "no figure before the first exchange")
}

// gapWatch measures the longest pause between a babbler's writes.
type gapWatch struct {
	mu   sync.Mutex
	last time.Time
	max  time.Duration
}

func (g *gapWatch) on(w io.Writer) io.Writer { return gapWriter{g, w} }

func (g *gapWatch) wrote(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.last.IsZero() {
		g.max = max(g.max, now.Sub(g.last))
	}
	g.last = now
}

func (g *gapWatch) longest() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.max
}

type gapWriter struct {
	g *gapWatch
	w io.Writer
}

func (gw gapWriter) Write(p []byte) (int, error) {
	n, err := gw.w.Write(p)
	gw.g.wrote(time.Now())
	return n, err
}
