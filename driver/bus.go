// Package driver owns the wire: one goroutine per serial line or TCP gateway
// performs every Modbus exchange on it, and per-port pollers ask it for reads.
package driver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goburrow/modbus"
	"github.com/rs/zerolog"

	"pilebridge/internal/backoff"
)

// SlavePolicy tunes how one slave is talked to.
type SlavePolicy struct {
	Timeout   time.Duration // per exchange, from the request to the last reply byte
	Retries   int           // extra attempts after a timeout or a bad frame
	SwitchGap time.Duration // pause after talking to another slave (some meters need it)
	// LateWindow is how long the line is drained after a timeout, for a late
	// reply to land harmlessly (default: Timeout).
	LateWindow time.Duration
}

// Config describes one line.
type Config struct {
	Name string
	// Device is a serial path, tcp://host:port (Modbus TCP) or
	// rtuovertcp://host:port (RTU frames through an RS-485-to-Ethernet converter).
	Device   string
	Serial   SerialParams // Device is copied into it for serial lines
	Default  SlavePolicy
	Slaves   map[uint8]SlavePolicy
	DeadBase time.Duration // first backoff of a dead slave
	DeadMax  time.Duration // longest backoff of a dead slave
	// DeadAfter is how many failed requests in a row make a slave dead (default 3).
	DeadAfter int
}

// Bus serialises every exchange on one line.
type Bus struct {
	cfg     Config
	log     zerolog.Logger
	tr      *transport
	reqs    chan *request
	clients map[uint8]modbus.Client
	// requests recycles *request with its reply channel: every poll of
	// every port makes one
	requests sync.Pool

	lastSlave uint8
	health    map[uint8]*slaveHealth

	statsMu sync.Mutex
	stats   map[uint8]*SlaveStats

	busySince atomic.Int64  // unix ns the exchange in progress began; 0 when idle
	load      loadMeter     // time spent in exchanges
	stuckAt   time.Duration // an exchange running longer than this is stuck

	done chan struct{}
}

type request struct {
	ctx   context.Context
	slave uint8
	fc    uint8
	addr  uint16
	qty   uint16
	reply chan result
}

type result struct {
	data []byte
	err  error
}

type slaveHealth struct {
	fails     int
	downUntil time.Time
	down      bool
}

// New checks the config and builds a bus. Call Run to start serving it.
func New(cfg Config, log zerolog.Logger) (*Bus, error) {
	b := &Bus{
		cfg:     cfg,
		log:     log.With().Str("bus", cfg.Name).Logger(),
		reqs:    make(chan *request),
		clients: map[uint8]modbus.Client{},
		health:  map[uint8]*slaveHealth{},
		stats:   map[uint8]*SlaveStats{},
		done:    make(chan struct{}),
	}
	b.requests.New = func() any { return &request{reply: make(chan result, 1)} }
	tr := &transport{log: b.log, framing: framingRTU}
	switch {
	case strings.HasPrefix(cfg.Device, "tcp://"), strings.HasPrefix(cfg.Device, "rtuovertcp://"):
		u, err := url.Parse(cfg.Device)
		if err != nil || u.Host == "" || u.Port() == "" {
			return nil, fmt.Errorf("bus %s: device %q: want scheme://host:port", cfg.Name, cfg.Device)
		}
		host := u.Host
		tr.open = func() (link, error) { return dialTCP(host, cfg.Default.Timeout+time.Second) }
		tr.silence = 0 // a TCP gateway keeps the RS-485 timing itself
		if u.Scheme == "tcp" {
			tr.framing = framingMBAP
		}
	case strings.Contains(cfg.Device, "://"):
		return nil, fmt.Errorf("bus %s: device %q: unknown scheme (want a serial path, tcp:// or rtuovertcp://)", cfg.Name, cfg.Device)
	case cfg.Device == "":
		return nil, fmt.Errorf("bus %s: device is empty", cfg.Name)
	default:
		p := cfg.Serial
		p.Device = cfg.Device
		if _, err := p.mode(); err != nil {
			return nil, fmt.Errorf("bus %s: %w", cfg.Name, err)
		}
		if p.Baud <= 0 {
			return nil, fmt.Errorf("bus %s: baud %d must be positive", cfg.Name, p.Baud)
		}
		tuner := newLatencyTuner()
		var saidLatency, saidRS485 string // logged when the outcome changes, not on every reopen
		tr.open = func() (link, error) {
			// on every open: a replugged adapter starts at its default again
			if did, err := tuner.tune(p.Device, p.LowLatency); err != nil {
				if said := "err:" + err.Error(); said != saidLatency {
					saidLatency = said
					b.log.Warn().Err(err).Str("device", p.Device).Str("low_latency", string(p.LowLatency)).Msg("low latency not set")
				}
			} else if did != saidLatency {
				saidLatency = did
				b.log.Info().Str("device", p.Device).Str("low_latency", string(p.LowLatency)).Str("result", did).Msg("low latency")
			}
			if p.RS485.Enabled {
				got, err := applyRS485(p.Device, p.RS485)
				if err != nil {
					saidRS485 = ""
					return nil, err // without it the transceiver would not switch: no exchange could work
				}
				if got.String() != saidRS485 {
					saidRS485 = got.String()
					b.log.Info().Str("device", p.Device).Str("rs485", got.String()).Msg("rs485 mode set, as the driver reports it")
				}
			}
			return openSerial(p)
		}
		tr.silence = silenceFor(p.Baud)
	}
	b.tr = tr
	// values, not defaults: the config owns those (internal/config)
	switch {
	case cfg.Default.Timeout <= 0:
		return nil, fmt.Errorf("bus %s: timeout must be set", cfg.Name)
	case cfg.DeadAfter <= 0 || cfg.DeadBase <= 0 || cfg.DeadMax < cfg.DeadBase:
		return nil, fmt.Errorf("bus %s: dead-slave backoff must be set (after %d failures, %s up to %s)", cfg.Name, cfg.DeadAfter, cfg.DeadBase, cfg.DeadMax)
	}
	for id, p := range cfg.Slaves {
		if p.Timeout <= 0 {
			// the config merges a port's policy with its line's (config.PolicyOf)
			return nil, fmt.Errorf("bus %s: slave %d: timeout must be set", cfg.Name, id)
		}
	}
	for _, p := range append([]SlavePolicy{cfg.Default}, mapValues(cfg.Slaves)...) {
		// every attempt's timeout, a reconnect, the switch gap, and slack
		b.stuckAt = max(b.stuckAt, time.Duration(p.Retries+1)*(p.Timeout+time.Second)+p.SwitchGap+10*time.Second)
	}
	return b, nil
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// Stuck says how long the exchange in progress has run when that is longer
// than its timeouts and retries allow: the bus goroutine is hung (a device
// driver stuck in a system call), and the watchdog should stop.
func (b *Bus) Stuck() (time.Duration, bool) {
	since := b.busySince.Load()
	if since == 0 {
		return 0, false
	}
	d := time.Since(time.Unix(0, since))
	return d, d > b.stuckAt
}

// LastGood is the latest good exchange with any slave on the bus; zero
// before the first.
func (b *Bus) LastGood() time.Time {
	b.statsMu.Lock()
	defer b.statsMu.Unlock()
	var t time.Time
	for _, s := range b.stats {
		if s.LastGood.After(t) {
			t = s.LastGood
		}
	}
	return t
}

// Run serves requests until ctx ends, then closes the line.
func (b *Bus) Run(ctx context.Context) {
	defer close(b.done)
	defer b.tr.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-b.reqs:
			if r.ctx.Err() != nil {
				r.reply <- result{err: r.ctx.Err()}
				continue
			}
			start := time.Now()
			b.busySince.Store(start.UnixNano())
			data, err := b.exchange(r)
			b.busySince.Store(0)
			b.load.add(start, time.Now())
			r.reply <- result{data: data, err: err}
		}
	}
}

// Done is closed when Run has returned and the line is closed.
func (b *Bus) Done() <-chan struct{} { return b.done }

// ReadRegisters reads qty registers with function 03 or 04 and returns their
// raw big-endian bytes (2×qty of them).
func (b *Bus) ReadRegisters(ctx context.Context, slave, fc uint8, addr, qty uint16) ([]byte, error) {
	if fc != 3 && fc != 4 {
		return nil, fmt.Errorf("read slave %d: function %d is not a register read", slave, fc)
	}
	if qty < 1 || qty > MaxBlock {
		return nil, fmt.Errorf("read slave %d: quantity %d out of 1..%d", slave, qty, MaxBlock)
	}
	r := b.requests.Get().(*request)
	r.ctx, r.slave, r.fc, r.addr, r.qty = ctx, slave, fc, addr, qty
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		r.ctx = nil
		b.requests.Put(r)
		return nil, ctx.Err()
	case <-b.done:
		r.ctx = nil
		b.requests.Put(r)
		return nil, fmt.Errorf("bus %s stopped", b.cfg.Name)
	}
	res := <-r.reply // the bus's last touch of r: it is ours again
	r.ctx = nil
	b.requests.Put(r)
	if res.err != nil {
		return nil, fmt.Errorf("bus %s slave %d fc %02d addr %d qty %d: %w", b.cfg.Name, slave, fc, addr, qty, res.err)
	}
	return res.data, nil
}

func (b *Bus) policy(slave uint8) SlavePolicy {
	if p, ok := b.cfg.Slaves[slave]; ok {
		return p
	}
	return b.cfg.Default
}

func (b *Bus) client(slave uint8) modbus.Client {
	c, ok := b.clients[slave]
	if ok {
		return c
	}
	// goburrow's handlers serve only as packagers here: framing, CRC on
	// encode, exception decoding. Our transport does all I/O.
	if b.tr.framing == framingMBAP {
		h := modbus.NewTCPClientHandler("")
		h.SlaveId = slave
		c = modbus.NewClient2(h, b.tr)
	} else {
		h := modbus.NewRTUClientHandler("")
		h.SlaveId = slave
		c = modbus.NewClient2(h, b.tr)
	}
	b.clients[slave] = c
	return c
}

// exchange runs one read with the slave's retries, on the bus goroutine.
func (b *Bus) exchange(r *request) ([]byte, error) {
	h := b.health[r.slave]
	if h == nil {
		h = &slaveHealth{}
		b.health[r.slave] = h
	}
	now := time.Now()
	if h.down && now.Before(h.downUntil) {
		b.count(r.slave, func(s *SlaveStats) { s.Skipped++ })
		return nil, ErrSlaveDown
	}
	pol := b.policy(r.slave)
	attempts := pol.Retries + 1
	if h.down {
		attempts = 1 // a probe of a dead slave must not cost the line its retries
	}
	var err error
	for i := 0; i < attempts; i++ {
		if r.ctx.Err() != nil {
			return nil, r.ctx.Err()
		}
		var data []byte
		data, err = b.once(r, pol)
		if err == nil {
			if h.down {
				b.log.Info().Uint8("slave", r.slave).Msg("slave answers again")
			}
			h.fails, h.down = 0, false
			return data, nil
		}
		if !slaveFault(err) {
			return nil, err // a valid exception answer, or the line itself failed
		}
	}
	h.fails++
	if h.fails < b.cfg.DeadAfter {
		return nil, err
	}
	wait := backoff.Policy{Base: b.cfg.DeadBase, Max: b.cfg.DeadMax}.After(h.fails - b.cfg.DeadAfter + 1)
	if !h.down {
		b.log.Warn().Uint8("slave", r.slave).Err(err).Int64("backoff_ms", wait.Milliseconds()).Msg("slave not answering, polling it slower")
	}
	h.down = true
	h.downUntil = time.Now().Add(wait)
	return nil, err
}

// once is a single exchange on the wire.
func (b *Bus) once(r *request, pol SlavePolicy) ([]byte, error) {
	if pol.SwitchGap > 0 && b.lastSlave != r.slave && b.lastSlave != 0 {
		if err := backoff.Sleep(r.ctx, pol.SwitchGap); err != nil {
			return nil, err // the caller gave up during the gap
		}
	}
	b.lastSlave = r.slave
	start := time.Now()
	b.tr.timeout = pol.Timeout
	b.tr.limit, _ = r.ctx.Deadline()
	b.tr.lateWindow = pol.LateWindow
	if b.tr.lateWindow <= 0 {
		b.tr.lateWindow = pol.Timeout
	}
	c := b.client(r.slave)
	var data []byte
	var err error
	if r.fc == 4 {
		data, err = c.ReadInputRegisters(r.addr, r.qty)
	} else {
		data, err = c.ReadHoldingRegisters(r.addr, r.qty)
	}
	lat := time.Since(start)
	var mbErr *modbus.ModbusError
	if errors.As(err, &mbErr) {
		err = &ExceptionError{Function: r.fc, Code: mbErr.ExceptionCode}
	}
	if err == nil && len(data) != 2*int(r.qty) {
		err = &FrameError{Kind: FrameLength, Msg: fmt.Sprintf("%d data bytes for %d registers", len(data), r.qty)}
	}
	b.record(r.slave, lat, err)
	if err != nil {
		return nil, err
	}
	return data, nil
}

// slaveFault says the slave itself failed the exchange (silence or a bad
// frame), as opposed to an exception answer or a line that is down.
func slaveFault(err error) bool {
	var fe *FrameError
	return errors.Is(err, ErrTimeout) || errors.As(err, &fe)
}
