package station

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"
	"go.etcd.io/bbolt"

	"pilebridge/driver"
	"pilebridge/internal/config"
	"pilebridge/internal/dbfile"
	"pilebridge/internal/faillog"
	"pilebridge/internal/safefile"
	"pilebridge/meter"
	"pilebridge/session"
	"pilebridge/uploader"
)

// Station is the daemon, wired from the config.
type Station struct {
	cfg      *config.Config
	log      zerolog.Logger
	db       *bbolt.DB
	profiles *meter.Registry
	buses    map[string]*driver.Bus
	ports    []*session.Port
	byBus    map[string][]*session.Port // the ports on each bus, polled by one loop (RunLine)
	outbox   *uploader.Outbox
	sender   *uploader.Sender
	devsync  *uploader.DeviceSync
	runner   *session.Runner
	store    *session.Store
	status   *statusBoard
	plates   *plateHub
	started  time.Time
	notify   notifier
	version  string
	clock    session.Clock
	pages    map[string]*template.Template // the status page, by language
	// the attendant page, by language, and its lockout of wrong codes
	attendantPages map[string]*template.Template
	gate           attendantGate

	conns   *capListener  // the local server's listener (listener.go); nil without listen
	guard   *dbfile.Guard // the database path against the open file (files.go)
	filesMu sync.Mutex
	files   dbfile.Problem
}

// Load checks the config and every profile it names; nothing is opened.
// `check` and `run` both call it: the daemon accepts exactly what check does.
func Load(path string) (*config.Config, *meter.Registry, error) {
	cfg, err := config.LoadAll(path)
	var errs config.Errors
	if err != nil && !errors.As(err, &errs) {
		return nil, nil, err
	}
	if cfg == nil {
		return nil, nil, err // not YAML at all: nothing more to check
	}
	if _, err := NewTariff(cfg); err != nil {
		errs = append(errs, &config.Error{File: path, Key: "tariff", Msg: err.Error()})
	}
	reg, err := meter.LoadRegistry(cfg.ProfilesDir)
	if err != nil {
		errs = append(errs, &config.Error{File: path, Key: "profiles_dir", Msg: strings.TrimPrefix(err.Error(), "profiles_dir: ")})
	} else {
		for i, p := range cfg.Piles {
			for j, pt := range p.Ports {
				if pt.Profile == "" {
					continue // reported by the config's own checks
				}
				if _, err := reg.Get(pt.Profile); err != nil {
					errs = append(errs, &config.Error{File: path, Key: fmt.Sprintf("piles[%d].ports[%d].profile", i, j), Msg: err.Error()})
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	cfg.Warnings = append(cfg.Warnings, budgetWarnings(cfg, LineBudgets(cfg, reg))...)
	return cfg, reg, nil
}

// rs485Of is a bus's RS-485 mode for the driver: RTS high while sending
// unless the config says otherwise.
func rs485Of(r *config.RS485) driver.RS485 {
	if r == nil || !r.Enabled {
		return driver.RS485{}
	}
	return driver.RS485{Enabled: true, RTSOnSend: r.RTSOnSend == nil || *r.RTSOnSend, RTSAfterSend: r.RTSAfterSend,
		RxDuringTx: r.RxDuringTx, DelayBeforeSend: r.DelayRTSBeforeSend, DelayAfterSend: r.DelayRTSAfterSend}
}

// NewTariff builds the configured tariff.
func NewTariff(cfg *config.Config) (*session.Tariff, error) {
	specs := make([]session.PeriodSpec, len(cfg.Tariff.Periods))
	for i, p := range cfg.Tariff.Periods {
		specs[i] = session.PeriodSpec{Start: p.Start, End: p.End, Type: p.Type, Electricity: p.Electricity, Service: p.Service}
	}
	return session.NewTariff(cfg.Tariff.TimeZone, specs)
}

// OpenDB opens the daemon's database in data_dir (internal/dbfile checks it
// first) with the store's measured bbolt settings.
func OpenDB(dataDir string, wait time.Duration) (*bbolt.DB, error) {
	opts := session.BoltOptions()
	opts.Timeout = wait
	return dbfile.Open(dataDir, opts)
}

// OpenDBReadOnly opens the daemon's database to read it only: nothing is
// written, so it works on a read-only mount.
func OpenDBReadOnly(dataDir string, wait time.Duration) (*bbolt.DB, error) {
	opts := session.BoltOptions()
	opts.Timeout = wait
	return dbfile.OpenReadOnly(dataDir, opts)
}

// Options are what the station takes besides its config.
type Options struct {
	Version string // the bridge's, in logs, metrics and device/sync
	// Notify speaks systemd's notify protocol; nil: the real one
	// (NOTIFY_SOCKET; a no-op without it).
	Notify func(state string) error
}

// Build opens the store and wires the station from a loaded config: buses,
// pollers and session machines, the outbox and its sender, device/sync,
// the status board. Nothing runs until Run.
func Build(cfg *config.Config, reg *meter.Registry, log zerolog.Logger, opts Options) (*Station, error) {
	a := &Station{cfg: cfg, log: log, profiles: reg, buses: map[string]*driver.Bus{}, notify: systemdNotify, version: opts.Version}
	if opts.Notify != nil {
		a.notify = opts.Notify
	}
	db, err := OpenDB(cfg.DataDir, 5*time.Second)
	if err != nil {
		return nil, err
	}
	a.db = db
	fail := func(err error) (*Station, error) {
		db.Close()
		return nil, err
	}
	if a.guard, err = dbfile.NewGuard(db, cfg.DataDir); err != nil {
		return fail(err)
	}
	tariff, err := NewTariff(cfg)
	if err != nil {
		return fail(err)
	}
	a.outbox, err = uploader.NewOutbox(db, cfg.Platform.OutboxMaxRecords, log.With().Str("part", "outbox").Logger())
	if err != nil {
		return fail(err)
	}
	sink := &uploader.Translator{Outbox: a.outbox, Ports: map[string]uploader.Port{}, LocalUserID: cfg.LocalUserID,
		WantsPlate: cfg.ParkingReduction, FinalWait: cfg.Plates.FinalWait, Log: log.With().Str("part", "outbox").Logger()}
	store, err := session.NewStore(db, sink, tariff.Loc, cfg.NodeID)
	if err != nil {
		return fail(err)
	}
	a.store = store
	if a.pages, err = newPages(tariff.Loc); err != nil {
		return fail(fmt.Errorf("status page: %w", err))
	}
	if a.attendantPages, err = newAttendantPages(); err != nil {
		return fail(fmt.Errorf("attendant page: %w", err))
	}
	a.gate.byAddr = map[string]*codeTries{}
	client, err := uploader.NewClient(uploader.ClientConfig{
		BaseURL: cfg.Platform.BaseURL, AppID: cfg.Platform.AppID, AppSecret: cfg.Platform.AppSecret,
		StationUUID: cfg.StationUUID, Timeout: cfg.Platform.Timeout,
	})
	if err != nil {
		return fail(err)
	}
	a.sender, err = uploader.NewSender(a.outbox, client, uploader.SenderConfig{
		Workers: config.SenderWorkers, Batch: config.SenderBatch,
		BaseBackoff: cfg.Platform.RetryBase, MaxBackoff: cfg.Platform.RetryMax,
	}, log.With().Str("part", "sender").Logger())
	if err != nil {
		return fail(err)
	}
	a.devsync, err = uploader.NewDeviceSync(client, cfg.Platform.DeviceSyncInterval, log.With().Str("part", "device_sync").Logger())
	if err != nil {
		return fail(err)
	}
	a.status = newStatusBoard(a.devsync, opts.Version)
	a.plates = newPlateHub(cfg, log.With().Str("part", "plates").Logger(), a.outbox.AttachPlate)

	for _, b := range cfg.Buses {
		dc := driver.Config{
			Name: b.Name, Device: b.Device,
			Serial: driver.SerialParams{Baud: b.Baud, DataBits: b.DataBits, Parity: b.Parity, StopBits: b.StopBits,
				LowLatency: driver.LowLatency(b.LowLatency), RS485: rs485Of(b.RS485)},
			Default:   driver.SlavePolicy{Timeout: b.Timeout, Retries: b.Retries, SwitchGap: b.SwitchGap},
			Slaves:    map[uint8]driver.SlavePolicy{},
			DeadAfter: config.DeadAfter, DeadBase: config.DeadBase, DeadMax: config.DeadMax,
		}
		for _, p := range cfg.Piles {
			if p.Bus != b.Name {
				continue
			}
			for _, pt := range p.Ports {
				pol := config.PolicyOf(b, pt)
				dc.Slaves[uint8(pt.Slave)] = driver.SlavePolicy{Timeout: pol.Timeout, Retries: pol.Retries, SwitchGap: pol.SwitchGap}
			}
		}
		bus, err := driver.New(dc, log)
		if err != nil {
			return fail(err)
		}
		a.buses[b.Name] = bus
	}
	for _, p := range cfg.Piles {
		for _, pt := range p.Ports {
			prof, err := reg.Get(pt.Profile)
			if err != nil { // Load checked it; a registry changed since is no reason to dereference nil
				return fail(fmt.Errorf("port %s: %w", config.PortKey(p.DeviceNo, pt.PortNo), err))
			}
			ratios := meter.Ratios{PT: pt.PT, CT: pt.CT}
			key := config.PortKey(p.DeviceNo, pt.PortNo)
			sink.Ports[key] = uploader.Port{DeviceNo: p.DeviceNo, DeviceType: p.DeviceType, PortNo: pt.PortNo, EnergyCode: p.EnergyCode}
			pc := session.PortConfig{
				RatedPowerW: p.RatedPowerW, ProgressInterval: cfg.Platform.ProgressInterval,
				StartTimeout: cfg.Session.StartTimeout, OfflineAfter: cfg.Session.OfflineAfter,
				OfflineClose: cfg.Session.OfflineClose, HoldPolls: cfg.Session.HoldPolls,
				StartPowerW: pt.MeterOnly.StartPowerW, StartFor: pt.MeterOnly.StartFor,
				StopPowerW: pt.MeterOnly.StopPowerW, StopFor: pt.MeterOnly.StopFor,
				Plates: cfg.Plates.VINs, WrapMWh: prof.EnergyWrapMWh(ratios),
			}
			plog := log.With().Str("port", key).Logger()
			m, err := session.NewMachine(pc, tariff, store.NextOrder, plog)
			if err != nil {
				return fail(fmt.Errorf("port %s: %w", key, err))
			}
			port := &session.Port{
				Key:          key,
				Machine:      m,
				Poller:       meter.NewPoller(a.buses[p.Bus], uint8(pt.Slave), prof, ratios),
				Interval:     pt.PollInterval,
				PersistEvery: cfg.Session.PersistInterval,
				Plates:       a.plates,
			}
			a.ports = append(a.ports, port)
			if a.byBus == nil {
				a.byBus = map[string][]*session.Port{}
			}
			a.byBus[p.Bus] = append(a.byBus[p.Bus], port)
			a.status.addPort(key, p, pt)
		}
	}
	a.clock = session.Clock{MinDate: cfg.MinDate(), SyncedFile: cfg.Clock.SyncedFile}
	a.runner = session.NewRunner(store, a.clock, a.status.observe, log.With().Str("part", "session").Logger())
	if err := a.runner.Restore(a.ports); err != nil {
		return fail(err)
	}
	return a, nil
}

// lines are the ports grouped by bus, in the config's order of buses.
func (a *Station) lines() [][]*session.Port {
	var out [][]*session.Port
	for _, b := range a.cfg.Buses {
		if ps := a.byBus[b.Name]; len(ps) > 0 {
			out = append(out, ps)
		}
	}
	return out
}

// Run runs the station until ctx ends: every bus, port, the sender, the
// local API, the watchdog; then it stops them and returns.
func (a *Station) Run(ctx context.Context) error {
	a.started = time.Now()
	counts, err := a.outbox.Counts()
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	a.log.Info().Str("version", a.version).Str("station", a.cfg.StationUUID).Str("platform", a.cfg.Platform.BaseURL).
		Int("buses", len(a.buses)).Int("ports", len(a.ports)).Int64("outbox_pending", counts.Pending).Msg("pilebridge starting")
	if counts.Parked > 0 {
		a.log.Warn().Int64("parked", counts.Parked).Time("oldest_parked", counts.OldestParked).
			Msg("records rejected by the platform are parked: fix the cause, then `pilebridge outbox retry --parked`")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	goRun := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	for _, b := range a.buses {
		goRun(func() { b.Run(ctx) })
	}
	goRun(func() { a.sender.Run(ctx) })
	goRun(func() { a.devsync.Run(ctx) })
	goRun(func() { a.pruneLedger(ctx) })
	goRun(func() { a.backups(ctx) })
	goRun(func() { a.watchFiles(ctx) })
	goRun(func() { a.watchdog(ctx, a.notify, a.alive) })
	for _, line := range a.lines() {
		goRun(func() { a.runner.RunLine(ctx, line) })
	}
	var srv *http.Server
	if a.cfg.Listen != "" {
		ln, err := net.Listen("tcp", a.cfg.Listen)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("listen %s: %w", a.cfg.Listen, err)
		}
		token, err := ensureToken(a.cfg)
		if err != nil {
			ln.Close()
			cancel()
			wg.Wait()
			return err
		}
		srv = &http.Server{Handler: newGuard(a.cfg, token, a.handler()), ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout: readTimeout, WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes,
			ErrorLog: stdlog.New(io.Discard, "", 0)} // a flood's broken requests are not the log's business
		a.conns = newCapListener(ln, maxConnsPerAddr, maxConns)
		goRun(func() {
			if err := srv.Serve(a.conns); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error().Err(err).Msg("status server")
			}
		})
		// the address bound (a configured port 0 picks a free one), for the
		// CLI and for tests that must not race for a port
		addrFile := ListenAddrFile(a.cfg)
		if err := safefile.Write(addrFile, []byte(ln.Addr().String()+"\n"), 0o600); err != nil {
			a.log.Warn().Err(err).Str("file", addrFile).Msg("the listen address could not be written down")
		}
		defer os.Remove(addrFile)
		a.log.Info().Str("listen", ln.Addr().String()).Msg("status and metrics served")
	}
	// the stored sessions were restored in build; every loop now runs
	if err := a.notify(daemon.SdNotifyReady); err != nil {
		a.log.Warn().Err(err).Msg("systemd notify")
	}
	<-ctx.Done()
	a.log.Info().Msg("stopping")
	_ = a.notify(daemon.SdNotifyStopping)
	if srv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		scancel()
	}
	wg.Wait()
	if since, _ := a.filesProblem(); !since.IsZero() {
		// the copy at the path takes the last commits before the restart
		a.checkFiles(time.Now(), faillog.New(a.log, "the database path could not be repaired", 0))
	}
	if n, err := a.outbox.Pending(); err != nil {
		a.log.Error().Err(err).Msg("stopped; the outbox could not be read")
	} else {
		a.log.Info().Int64("outbox_pending", n).Msg("stopped")
	}
	return nil
}

// Close closes the station's database; call it after Run has returned.
func (a *Station) Close() error { return a.db.Close() }

// ListenAddrFile is where the running daemon writes the address its local
// API listens on (data_dir/listen.addr): the CLI finds it there when the
// configured port is 0.
func ListenAddrFile(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "listen.addr") }
