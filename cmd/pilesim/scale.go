package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/driver"
	"pilebridge/internal/backoff"
	"pilebridge/internal/blockdev"
	"pilebridge/internal/cli"
	"pilebridge/internal/procmem"
	"pilebridge/internal/station"
	"pilebridge/meter"
	"pilebridge/simulator"
)

// The targets (docs/bench.md): CPU as a ratio to the bare client measured
// in the same run (issue 30), bytes to the device (issue 11), memory.
const (
	targetIdleRatio         = 1.2
	targetChargingRatio     = 1.3
	targetDeviceBps         = 300_000
	targetRSSBytes          = 25_000_000
	targetOnePortWorkingSet = 12_000_000
	targetExchPerPoll       = 1.00
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture the bridge runs on.
const clockTicks = 100

type scaleOpts struct {
	bridge, profile, work      string
	pprof                      string // directory for the bridge's profiles
	lines, slaves              int
	poll, idle, charge, settle time.Duration
	powerW                     int64
}

// cmdScale measures the bridge at station size: lines × slaves simulated
// piles on Modbus TCP loopback lines, the platform stand-in, and the bridge
// as a child with its data on a block device of its own. It measures an
// idle phase and an all-charging phase, then stops every session and checks
// each final bill against its meter.
func cmdScale(ctx context.Context, args []string, out io.Writer, log zerolog.Logger) error {
	fs := cli.Flags("scale", "pilesim scale [--bridge BIN] [--lines 16] [--slaves 16] [--idle 45s] [--charge 45s]",
		"The bridge at station size over Modbus TCP loopback: CPU, peak RSS, bytes to the device and exchanges per poll, idle and all charging, against the targets in docs/bench.md; every bill checked.", os.Stdout)
	var o scaleOpts
	fs.StringVar(&o.bridge, "bridge", "./dist/pilebridge", "pilebridge binary")
	fs.StringVar(&o.profile, "profile", "ref-ac", "profile of every pile")
	fs.StringVar(&o.work, "work", "", "work directory (default: a new temporary one)")
	fs.IntVar(&o.lines, "lines", 16, "Modbus TCP lines (gateways)")
	fs.IntVar(&o.slaves, "slaves", 16, "piles per line")
	fs.DurationVar(&o.poll, "poll", time.Second, "bridge poll_interval")
	fs.DurationVar(&o.idle, "idle", 45*time.Second, "idle phase measured")
	fs.DurationVar(&o.charge, "charge", 45*time.Second, "charging phase measured")
	fs.DurationVar(&o.settle, "settle", 10*time.Second, "unmeasured time before each phase")
	fs.Int64Var(&o.powerW, "power", 7000, "charging power per pile, W")
	fs.StringVar(&o.pprof, "pprof", "", "write the bridge's CPU profile of each phase and its heap and allocations at the end of charging to this `directory` (figures not judged: profiling costs CPU)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.lines < 1 || o.slaves < 1 || o.slaves > 247 {
		return fmt.Errorf("scale: --lines ≥ 1 and 1 ≤ --slaves ≤ 247")
	}
	work := o.work
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "pilebridge-scale-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}

	// Storage: an ext4 image of its own, so the device's counters hold only
	// the bridge's writes; without root, the device under work, shared.
	dataDir, dev, devNote := filepath.Join(work, "data"), blockdev.Device{}, ""
	if l, err := blockdev.MountLoop(ctx, work, 512); err == nil {
		defer func() {
			if err := l.Close(); err != nil {
				log.Error().Err(err).Msg("unmount the bench image")
			}
		}()
		dataDir, dev, devNote = filepath.Join(l.Dir, "data"), l.Device, "ext4 image on "+l.Device.Name+", journal included"
	} else if dev, err = blockdev.Of(work); err == nil {
		devNote = dev.Name + ", shared with the rest of the machine (no loop device: " + err.Error() + ")"
	} else {
		devNote = "not measured: " + err.Error()
	}

	rig, err := newScaleRig(ctx, o, log)
	if err != nil {
		return err
	}
	defer rig.close()

	// The bare client runs beside the bridge, on the same lines, and its
	// CPU is measured over the same windows: the machine's cost of the same
	// work drifts by up to 75 % from one minute to the next here (a floor
	// measured before the bridge and after it: 0.78 and 1.38 % of a core),
	// and the two together use a few percent of one of two cores.
	fl, err := rig.startFloor(o)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	defer fl.stop()

	var pprofAddr string
	if o.pprof != "" {
		if err := os.MkdirAll(o.pprof, 0o755); err != nil {
			return err
		}
		if pprofAddr, err = freeAddr(); err != nil {
			return err
		}
	}
	listen, err := freeAddr()
	if err != nil {
		return err
	}
	br, err := startScaleBridge(o.bridge, work, "bridge", rig.config(dataDir, listen, o.poll, nil), pprofAddr)
	if err != nil {
		return err
	}
	defer br.stop()
	ports := o.lines * o.slaves
	fmt.Fprintf(out, "scale: %d lines × %d piles = %d ports over Modbus TCP loopback, %s, poll %s, bridge pid %d\n",
		o.lines, o.slaves, ports, o.profile, o.poll, br.cmd.Process.Pid)
	fmt.Fprintf(out, "scale: data on %s\n", devNote)

	m := &meas{pid: br.cmd.Process.Pid, floorPid: fl.Process.Pid, dev: dev, metrics: station.NewClientAt(listen), ports: ports, pprofAddr: pprofAddr, pprofDir: o.pprof}
	if err := waitUntil(ctx, 30*time.Second, func() bool { n, _ := m.exchanges(); return n >= float64(ports) }); err != nil {
		return fmt.Errorf("bridge did not poll every port: %w (log: %s)", err, br.log.Name())
	}

	if err := backoff.Sleep(ctx, o.settle); err != nil {
		return err
	}
	idle, err := m.window(ctx, "idle", o.idle)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "scale: idle measured; starting %d sessions\n", ports)

	if err := rig.startAll(ctx, o.powerW); err != nil {
		return err
	}
	if err := backoff.Sleep(ctx, o.settle); err != nil {
		return err
	}
	charging, err := m.window(ctx, "charging", o.charge)
	if err != nil {
		return err
	}
	if o.pprof != "" {
		for _, p := range []string{"heap", "allocs"} {
			if err := m.profile(ctx, p, "", p+".pprof", time.Minute); err != nil {
				return err
			}
		}
	}
	rss, err := procmem.PeakRSS(m.pid)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "scale: charging measured; stopping every session\n")
	exact, err := rig.stopAll(ctx)
	if err != nil {
		return err
	}
	br.stop()
	fl.stop()

	fmt.Fprintf(out, "scale: one port charging, for its steady working set and RSS\n")
	oneRSS, err := rig.onePort(ctx, o, work)
	if err != nil {
		return fmt.Errorf("one port: %w", err)
	}

	fmt.Fprintf(out, "\n| phase | bridge CPU, %% of one core | × the floor | device bytes/s | device KiB per port per reading | exchanges per pile per poll |\n|---|---|---|---|---|---|\n")
	for _, r := range []struct {
		name string
		w    window
	}{{"idle", idle}, {"all charging", charging}} {
		perReading := "–"
		if r.name != "idle" {
			perReading = fmt.Sprintf("%.2f", r.w.deviceBps*o.poll.Seconds()/float64(ports)/1024)
		}
		ratio := "–" // a floor too small to measure (a handful of ports)
		if r.w.floorPct > 0 {
			ratio = fmt.Sprintf("%.2f", r.w.cpuPct/r.w.floorPct)
		}
		fmt.Fprintf(out, "| %s | %.2f | %s | %s | %s | %.2f |\n", r.name, r.w.cpuPct, ratio, bytesPerSec(r.w.deviceBps, dev), perReading, r.w.exchPerPoll(o.poll))
	}
	fmt.Fprintf(out, "\npeak RSS %.1f MB at %d ports; bills: %d of %d finals equal to their meter's delta\n", float64(rss)/1e6, ports, exact, ports)
	fmt.Fprintf(out, "1 port charging, steady: working set %.1f MB (its own pages %.1f MB, file pages touched in %s %.1f MB); RSS %.1f MB (file pages mapped %.1f MB, most never touched: the kernel maps page-cached file around each fault)\n",
		float64(oneRSS.WorkingSet())/1e6, float64(oneRSS.Anon)/1e6, steadyWindow, float64(oneRSS.FileTouched)/1e6, float64(oneRSS.RSS)/1e6, float64(oneRSS.File)/1e6)
	fmt.Fprintf(out, "I/O floor: %.2f %% of one core idle, %.2f %% charging, for the same reads on the same lines by a bare client beside the bridge in the same windows (pilesim floor: no decoding, sessions, storage or metrics); the bridge above it: %.2f %% idle, %.2f %% charging\n\n",
		idle.floorPct, charging.floorPct, idle.cpuPct-idle.floorPct, charging.cpuPct-charging.floorPct)
	if o.pprof != "" {
		fmt.Fprintf(out, "profiles in %s (go tool pprof -top FILE); the bridge was profiled, so its figures are not judged\n", o.pprof)
		if exact != ports {
			return fmt.Errorf("%d of %d bills differ from their meter", ports-exact, ports)
		}
		return nil
	}

	var missed []string
	check := func(ok bool, what string) {
		verdict := "met"
		if !ok {
			verdict, missed = "MISSED", append(missed, what)
		}
		fmt.Fprintf(out, "target %-44s %s\n", what+":", verdict)
	}
	check(idle.cpuPct <= targetIdleRatio*idle.floorPct, fmt.Sprintf("CPU idle ≤ %.1f× the floor", targetIdleRatio))
	check(charging.cpuPct <= targetChargingRatio*charging.floorPct, fmt.Sprintf("CPU all charging ≤ %.1f× the floor", targetChargingRatio))
	if dev.Name != "" {
		check(charging.deviceBps <= targetDeviceBps, "device all charging ≤ 0.3 MB/s")
	}
	check(rss <= targetRSSBytes, fmt.Sprintf("peak RSS ≤ %.0f MB", targetRSSBytes/1e6))
	check(oneRSS.WorkingSet() <= targetOnePortWorkingSet, fmt.Sprintf("1 port steady working set ≤ %.0f MB", targetOnePortWorkingSet/1e6))
	check(idle.exchPerPoll(o.poll) >= targetExchPerPoll-0.01 && charging.exchPerPoll(o.poll) >= targetExchPerPoll-0.01 &&
		charging.exchPerPoll(o.poll) <= targetExchPerPoll+0.01, "exchanges per pile poll 1.00")
	if exact != ports {
		return fmt.Errorf("%d of %d bills differ from their meter", ports-exact, ports)
	}
	if len(missed) > 0 {
		return fmt.Errorf("missed: %s", strings.Join(missed, "; "))
	}
	return nil
}

func bytesPerSec(v float64, dev blockdev.Device) string {
	if dev.Name == "" {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

// floorClient is `pilesim floor` on the rig's lines.
type floorClient struct{ *exec.Cmd }

func (r *scaleRig) startFloor(o scaleOpts) (*floorClient, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"floor", "--slaves", strconv.Itoa(o.slaves), "--fc", strconv.Itoa(int(r.block.FC)),
		"--addr", strconv.Itoa(int(r.block.Addr)), "--qty", strconv.Itoa(int(r.block.Count)), "--interval", o.poll.String()}
	for _, ln := range r.lines {
		args = append(args, ln.Addr().String())
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &floorClient{cmd}, nil
}

// stop ends the client; once is enough, more do nothing.
func (f *floorClient) stop() {
	if f.ProcessState == nil {
		_ = f.Process.Signal(syscall.SIGTERM)
		_ = f.Wait()
	}
}

// scaleRig is the simulated station: lines of piles and the stand-in.
type scaleRig struct {
	lines   []net.Listener
	piles   [][]*simulator.Pile
	startWh [][]int64
	plat    *simulator.Platform
	http    *http.Server
	platURL string
	profile string
	block   driver.Block // the profile's first read, for the floor
}

func newScaleRig(ctx context.Context, o scaleOpts, log zerolog.Logger) (*scaleRig, error) {
	reg, err := meter.LoadRegistry("")
	if err != nil {
		return nil, err
	}
	prof, err := reg.Get(o.profile)
	if err != nil {
		return nil, err
	}
	if len(prof.Blocks()) == 0 {
		return nil, fmt.Errorf("profile %s reads nothing", o.profile)
	}
	r := &scaleRig{profile: o.profile, block: prof.Blocks()[0]}
	for i := 0; i < o.lines; i++ {
		srv := simulator.NewServer(log.Level(zerolog.WarnLevel))
		var row []*simulator.Pile
		for s := 1; s <= o.slaves; s++ {
			sl := srv.AddSlave(uint8(s))
			p, err := simulator.NewPile(prof, meter.Ratios{}, sl.Bank, int64(100_000*(i+1)+s))
			if err != nil {
				return nil, err
			}
			sl.Source = p // energy integrated at the instant of each read
			row = append(row, p)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.close()
			return nil, err
		}
		go srv.ServeTCP(ln, false)
		r.lines, r.piles = append(r.lines, ln), append(r.piles, row)
	}
	if r.plat, err = simulator.NewPlatform("op_scale", "scale-secret", ""); err != nil {
		r.close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.close()
		return nil, err
	}
	r.http = &http.Server{Handler: r.plat, ReadHeaderTimeout: 5 * time.Second}
	go r.http.Serve(ln)
	r.platURL = "http://" + ln.Addr().String()
	return r, nil
}

func (r *scaleRig) close() {
	for _, ln := range r.lines {
		ln.Close()
	}
	if r.http != nil {
		r.http.Close()
	}
	if r.plat != nil {
		r.plat.Close()
	}
}

// config is the bridge's: one TCP bus per line, one pile of one port per
// slave, the defaults for everything that is measured (persist_interval 0:
// every reading stored). only, if set, keeps the piles it says yes to.
func (r *scaleRig) config(dataDir, listen string, poll time.Duration, only func(line, slave int) bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a
data_dir: %s
listen: %s
poll_interval: %s
log: {level: warn, format: json}
platform:
  base_url: %s
  app_id: op_scale
  app_secret: scale-secret
tariff:
  time_zone: Asia/Shanghai
  periods:
    - {start: "00:00", end: "24:00", type: flat, electricity: "0.6500", service: "0.6000"}
buses:
`, dataDir, listen, poll, r.platURL)
	used := func(i int) bool {
		for s := range r.piles[i] {
			if only == nil || only(i, s) {
				return true
			}
		}
		return false
	}
	for i, ln := range r.lines {
		if used(i) {
			fmt.Fprintf(&b, "  - {name: gw%02d, device: \"tcp://%s\", timeout: 500ms}\n", i+1, ln.Addr())
		}
	}
	b.WriteString("piles:\n")
	for i, row := range r.piles {
		for s := range row {
			if only != nil && !only(i, s) {
				continue
			}
			fmt.Fprintf(&b, "  - {device_no: SCALE%02d%03d, energy_code: CN_AC, bus: gw%02d, rated_power_w: 22000, ports: [{port_no: \"1\", slave: %d, profile: %s}]}\n",
				i+1, s+1, i+1, s+1, r.profile)
		}
	}
	return b.Bytes()
}

func (r *scaleRig) each(f func(i, s int, p *simulator.Pile) error) error {
	for i, row := range r.piles {
		for s, p := range row {
			if err := f(i, s, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// startAll plugs every pile in, starts it and sets it charging.
func (r *scaleRig) startAll(ctx context.Context, powerW int64) error {
	return r.start(ctx, powerW, r.each)
}

// start plugs in, starts and sets charging the piles that each visits.
func (r *scaleRig) start(ctx context.Context, powerW int64, each func(func(i, s int, p *simulator.Pile) error) error) error {
	r.startWh = make([][]int64, len(r.piles))
	err := each(func(i, s int, p *simulator.Pile) error {
		wh, err := p.MeterWh()
		r.startWh[i] = append(r.startWh[i], wh)
		if err != nil {
			return err
		}
		return p.Update(func(m *meter.Reading) {
			m.Status, m.VIN = meter.StatusPlugged, fmt.Sprintf("LSCALE%02d%03d000000", i+1, s+1)
		})
	})
	if err != nil {
		return err
	}
	steps := []func(m *meter.Reading){
		func(m *meter.Reading) { m.Status, m.SessionCount = meter.StatusStarting, m.SessionCount+1 },
		func(m *meter.Reading) {
			m.Status, m.PowerW = meter.StatusCharging, powerW
			m.CurrentCA = powerW * 1000 / max(m.VoltageDV, 1)
		},
	}
	for _, step := range steps {
		if err := backoff.Sleep(ctx, 2*time.Second); err != nil {
			return err
		}
		if err := each(func(_, _ int, p *simulator.Pile) error { return p.Update(step) }); err != nil {
			return err
		}
	}
	return nil
}

// stopAll finishes every session and waits for the finals; it returns how
// many equal their meter's delta (what the register shows, truncated to its
// step, end minus start).
func (r *scaleRig) stopAll(ctx context.Context) (exact int, err error) {
	if err := r.each(func(_, _ int, p *simulator.Pile) error {
		return p.Update(func(m *meter.Reading) { m.Status, m.PowerW, m.CurrentCA, m.StopCode = meter.StatusFinished, 0, 0, 2 })
	}); err != nil {
		return 0, err
	}
	want := map[string]int64{}
	if err := r.each(func(i, s int, p *simulator.Pile) error {
		wh, err := p.MeterWh()
		want[fmt.Sprintf("SCALE%02d%03d", i+1, s+1)] = wh - r.startWh[i][s]
		return err
	}); err != nil {
		return 0, err
	}
	finals := map[string]int64{}
	err = waitUntil(ctx, 90*time.Second, func() bool {
		for _, rec := range r.plat.Received(simulator.PathReplenish) {
			var m struct {
				DeviceNo string  `json:"device_no"`
				State    int     `json:"state"`
				Quantity float64 `json:"quantity"`
			}
			if json.Unmarshal(rec.Body, &m) == nil && m.State == 3 {
				finals[m.DeviceNo] = int64(m.Quantity)
			}
		}
		return len(finals) == len(want)
	})
	for dev, wh := range want {
		if q, ok := finals[dev]; ok && q == wh {
			exact++
		}
	}
	if err != nil {
		return exact, fmt.Errorf("%d of %d finals arrived: %w", len(finals), len(want), err)
	}
	return exact, nil
}

// scaleBridge is a pilebridge run as a child, its output in a log file.
type scaleBridge struct {
	cmd  *exec.Cmd
	log  *os.File
	done bool
}

// startScaleBridge writes config as work/NAME.yaml and runs the bridge on
// it, logging to work/NAME.log; with pprofAddr it serves its profiles there.
func startScaleBridge(bin, work, name string, config []byte, pprofAddr string) (*scaleBridge, error) {
	cfgPath := filepath.Join(work, name+".yaml")
	if err := os.WriteFile(cfgPath, config, 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(work, name+".log"))
	if err != nil {
		return nil, err
	}
	args := []string{"run", "--config", cfgPath}
	if pprofAddr != "" {
		args = append(args, "--pprof", pprofAddr)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start bridge: %w", err)
	}
	return &scaleBridge{cmd: cmd, log: logFile}, nil
}

func (b *scaleBridge) stop() {
	if !b.done {
		b.done = true
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		_ = b.cmd.Wait()
		b.log.Close()
	}
}

// onePort runs the bridge on the first pile alone, charging, and returns
// its resident memory and working set once steady: the smallest station's
// figures.
func (r *scaleRig) onePort(ctx context.Context, o scaleOpts, work string) (procmem.Mem, error) {
	var m procmem.Mem
	listen, err := freeAddr()
	if err != nil {
		return m, err
	}
	first := func(i, s int) bool { return i == 0 && s == 0 }
	br, err := startScaleBridge(o.bridge, work, "one-port", r.config(filepath.Join(work, "one-port-data"), listen, o.poll, first), "")
	if err != nil {
		return m, err
	}
	defer br.stop()
	only := func(f func(i, s int, p *simulator.Pile) error) error { return f(0, 0, r.piles[0][0]) }
	if err := backoff.Sleep(ctx, 3*time.Second); err != nil {
		return m, err
	}
	if err := r.start(ctx, o.powerW, only); err != nil {
		return m, err
	}
	pid := br.cmd.Process.Pid
	// Warmed up, then a window long enough for every periodic task (the
	// progress upload is once a minute) to touch what it needs.
	if err := backoff.Sleep(ctx, 30*time.Second); err != nil {
		return m, err
	}
	if err := procmem.ClearRefs(pid); err != nil {
		return m, err
	}
	if err := backoff.Sleep(ctx, steadyWindow); err != nil {
		return m, err
	}
	return procmem.Read(pid)
}

// steadyWindow: the 1-port working set is what the bridge touches in it.
const steadyWindow = 65 * time.Second

// meas reads the bridge's figures: CPU from /proc, exchanges from its
// metrics, bytes from the block device.
type meas struct {
	pid      int
	floorPid int // the bare client beside it
	dev      blockdev.Device
	metrics  *station.Client
	ports    int

	pprofAddr, pprofDir string // when set, each window's CPU profile is kept
}

type window struct {
	seconds, cpuPct, floorPct, deviceBps, exchPerPileSec float64
}

func (w window) exchPerPoll(poll time.Duration) float64 { return w.exchPerPileSec * poll.Seconds() }

func (m *meas) window(ctx context.Context, phase string, d time.Duration) (window, error) {
	var profiled chan error
	if m.pprofAddr != "" {
		profiled = make(chan error, 1)
		go func() {
			profiled <- m.profile(ctx, "profile", fmt.Sprintf("seconds=%d", int(d.Seconds())), "cpu-"+phase+".pprof", d+time.Minute)
		}()
		defer func() {
			if err := <-profiled; err != nil {
				fmt.Fprintf(os.Stderr, "scale: %s CPU profile: %v\n", phase, err)
			}
		}()
	}
	cpu0, err := procmem.CPUTicks(m.pid)
	if err != nil {
		return window{}, err
	}
	floor0, err := procmem.CPUTicks(m.floorPid)
	if err != nil {
		return window{}, fmt.Errorf("floor: %w", err)
	}
	ex0, err := m.exchanges()
	if err != nil {
		return window{}, err
	}
	var dev0 int64
	if m.dev.Name != "" {
		if dev0, err = m.dev.Written(); err != nil {
			return window{}, err
		}
	}
	t0 := time.Now()
	if err := backoff.Sleep(ctx, d); err != nil {
		return window{}, err
	}
	cpu1, err := procmem.CPUTicks(m.pid)
	if err != nil {
		return window{}, err
	}
	floor1, err := procmem.CPUTicks(m.floorPid)
	if err != nil {
		return window{}, fmt.Errorf("floor: %w", err)
	}
	ex1, err := m.exchanges()
	if err != nil {
		return window{}, err
	}
	w := window{seconds: time.Since(t0).Seconds()}
	if m.dev.Name != "" {
		dev1, err := m.dev.Written()
		if err != nil {
			return window{}, err
		}
		w.deviceBps = float64(dev1-dev0) / w.seconds
	}
	w.cpuPct = 100 * float64(cpu1-cpu0) / clockTicks / w.seconds
	w.floorPct = 100 * float64(floor1-floor0) / clockTicks / w.seconds
	w.exchPerPileSec = (ex1 - ex0) / float64(m.ports) / w.seconds
	return w, nil
}

// profile saves the bridge's profile kind (profile, heap, allocs), asked
// with query, in the profile directory as name.
func (m *meas) profile(ctx context.Context, kind, query, name string, wait time.Duration) error {
	data, err := station.NewClientAt(m.pprofAddr).Profile(ctx, kind, query, wait)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(m.pprofDir, name), data, 0o644)
}

// exchanges sums pilebridge_modbus_exchanges_total with outcome="ok".
func (m *meas) exchanges() (float64, error) {
	text, err := m.metrics.Metrics()
	if err != nil {
		return 0, err
	}
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "pilebridge_modbus_exchanges_total{") || !strings.Contains(line, `outcome="ok"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitUntil(ctx context.Context, limit time.Duration, ok func() bool) error {
	end := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(end) {
			return fmt.Errorf("not within %s", limit)
		}
		if err := backoff.Sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}
