package session_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"pilebridge/meter"
	"pilebridge/session"
	"pilebridge/simulator"
	"pilebridge/uploader"
)

// This file is the scenario harness: a pile or meter whose energy is
// integrated from power in simulated time (the truth), served through a real
// profile's registers, read by the real poller, stepped by the real runner
// and machine, stored in a real bbolt file that a restart closes and reopens,
// and reported through the real translator and outbox. Nothing sleeps.

// device is the physical side: what the pile does and what it has delivered.
type device struct {
	prof   *meter.Profile
	ratios meter.Ratios
	bank   *simulator.Bank

	baseMWh int64 // lifetime energy before the test
	wms     int64 // energy delivered since, in W·ms (exact)

	status   meter.Status
	powerW   int64
	count    int64 // session counter
	vin      string
	stopCode int64
	wrapMWh  int64 // the register rolls over here (0: never)
	silent   bool  // does not answer
	frozen   bool  // firmware lag: the register shows frozenAt
	frozenAt int64 // mWh
}

// truthMWh is the energy the meter has really counted, in mWh.
func (d *device) truthMWh() int64 { return d.baseMWh + d.wms/3600 } // 1 mWh = 3600 W·ms

// presented is the counter the meter presents now, before its register's
// resolution: the truth, or what a frozen (lagging) register still holds.
func (d *device) presented() int64 {
	if d.frozen {
		return d.frozenAt
	}
	return d.truthMWh()
}

func (d *device) advance(dt time.Duration) {
	if d.powerW > 0 {
		d.wms += d.powerW * dt.Milliseconds()
	}
}

// publish writes the device's state into its registers.
func (d *device) publish() error {
	r := meter.Reading{Status: d.status, PowerW: d.powerW, VoltageDV: 2200, VIN: d.vin, SessionCount: d.count, StopCode: d.stopCode}
	e := d.presented()
	if d.wrapMWh > 0 {
		e %= d.wrapMWh
	}
	r.SetEnergyMWh(e)
	return d.prof.Encode(r, d.ratios, d.bank.Set)
}

// resetTo swaps in a meter whose register reads mwh now.
func (d *device) resetTo(mwh int64) { d.baseMWh = mwh - d.wms/3600 }

var errSilent = errors.New("timeout: no reply")

// ReadRegisters answers as the device would on the wire.
func (d *device) ReadRegisters(_ context.Context, _, fc uint8, addr, qty uint16) ([]byte, error) {
	if d.silent {
		return nil, errSilent
	}
	if err := d.publish(); err != nil {
		return nil, err
	}
	words, ok := d.bank.Get(fc, addr, qty)
	if !ok {
		return nil, errors.New("exception 02")
	}
	out := make([]byte, 2*len(words))
	for i, w := range words {
		binary.BigEndian.PutUint16(out[2*i:], w)
	}
	return out, nil
}

// rig is one port: the device, and the bridge that may be up or down.
type rig struct {
	t      *testing.T
	path   string
	dev    *device
	cfg    session.PortConfig
	tariff *session.Tariff
	poll   time.Duration
	now    time.Time

	db     *bbolt.DB
	box    *uploader.Outbox
	runner *session.Runner
	port   *session.Port
	// evidenced counts the bills whose evidence was checked
	evidenced int
	ctx       context.Context

	polls []pollAt // every poll the bridge made, with the truth then
}

type pollAt struct {
	at     time.Time
	truth  int64 // what the meter presented (the truth, unless frozen)
	answer bool
}

// harnessLog is where the machines log (a debugging test may set it).
var harnessLog = zerolog.Nop()

var simStart = time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC) // 10:00 in Shanghai

func newRig(t *testing.T, profile string, ratios meter.Ratios, cfg session.PortConfig, tariff *session.Tariff) *rig {
	t.Helper()
	if testing.Short() {
		// one goroutine, simulated time: the race detector has nothing to
		// find here, and `make test` runs these in its non-race pass
		t.Skip("model run: skipped with -short")
	}
	reg, err := meter.LoadRegistry("")
	require.NoError(t, err)
	prof, err := reg.Get(profile)
	require.NoError(t, err)
	if tariff == nil {
		tariff, err = session.NewTariff("Asia/Shanghai", []session.PeriodSpec{{Start: "00:00", End: "24:00", Type: "flat", Electricity: "1.0", Service: "0.5"}})
		require.NoError(t, err)
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = time.Minute
	}
	cfg.WrapMWh = prof.EnergyWrapMWh(ratios)
	d := &device{prof: prof, ratios: ratios, bank: simulator.NewBank(), baseMWh: 1_234_567_000, status: meter.StatusIdle}
	for _, b := range prof.Blocks() {
		d.bank.Set(b.FC, b.Addr, make([]uint16, b.Count))
	}
	r := &rig{t: t, path: filepath.Join(t.TempDir(), "pilebridge.db"), dev: d, cfg: cfg, tariff: tariff,
		poll: time.Second, now: simStart, ctx: context.Background()}
	r.start()
	t.Cleanup(func() {
		if r.db != nil {
			r.db.Close()
		}
	})
	return r
}

// start brings the bridge up: opens the store and restores the port.
func (r *rig) start() {
	r.t.Helper()
	// NoSync: a restart here is kill -9 (the OS keeps what was written);
	// power-loss durability is the e2e tests' (cmd/pilebridge).
	db, err := bbolt.Open(r.path, 0o600, &bbolt.Options{NoSync: true})
	require.NoError(r.t, err)
	db.MaxBatchDelay = time.Microsecond // one port, simulated time: nothing to wait for
	box, err := uploader.NewOutbox(db, 100_000, zerolog.Nop())
	require.NoError(r.t, err)
	sink := &uploader.Translator{Outbox: box, LocalUserID: "local",
		Ports: map[string]uploader.Port{"P/1": {DeviceNo: "P", PortNo: "1", EnergyCode: "CN_AC"}}}
	store, err := session.NewStore(db, sink, r.tariff.Loc, "T")
	require.NoError(r.t, err)
	m, err := session.NewMachine(session.FilledPortConfig(r.cfg), r.tariff, store.NextOrder, harnessLog)
	require.NoError(r.t, err)
	r.port = &session.Port{Key: "P/1", Machine: m, Poller: meter.NewPoller(r.dev, 1, r.dev.prof, r.dev.ratios), Interval: r.poll}
	r.runner = session.NewRunner(store, session.Clock{}, func(_ string, st session.PortState, _ *session.Session, rd meter.Reading, err error) {
		if err != nil && !errors.Is(err, errSilent) {
			harnessLog.Error().Err(err).Msg("poll")
		}
		harnessLog.Trace().Time("at", rd.Time).Int64("mwh", rd.EnergyMWh).Str("status", rd.Status.String()).Int64("truth", r.dev.truthMWh()).Msg("poll")
	}, zerolog.Nop())
	require.NoError(r.t, r.runner.Restore([]*session.Port{r.port}))
	r.db, r.box = db, box
}

// kill stops the bridge as kill -9 or a power cut would: nothing more is
// written; what was committed stays.
func (r *rig) kill() {
	require.NoError(r.t, r.db.Close())
	r.db, r.port = nil, nil
}

// run lets d pass with the bridge polling (if it is up).
func (r *rig) run(d time.Duration) {
	for end := r.now.Add(d); r.now.Before(end); {
		step := min(r.poll, end.Sub(r.now))
		r.dev.advance(step)
		r.now = r.now.Add(step)
		if r.port != nil && step == r.poll {
			r.runner.Step(r.ctx, r.port, r.now)
			r.polls = append(r.polls, pollAt{at: r.now, truth: r.dev.presented(), answer: !r.dev.silent})
		}
	}
}

// down lets d pass with the bridge down.
func (r *rig) down(d time.Duration) {
	port := r.port
	r.port = nil
	r.run(d)
	r.port = port
}

func (r *rig) set(st meter.Status, powerW int64) { r.dev.status, r.dev.powerW = st, powerW }

// records are every record the bridge queued, finals and start failures
// (terminal) in queue order, and the newest progress of each order.
func (r *rig) records() (terminal []uploader.Record, progress map[string]uploader.Record) {
	r.t.Helper()
	pending, parked, _, err := r.box.List(true)
	require.NoError(r.t, err)
	all := append(pending, parked...)
	sort.Slice(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	progress = map[string]uploader.Record{}
	for _, e := range all {
		if ev := e.Record.Evidence; ev != nil {
			// the quantity is computable from the readings the ledger shows
			require.Equal(r.t, ev.CountedMWh, ev.ComputedMWh(), "order %s: end − start − gaps + rollovers = counted: %+v", e.Record.Order, ev)
			require.Equal(r.t, e.Record.QuantityWh, whOf(ev.ComputedMWh()), "order %s: the quantity is the readings' delta, rounded once: %+v", e.Record.Order, ev)
			r.evidenced++
		}
		if e.Record.Terminal() {
			terminal = append(terminal, e.Record)
		} else {
			progress[e.Record.Order] = e.Record
		}
	}
	return terminal, progress
}

// lastPollBefore is the last poll the bridge made (and the device answered)
// at or before at: what a stored reading can prove.
func (r *rig) lastPollBefore(at time.Time) pollAt {
	var best pollAt
	for _, p := range r.polls {
		if p.answer && !p.at.After(at) {
			best = p
		}
	}
	require.False(r.t, best.at.IsZero(), "no poll before %s", at)
	return best
}

// firstPollAfter is the first answered poll after at.
func (r *rig) firstPollAfter(at time.Time) pollAt {
	for _, p := range r.polls {
		if p.answer && p.at.After(at) {
			return p
		}
	}
	r.t.Fatalf("no poll after %s", at)
	return pollAt{}
}

// The register models below are the test's own: what a meter with this
// resolution shows for a true energy, written from the meter's manual, not
// from the profile code.

// stepShows is an integer register of step mWh: it truncates.
func stepShows(step int64) func(int64) int64 {
	return func(mwh int64) int64 { return mwh / step * step }
}

// float32KWhShows is a float32 kWh register: the nearest float32.
func float32KWhShows(mwh int64) int64 {
	f := float32(float64(mwh) / 1e6)
	return int64(math.Round(float64(f) * 1e6))
}

// whOf rounds mWh to the platform's Wh once, half up.
func whOf(mwh int64) int64 { return (mwh + 500) / 1000 }

// fenOf is Wh × price (0.0001 yuan/kWh) in fen, rounded half up once.
func fenOf(wh, price int64) int64 { return (wh*price + 50_000) / 100_000 }
