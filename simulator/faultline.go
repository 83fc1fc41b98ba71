package simulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/driver"
)

// LineFault is how a FaultLine misbehaves during a spell.
type LineFault string

// What a failing line does in the field.
const (
	LineClean      LineFault = "clean"       // passes everything
	LineDown       LineFault = "down"        // unreachable: connections closed, new ones closed at once (a flapping converter)
	LineCut        LineFault = "cut"         // closes the connection after CutAfter replies (a converter's idle or session limit)
	LineDelay      LineFault = "delay"       // holds each reply Delay (a congested link, a slow converter)
	LineCorrupt    LineFault = "corrupt"     // interference: a third of the replies have one bit flipped (RTU) or, behind a Modbus TCP gateway (which checks the serial CRC itself), become exception 0B
	LineWrongSlave LineFault = "wrong-slave" // a third of the replies carry another slave's address (a reflection, a misaddressed device)
	LineStall      LineFault = "stall"       // forwards nothing while it lasts, then everything it held (a converter that hangs)
)

// AllLineFaults are the faults a Chaos run chooses from.
var AllLineFaults = []LineFault{LineClean, LineDown, LineCut, LineDelay, LineCorrupt, LineWrongSlave, LineStall}

// ParseLineFaults reads a comma-separated list of faults.
func ParseLineFaults(s string) ([]LineFault, error) {
	var out []LineFault
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		ok := false
		for _, k := range AllLineFaults {
			if LineFault(f) == k {
				out, ok = append(out, k), true
			}
		}
		if !ok {
			return nil, fmt.Errorf("line fault %q: want one of %v", f, AllLineFaults)
		}
	}
	return out, nil
}

// FaultLine is a failing line in front of a simulated one: a TCP proxy
// that a bridge dials instead of the simulated gateway or converter, and
// that misbehaves as told (Set) or at random (Chaos). It knows the framing
// (RTU frames or MBAP) so that it can address and count replies: the
// simulated slaves write each reply in one piece, and the proxy takes each
// piece it reads from them as one reply.
type FaultLine struct {
	upstream string
	mbap     bool
	log      zerolog.Logger

	mu       sync.Mutex
	mode     LineFault
	cutAfter int
	delay    time.Duration
	resume   chan struct{} // closed when a stall ends
	conns    map[net.Conn]struct{}
	rng      *rand.Rand
	replies  int64
	spoiled  int64 // replies corrupted, readdressed or dropped with a connection
}

// NewFaultLine proxies to upstream (host:port of a simulated line); mbap
// says its framing is Modbus TCP, else RTU frames over TCP.
func NewFaultLine(upstream string, mbap bool, seed uint64, log zerolog.Logger) *FaultLine {
	return &FaultLine{upstream: upstream, mbap: mbap, log: log, mode: LineClean, cutAfter: 1, delay: 300 * time.Millisecond,
		conns: map[net.Conn]struct{}{}, rng: rand.New(rand.NewPCG(seed, seed^0x5bd1e995))}
}

// Set switches the line to fault f now. cutAfter (LineCut) and delay
// (LineDelay) are kept when zero.
func (f *FaultLine) Set(fault LineFault, cutAfter int, delay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cutAfter > 0 {
		f.cutAfter = cutAfter
	}
	if delay > 0 {
		f.delay = delay
	}
	if f.mode == LineStall && fault != LineStall && f.resume != nil {
		close(f.resume)
		f.resume = nil
	}
	if fault == LineStall && f.resume == nil {
		f.resume = make(chan struct{})
	}
	f.mode = fault
	if fault == LineDown {
		for c := range f.conns {
			_ = c.Close()
		}
	}
}

// Mode is the fault in force.
func (f *FaultLine) Mode() LineFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mode
}

// Counts are the replies that came through from the simulated line and
// how many of them the faults spoiled.
func (f *FaultLine) Counts() (replies, spoiled int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.replies, f.spoiled
}

// Serve accepts the bridge's connections on l until l is closed.
func (f *FaultLine) Serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if f.Mode() == LineDown {
			_ = c.Close()
			continue
		}
		go f.proxy(c)
	}
}

func (f *FaultLine) proxy(c net.Conn) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", f.upstream, 2*time.Second)
	if err != nil {
		f.log.Warn().Err(err).Msg("fault line: cannot reach the simulated line")
		return
	}
	defer up.Close()
	f.mu.Lock()
	f.conns[c] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
	}()
	go func() {
		// requests pass as they are, except while the line stalls
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				f.waitStall()
				if _, werr := up.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = up.Close()
	}()
	buf := make([]byte, 512)
	served := 0
	for {
		n, err := up.Read(buf)
		if n > 0 {
			reply := append([]byte(nil), buf[:n]...)
			f.waitStall()
			out, closeAfter := f.spoil(reply, served)
			if out != nil {
				if _, werr := c.Write(out); werr != nil {
					return
				}
			}
			served++
			if closeAfter {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				f.log.Debug().Err(err).Msg("fault line: simulated line gone")
			}
			return
		}
	}
}

// waitStall blocks while the line stalls.
func (f *FaultLine) waitStall() {
	f.mu.Lock()
	ch := f.resume
	stalled := f.mode == LineStall
	f.mu.Unlock()
	if stalled && ch != nil {
		<-ch
	}
}

// spoil applies the fault in force to one reply: what to send (nil:
// nothing) and whether to close the connection after it.
func (f *FaultLine) spoil(reply []byte, served int) ([]byte, bool) {
	f.mu.Lock()
	mode, cut, delay := f.mode, f.cutAfter, f.delay
	third := f.rng.IntN(3) == 0
	other := byte(1 + f.rng.IntN(247))
	bit := f.rng.IntN(8 * len(reply))
	f.replies++
	f.mu.Unlock()
	spoiled := func() {
		f.mu.Lock()
		f.spoiled++
		f.mu.Unlock()
	}
	switch mode {
	case LineDown:
		spoiled()
		return nil, true
	case LineCut:
		return reply, served+1 >= cut
	case LineDelay:
		time.Sleep(delay)
	case LineCorrupt:
		if third {
			spoiled()
			if f.mbap {
				reply = gatewayNoResponse(reply)
			} else {
				reply[bit/8] ^= 1 << (bit % 8)
			}
		}
	case LineWrongSlave:
		if third {
			spoiled()
			reply = f.readdress(reply, other)
		}
	}
	return reply, false
}

// gatewayNoResponse is what a Modbus TCP gateway sends when the serial
// reply it got was garbled: exception 0B (gateway target device failed to
// respond) under the request's header. TCP's own checksum keeps the bytes
// between the gateway and the bridge intact.
func gatewayNoResponse(reply []byte) []byte {
	if len(reply) < 8 {
		return reply
	}
	out := append([]byte(nil), reply[:9]...)
	out[4], out[5] = 0, 3
	out[7] |= 0x80
	out[8] = 0x0B
	return out
}

// readdress makes reply come from slave id (another one, with a valid
// checksum on RTU): a frame the bridge must not take for the one it asked.
func (f *FaultLine) readdress(reply []byte, id byte) []byte {
	if f.mbap {
		if len(reply) > 6 {
			if reply[6] == id {
				id++
			}
			reply[6] = id
		}
		return reply
	}
	if len(reply) < 4 {
		return reply
	}
	if reply[0] == id {
		id = id%247 + 1
	}
	reply[0] = id
	return driver.AppendCRC(reply[:len(reply)-2])
}

// Spell is one stretch of a Chaos run.
type Spell struct {
	Fault    LineFault
	For      time.Duration
	CutAfter int
	Delay    time.Duration
}

// Chaos switches the line between faults at random until ctx ends: each
// spell lasts between minSpell and maxSpell, clean and down (a flapping
// line) half the time between them, the rest spread over faults. A cut
// closes after 1 to 5 replies; a delay holds each reply 50 ms to 1.5 s. Each
// spell is reported to spell, if not nil. The line is clean when it returns.
func (f *FaultLine) Chaos(ctx context.Context, faults []LineFault, minSpell, maxSpell time.Duration, spell func(Spell)) {
	defer f.Set(LineClean, 0, 0)
	for ctx.Err() == nil {
		f.mu.Lock()
		s := Spell{Fault: faults[f.rng.IntN(len(faults))], For: minSpell + time.Duration(f.rng.Int64N(int64(maxSpell-minSpell)+1))}
		if f.rng.IntN(2) == 0 {
			// a flapping line: up and down
			s.Fault = LineDown
			if f.rng.IntN(2) == 0 {
				s.Fault = LineClean
			}
		}
		s.CutAfter = 1 + f.rng.IntN(5)
		s.Delay = 50*time.Millisecond + time.Duration(f.rng.Int64N(int64(1450*time.Millisecond)))
		f.mu.Unlock()
		if spell != nil {
			spell(s)
		}
		f.Set(s.Fault, s.CutAfter, s.Delay)
		select {
		case <-ctx.Done():
		case <-time.After(s.For):
		}
	}
}
