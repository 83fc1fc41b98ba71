package driver_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goburrow/modbus"
	"github.com/rs/zerolog"

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

func pacedSim(b *testing.B, baud int) *simulator.PtyLine {
	link := filepath.Join(b.TempDir(), "tty")
	pty, err := simulator.OpenPty(link)
	if err != nil {
		b.Fatal(err)
	}
	srv := simulator.NewServer(zerolog.Nop())
	srv.Baud = baud
	srv.AddSlave(1).Bank.Set(3, 0, make([]uint16, 125))
	go srv.AttachPty(pty)
	b.Cleanup(func() { pty.Close() })
	return pty
}

func report(b *testing.B, per time.Duration, baud, n int) {
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/exchange")
	b.ReportMetric(float64(per)/float64(lineLimit(baud, n)), "x_limit")
}

// BenchmarkExchange: one 03 read of N registers against the simulator pacing
// its replies like a real line, for our driver, stock goburrow's RTU client
// and mbpoll (libmodbus). x_limit is the time over the line-time limit.
func BenchmarkExchange(b *testing.B) {
	for _, baud := range []int{9600, 115200} {
		for _, n := range []int{2, 10, 40} {
			b.Run(fmt.Sprintf("baud=%d/N=%d/pilebridge", baud, n), func(b *testing.B) {
				pty := pacedSim(b, baud)
				bus, err := driver.New(driver.Config{Name: "bench", Device: pty.SlavePath,
					Serial:  driver.SerialParams{Baud: baud, DataBits: 8, Parity: "N", StopBits: 1},
					Default: driver.SlavePolicy{Timeout: time.Second}}, zerolog.Nop())
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
				report(b, time.Since(start)/time.Duration(b.N), baud, n)
			})
			b.Run(fmt.Sprintf("baud=%d/N=%d/goburrow", baud, n), func(b *testing.B) {
				pty := pacedSim(b, baud)
				h := modbus.NewRTUClientHandler(pty.SlavePath)
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
				report(b, time.Since(start)/time.Duration(b.N), baud, n)
			})
			b.Run(fmt.Sprintf("baud=%d/N=%d/mbpoll", baud, n), func(b *testing.B) {
				if _, err := exec.LookPath("mbpoll"); err != nil {
					b.Skip("mbpoll not installed (apt-get install mbpoll)")
				}
				pty := pacedSim(b, baud)
				// One process polls the address list: per exchange is the
				// difference between 21 and 1 exchange, without process start.
				run := func(k int) time.Duration {
					addrs := strings.TrimSuffix(strings.Repeat("1,", k), ",")
					start := time.Now()
					out, err := exec.Command("mbpoll", "-m", "rtu", "-b", strconv.Itoa(baud), "-P", "none", "-a", addrs,
						"-0", "-r", "0", "-c", strconv.Itoa(n), "-1", "-q", pty.SlavePath).CombinedOutput()
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
				report(b, total/time.Duration(20*b.N), baud, n)
			})
		}
	}
}
