package simulator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"pilebridge/meter"
)

// Pile is a simulated charging port (or a bare meter): physical state that is
// written into a slave's registers through a profile, so that the bridge reads
// it exactly as it would read the real device.
type Pile struct {
	profile *meter.Profile
	ratios  meter.Ratios
	bank    *Bank

	mu   sync.Mutex
	r    meter.Reading // r.EnergyMWh is the truth; the registers show it truncated to their step
	frac int64         // energy below 1 mWh, in W·µs, so slow charging still counts
	last time.Time

	logging bool
	seq     int64
	log     []LogEntry
}

// LogEntry is one thing that happened to the device, in its own order: a
// read of its registers, or a change noted by a script. MWh is the energy
// its meter counted at that moment.
type LogEntry struct {
	Seq    int64
	At     time.Time
	Kind   string // "read", or the script's note
	MWh    int64
	Status meter.Status
}

// LogReads starts logging every register read (Get) with the energy at
// that instant, for tests that compare bills with ground truth.
func (p *Pile) LogReads() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.logging = true
}

// Log is a copy of the log so far.
func (p *Pile) Log() []LogEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]LogEntry(nil), p.log...)
}

func (p *Pile) noteLocked(kind string) int64 {
	p.seq++
	if p.logging {
		p.log = append(p.log, LogEntry{Seq: p.seq, At: time.Now(), Kind: kind, MWh: p.r.EnergyMWh, Status: p.r.Status})
	}
	return p.seq
}

// Get serves a register read with the energy integrated up to this instant
// (a Slave's Source): the read and its log entry are one atomic step. Only a
// read that covers the energy register is logged: a profile read in several
// blocks takes its energy from that one.
func (p *Pile) Get(fc uint8, addr, n uint16) ([]uint16, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advanceLocked(time.Now())
	if err := p.publishLocked(); err != nil {
		return nil, false
	}
	if f := p.profile.Fields["energy"]; f != nil && f.FC == fc && f.Addr >= addr && uint32(f.Addr) < uint32(addr)+uint32(n) {
		p.noteLocked("read")
	}
	return p.bank.Get(fc, addr, n)
}

// Change applies f and notes it in the log under one lock: no read can fall
// between the change and its note.
func (p *Pile) Change(note string, f func(r *meter.Reading)) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advanceLocked(time.Now())
	f(&p.r)
	seq := p.noteLocked(note)
	return seq, p.publishLocked()
}

// NewPile writes an idle device into bank.
func NewPile(p *meter.Profile, ratios meter.Ratios, bank *Bank, energyWh int64) (*Pile, error) {
	pl := &Pile{profile: p, ratios: ratios, bank: bank, last: time.Now()}
	// Registers in the holes of a planned read answer 0, as these devices do;
	// a device that rejects holes is modelled by a profile with max_gap: 0.
	for _, b := range p.Blocks() {
		bank.Set(b.FC, b.Addr, make([]uint16, b.Count))
	}
	pl.r = meter.Reading{Status: meter.StatusIdle, VoltageDV: 2200}
	pl.r.SetEnergyMWh(energyWh * 1000)
	return pl, pl.publishLocked()
}

func (p *Pile) publishLocked() error {
	return p.profile.Encode(p.r, p.ratios, p.bank.Set)
}

// advanceLocked integrates power into energy up to now.
func (p *Pile) advanceLocked(now time.Time) {
	dt := now.Sub(p.last)
	p.last = now
	if dt <= 0 || p.r.PowerW <= 0 {
		return
	}
	// W × µs = 1e-6 J; 1 mWh = 3.6 J = 3.6e6 W·µs
	p.frac += p.r.PowerW * dt.Microseconds()
	p.r.SetEnergyMWh(p.r.EnergyMWh + p.frac/3_600_000)
	p.frac %= 3_600_000
}

// Update changes the device under its lock and publishes the registers.
func (p *Pile) Update(f func(r *meter.Reading)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advanceLocked(time.Now())
	f(&p.r)
	return p.publishLocked()
}

// Tick integrates energy and republishes; call it often while charging.
func (p *Pile) Tick() error { return p.Update(func(*meter.Reading) {}) }

// Reading is a copy of the device's present state.
func (p *Pile) Reading() meter.Reading {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advanceLocked(time.Now())
	return p.r
}

// MeterWh is what the device's energy register shows, in Wh: the truth
// truncated to the register's step, as read back from its registers.
func (p *Pile) MeterWh() (int64, error) {
	p.mu.Lock()
	p.advanceLocked(time.Now())
	err := p.publishLocked()
	p.mu.Unlock()
	if err != nil {
		return 0, err
	}
	data := make([][]byte, len(p.profile.Blocks()))
	for i, b := range p.profile.Blocks() {
		words, ok := p.bank.Get(b.FC, b.Addr, b.Count)
		if !ok {
			return 0, fmt.Errorf("registers %d+%d not set", b.Addr, b.Count)
		}
		data[i] = make([]byte, 2*len(words))
		for k, w := range words {
			data[i][2*k], data[i][2*k+1] = byte(w>>8), byte(w)
		}
	}
	r, err := p.profile.Decode(data, p.ratios, time.Now())
	if err != nil {
		return 0, err
	}
	return r.EnergyMWh / 1000, nil
}

// Script is one scripted session: idle, plug in, start, charge, stop.
type Script struct {
	Idle, Plugged, Starting, Charge, Finished time.Duration
	PowerW                                    int64
	StopCode                                  int64 // stop_reason register at the end
	VIN                                       string
	SOC                                       int // starting SOC, -1: not reported
	FailStart                                 bool
	Repeat                                    bool
}

// phase is one step of a script: how long, and what the device looks like.
type phase struct {
	d   time.Duration
	set func(r *meter.Reading)
}

// Run plays the script until it ends (or ctx does) and leaves the pile idle.
func (p *Pile) Run(ctx context.Context, s Script) error {
	phases := []phase{
		{s.Idle, func(r *meter.Reading) { *r = idle(*r) }},
		{s.Plugged, func(r *meter.Reading) { r.Status = meter.StatusPlugged; r.VIN = s.VIN }},
		{s.Starting, func(r *meter.Reading) {
			r.Status = meter.StatusStarting
			r.SessionCount = (r.SessionCount + 1) & 0xFFFFFFFF
			setSOC(r, s.SOC)
		}},
	}
	if s.FailStart {
		phases = append(phases, phase{s.Finished, func(r *meter.Reading) { r.Status = meter.StatusStartFailed; r.StopCode = s.StopCode }})
	} else {
		phases = append(phases,
			phase{s.Charge, func(r *meter.Reading) {
				r.Status, r.PowerW = meter.StatusCharging, s.PowerW
				r.CurrentCA = s.PowerW * 1000 / max(r.VoltageDV, 1) // W / (0.1 V) -> 0.01 A
			}},
			phase{s.Finished, func(r *meter.Reading) {
				r.Status, r.PowerW, r.CurrentCA, r.StopCode = meter.StatusFinished, 0, 0, s.StopCode
				if s.StopCode == 1 && r.HasSOC {
					r.SOC = 100
				}
			}},
		)
	}
	for {
		for _, ph := range phases {
			if err := p.hold(ctx, ph); err != nil {
				return err
			}
		}
		if err := p.Update(func(r *meter.Reading) { *r = idle(*r) }); err != nil {
			return err
		}
		if !s.Repeat {
			return nil
		}
	}
}

// hold enters a phase and keeps the registers fresh for its duration.
func (p *Pile) hold(ctx context.Context, ph phase) error {
	if err := p.Update(ph.set); err != nil {
		return err
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	end := time.Now().Add(ph.d)
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := p.Tick(); err != nil {
				return err
			}
		}
	}
	return nil
}

func idle(r meter.Reading) meter.Reading {
	out := meter.Reading{VoltageDV: r.VoltageDV, Status: meter.StatusIdle, SessionCount: r.SessionCount}
	out.SetEnergyMWh(r.EnergyMWh)
	return out
}

func setSOC(r *meter.Reading, soc int) {
	if soc >= 0 {
		r.SOC, r.HasSOC = soc, true
	}
}

// String describes the pile for logs.
func (p *Pile) String() string {
	r := p.Reading()
	return fmt.Sprintf("%s %s %d Wh %d W", p.profile.Name, r.Status, r.EnergyWh, r.PowerW)
}
