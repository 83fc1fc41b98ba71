package driver_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goburrow/modbus"
	"github.com/rs/zerolog"
	"go.bug.st/serial"

	"pilebridge/driver"
	"pilebridge/simulator"
)

// lineLimit is the fastest one 03 exchange of n registers can be on a line:
// (13+2n) characters of 11 bits plus two 3.5-character silences.
func lineLimit(baud, n int) time.Duration {
	char := 11 * float64(time.Second) / float64(baud)
	silence := 3.5 * char
	if baud > 19200 {
		silence = float64(1750 * time.Microsecond)
	}
	return time.Duration(float64(13+2*n)*char + 2*silence)
}

// gapLine is the simulator's side of the pty, timing the silence the master
// leaves between the end of a reply and its next request.
type gapLine struct {
	pty   *simulator.PtyLine
	mu    sync.Mutex
	wrote time.Time
	gaps  []time.Duration
}

func (g *gapLine) Read(p []byte) (int, error) {
	n, err := g.pty.Read(p)
	g.mu.Lock()
	if !g.wrote.IsZero() && n > 0 {
		g.gaps = append(g.gaps, time.Since(g.wrote))
		g.wrote = time.Time{}
	}
	g.mu.Unlock()
	return n, err
}

func (g *gapLine) Write(p []byte) (int, error) {
	n, err := g.pty.Write(p)
	g.mu.Lock()
	g.wrote = time.Now()
	g.mu.Unlock()
	return n, err
}

func (g *gapLine) medianGap() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.gaps) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), g.gaps...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func pacedSim(b *testing.B, baud int) *gapLine {
	link := filepath.Join(b.TempDir(), "tty")
	pty, err := simulator.OpenPty(link)
	if err != nil {
		b.Fatal(err)
	}
	srv := simulator.NewServer(zerolog.Nop())
	srv.Baud = baud
	srv.AddSlave(1).Bank.Set(3, 0, make([]uint16, 125))
	g := &gapLine{pty: pty}
	go srv.ServeRTU(g)
	b.Cleanup(func() { pty.Close() })
	return g
}

// report prints the time per exchange, its ratio to the line limit, and the
// median silence the master kept before a request (3.5 characters required).
func report(b *testing.B, g *gapLine, per time.Duration, baud, n int) {
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/exchange")
	b.ReportMetric(float64(per)/float64(lineLimit(baud, n)), "x_limit")
	b.ReportMetric(float64(g.medianGap().Microseconds())/1000, "ms_silence")
}

// BenchmarkExchange: one 03 read of N registers against the simulator pacing
// its replies like a real line, for our driver, stock goburrow's RTU client
// and mbpoll (libmodbus). x_limit is the time over the line-time limit;
// ms_silence the median gap the master left after a reply (1.75 ms needed
// at 115200, 4.0 ms at 9600).
func BenchmarkExchange(b *testing.B) {
	for _, baud := range []int{9600, 115200} {
		for _, n := range []int{2, 10, 40} {
			b.Run(fmt.Sprintf("baud=%d/N=%d/pilebridge", baud, n), func(b *testing.B) {
				g := pacedSim(b, baud)
				bus, err := driver.New(driver.Config{Name: "bench", Device: g.pty.SlavePath,
					Serial:  driver.SerialParams{Baud: baud, DataBits: 8, Parity: "N", StopBits: 1},
					Default: driver.SlavePolicy{Timeout: time.Second}, DeadAfter: 3, DeadBase: 2 * time.Second, DeadMax: time.Minute}, zerolog.Nop())
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer func() { cancel(); <-bus.Done() }()
				go bus.Run(ctx)
				if _, err := bus.ReadRegisters(ctx, 1, 3, 0, uint16(n)); err != nil { // open the port
					b.Fatal(err)
				}
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					if _, err := bus.ReadRegisters(ctx, 1, 3, 0, uint16(n)); err != nil {
						b.Fatal(err)
					}
				}
				report(b, g, time.Since(start)/time.Duration(b.N), baud, n)
			})
			b.Run(fmt.Sprintf("baud=%d/N=%d/goburrow", baud, n), func(b *testing.B) {
				g := pacedSim(b, baud)
				h := modbus.NewRTUClientHandler(g.pty.SlavePath)
				h.BaudRate, h.DataBits, h.Parity, h.StopBits, h.SlaveId, h.Timeout = baud, 8, "N", 1, 1, time.Second
				if err := h.Connect(); err != nil {
					b.Fatal(err)
				}
				defer h.Close()
				c := modbus.NewClient(h)
				if _, err := c.ReadHoldingRegisters(0, uint16(n)); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					if _, err := c.ReadHoldingRegisters(0, uint16(n)); err != nil {
						b.Fatal(err)
					}
				}
				report(b, g, time.Since(start)/time.Duration(b.N), baud, n)
			})
			b.Run(fmt.Sprintf("baud=%d/N=%d/mbpoll", baud, n), func(b *testing.B) {
				if _, err := exec.LookPath("mbpoll"); err != nil {
					b.Skip("mbpoll not installed (apt-get install mbpoll)")
				}
				g := pacedSim(b, baud)
				// One process polls the address list: per exchange is the
				// difference between 21 and 1 exchange, without process start.
				run := func(k int) time.Duration {
					addrs := strings.TrimSuffix(strings.Repeat("1,", k), ",")
					start := time.Now()
					out, err := exec.Command("mbpoll", "-m", "rtu", "-b", strconv.Itoa(baud), "-P", "none", "-a", addrs,
						"-0", "-r", "0", "-c", strconv.Itoa(n), "-1", "-q", g.pty.SlavePath).CombinedOutput()
					if err != nil || strings.Count(string(out), "Polling") != k {
						b.Fatalf("mbpoll: %v\n%s", err, out)
					}
					return time.Since(start)
				}
				one := run(1)
				b.ResetTimer()
				var total time.Duration
				for i := 0; i < b.N; i++ {
					total += run(21) - one
				}
				report(b, g, total/time.Duration(20*b.N), baud, n)
			})
		}
	}
}

// BenchmarkWaitPrecision: why the transporter waits out the inter-frame
// silence by reading the line with a timeout rather than with time.Sleep.
// Reports how far past the requested wait each returns.
func BenchmarkWaitPrecision(b *testing.B) {
	for _, d := range []time.Duration{1750 * time.Microsecond, 3350 * time.Microsecond} {
		b.Run(fmt.Sprintf("sleep/%v", d), func(b *testing.B) {
			var over time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				time.Sleep(d)
				over += time.Since(start) - d
			}
			b.ReportMetric(float64(over.Microseconds())/float64(b.N), "us_over")
		})
		b.Run(fmt.Sprintf("read-timeout/%v", d), func(b *testing.B) {
			g := pacedSim(b, 0) // a quiet line
			port, err := serial.Open(g.pty.SlavePath, &serial.Mode{BaudRate: 115200, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
			if err != nil {
				b.Fatal(err)
			}
			defer port.Close()
			if err := port.SetReadTimeout(d); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 16)
			var over time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if n, err := port.Read(buf); n != 0 || err != nil {
					b.Fatal(n, err)
				}
				over += time.Since(start) - d
			}
			b.ReportMetric(float64(over.Microseconds())/float64(b.N), "us_over")
		})
	}
}
