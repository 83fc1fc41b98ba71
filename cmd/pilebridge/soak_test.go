package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"pilebridge/internal/billcheck"
	"pilebridge/meter"
	"pilebridge/simulator"
)

// TestSoak runs the real daemon binary against simulated piles on a pty and
// a Modbus TCP gateway, with integer-Wh, 0.01 kWh and float32 kWh registers,
// pile ports and meter-only ports, kills it with SIGKILL at random moments
// (and at session edges) and restarts it, while the platform stand-in
// fails now and then. Every session is then compared with the simulator's
// ground truth under the rules of docs/billing.md (internal/billcheck).
//
// PILEBRIDGE_SOAK sets how long piles start new sessions (default 60s;
// `make soak` runs 10m). Skipped with -short.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	t.Parallel() // beside TestLineSoak: both mostly wait on real time
	d := 60 * time.Second
	if v := os.Getenv("PILEBRIDGE_SOAK"); v != "" {
		var err error
		d, err = time.ParseDuration(v)
		require.NoError(t, err, "PILEBRIDGE_SOAK")
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("PILEBRIDGE_SOAK_SEED"); v != "" {
		fmt.Sscan(v, &seed)
	}
	t.Logf("soak: %s, seed %d", d, seed)
	s := newSoak(t, seed)
	res := s.run(d)
	t.Logf("\n%s", res)
	require.Zero(t, res.wrong+res.lost+res.duplicated+res.extra, "every bill exact, none lost, duplicated or invented (seed %d)", seed)
	require.Positive(t, res.exact)
}

// soakPort is one simulated device and the sessions its script lived.
type soakPort struct {
	key, profile string
	pile         *simulator.Pile
	isPile       bool
	rules        billcheck.Rules
	minW, maxW   int64

	mu       sync.Mutex
	sessions []soakSession
	restarts []int64 // the log Seq at each kill
}

type soakSession struct {
	vin                        string
	startSeq, chargeSeq        int64
	endSeq, endMWh             int64
	startAt, chargeAt, endedAt time.Time
}

type soak struct {
	t      *testing.T
	dir    string
	config string
	plat   *simulator.Platform
	listen string
	ports  []*soakPort
	rng    *rand.Rand
	rngMu  sync.Mutex
	edges  chan struct{} // a script changed phase: the killer may strike now
	kills  int
}

func (s *soak) randDur(lo, hi time.Duration) time.Duration {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)+1))
}

func (s *soak) randInt(lo, hi int64) int64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return lo + s.rng.Int64N(hi-lo+1)
}

func newSoak(t *testing.T, seed uint64) *soak {
	dir := t.TempDir()
	s := &soak{t: t, dir: dir, rng: rand.New(rand.NewPCG(seed, seed>>1|1)), edges: make(chan struct{}, 1)}
	reg, err := meter.LoadRegistry("")
	require.NoError(t, err)

	// a pty line with two pile ports and a float32 meter; a TCP gateway with
	// two 0.01 kWh meters and a pile
	type dev struct {
		bus                 string
		slave               uint8
		profile             string
		isPile              bool
		shows               func(int64) int64
		wrap                int64
		minW, maxW, ratedW  int64
		deviceNo, energyKey string
	}
	devs := []dev{
		{"l1", 1, "ref-ac", true, billcheck.Step(1000), 1 << 32 * 1000, 3000, 7000, 7400, "SOAKAC", "CN_AC"},
		{"l1", 2, "ref-dc", true, billcheck.Step(1000), 1 << 32 * 1000, 30000, 120000, 150000, "SOAKDC", "CN_DC"},
		{"l1", 3, "sdm120", false, billcheck.Float32KWh(1), 0, 20000, 80000, 100000, "SOAKF32", "CN_DC"},
		{"g1", 1, "adl400", false, billcheck.Step(10_000), 1 << 32 * 10_000, 40000, 150000, 160000, "SOAKADL", "CN_DC"},
		{"g1", 2, "abb-b23", false, billcheck.Step(10_000), 0, 40000, 150000, 160000, "SOAKABB", "CN_DC"},
		{"g1", 3, "ref-dc", true, billcheck.Step(1000), 1 << 32 * 1000, 30000, 120000, 150000, "SOAKGW", "CN_DC"},
	}
	servers := map[string]*simulator.Server{"l1": simulator.NewServer(zerolog.Nop()), "g1": simulator.NewServer(zerolog.Nop())}
	var piles strings.Builder
	for _, d := range devs {
		prof, err := reg.Get(d.profile)
		require.NoError(t, err)
		sl := servers[d.bus].AddSlave(d.slave)
		p, err := simulator.NewPile(prof, meter.Ratios{}, sl.Bank, 700_000+int64(d.slave)*1000)
		require.NoError(t, err)
		p.LogReads()
		sl.Source = p
		s.ports = append(s.ports, &soakPort{key: d.deviceNo + "/1", profile: d.profile, pile: p, isPile: d.isPile,
			minW: d.minW, maxW: d.maxW,
			rules: billcheck.Rules{Pile: d.isPile, WrapMWh: d.wrap, Shows: d.shows, StartFor: time.Second, MaxGap: 5 * time.Second}})
		port := fmt.Sprintf(`{port_no: "1", slave: %d, profile: %s, poll_interval: 200ms`, d.slave, d.profile)
		if !d.isPile {
			port += `, meter_only: {start_power_w: 500, start_for: 1s, stop_power_w: 100, stop_for: 2s}`
		}
		fmt.Fprintf(&piles, "  - {device_no: %s, energy_code: %s, bus: %s, rated_power_w: %d, ports: [%s}]}\n", d.deviceNo, d.energyKey, d.bus, d.ratedW, port)
	}
	link := filepath.Join(dir, "ttyV0")
	line, err := simulator.OpenPty(link)
	require.NoError(t, err)
	t.Cleanup(func() { line.Close() })
	go servers["l1"].AttachPty(line)
	gw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { gw.Close() })
	go servers["g1"].ServeTCP(gw, false)

	s.plat, err = simulator.NewPlatform("op_soak", "soak-secret", "")
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &http.Server{Handler: s.plat}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	s.listen = freeAddr(t)
	cfg := fmt.Sprintf(`station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a
data_dir: %s/data
listen: %s
log: {level: info, format: json}
platform:
  base_url: http://%s
  app_id: op_soak
  app_secret: soak-secret
  progress_interval: 2s
  timeout: 1s
  retry_base: 100ms
  retry_max: 1s
tariff:
  periods:
    - {start: "00:00", end: "12:00", type: valley, electricity: "0.3123", service: "0.4"}
    - {start: "12:00", end: "24:00", type: peak, electricity: "1.0511", service: "0.8"}
session: {offline_after: 5s, hold_polls: 3}
buses:
  - {name: l1, device: %s, baud: 115200, timeout: 200ms, retries: 1}
  - {name: g1, device: "tcp://%s", timeout: 200ms, retries: 1}
piles:
%s`, dir, s.listen, ln.Addr(), link, gw.Addr(), piles.String())
	s.config = filepath.Join(dir, "pilebridge.yaml")
	require.NoError(t, os.WriteFile(s.config, []byte(cfg), 0o600))
	return s
}

func (s *soak) startBridge() *bridge {
	st := &testStation{t: s.t, dir: s.dir, config: s.config}
	return st.startBridge()
}

// edge tells the killer a phase changed.
func (s *soak) edge() {
	select {
	case s.edges <- struct{}{}:
	default:
	}
}

func (s *soak) change(p *soakPort, note string, f func(r *meter.Reading)) (int64, int64) {
	seq, err := p.pile.Change(note, f)
	require.NoError(s.t, err)
	s.edge()
	return seq, p.pile.Reading().EnergyMWh
}

// script plays sessions until ctx ends; the session under way always finishes.
func (s *soak) script(ctx context.Context, p *soakPort, n int) {
	for i := 0; ctx.Err() == nil; i++ {
		var ss soakSession
		if p.isPile {
			time.Sleep(s.randDur(time.Second, 3*time.Second))
			ss.vin = fmt.Sprintf("LSOAK%02d%010d", n, i)
			s.change(p, "plugged", func(r *meter.Reading) { r.Status, r.VIN = meter.StatusPlugged, ss.vin })
			time.Sleep(s.randDur(500*time.Millisecond, 1500*time.Millisecond))
			ss.startSeq, _ = s.change(p, "start", func(r *meter.Reading) {
				r.Status, r.SessionCount = meter.StatusStarting, (r.SessionCount+1)&0xFFFFFFFF
			})
			ss.startAt = time.Now()
			time.Sleep(s.randDur(500*time.Millisecond, 2*time.Second))
			w := s.randInt(p.minW, p.maxW)
			ss.chargeSeq, _ = s.change(p, "charge", func(r *meter.Reading) { r.Status, r.PowerW = meter.StatusCharging, w })
			ss.chargeAt = time.Now()
			// longer than the longest downtime: a real session outlasts a restart
			time.Sleep(s.randDur(5*time.Second, 10*time.Second))
			ss.endSeq, ss.endMWh = s.change(p, "end", func(r *meter.Reading) { r.Status, r.PowerW, r.StopCode = meter.StatusFinished, 0, 1 })
			ss.endedAt = time.Now()
			time.Sleep(s.randDur(500*time.Millisecond, 2*time.Second))
			s.change(p, "idle", func(r *meter.Reading) { r.Status, r.VIN, r.StopCode = meter.StatusIdle, "", 0 })
		} else {
			// idle longer than a downtime plus stop_for: a meter-only port
			// cannot tell two sessions apart across a whole power cycle
			time.Sleep(s.randDur(7*time.Second, 10*time.Second))
			w := s.randInt(p.minW, p.maxW)
			ss.startSeq, _ = s.change(p, "rise", func(r *meter.Reading) { r.PowerW = w })
			ss.chargeSeq, ss.startAt, ss.chargeAt = ss.startSeq, time.Now(), time.Now()
			time.Sleep(s.randDur(5*time.Second, 10*time.Second))
			ss.endSeq, ss.endMWh = s.change(p, "fall", func(r *meter.Reading) { r.PowerW = 0 })
			ss.endedAt = time.Now()
		}
		p.mu.Lock()
		p.sessions = append(p.sessions, ss)
		p.mu.Unlock()
	}
}

// killer kills the bridge now and then, half the time at a session edge,
// and restarts it after a short downtime.
func (s *soak) killer(ctx context.Context, b *bridge) *bridge {
	for {
		wait := s.randDur(2*time.Second, 8*time.Second)
		if s.randInt(0, 1) == 0 {
			select { // at the next edge after a little while
			case <-ctx.Done():
				return b
			case <-time.After(s.randDur(time.Second, 4*time.Second)):
			}
			select {
			case <-s.edges:
			case <-ctx.Done():
				return b
			case <-time.After(wait):
			}
		} else {
			select {
			case <-ctx.Done():
				return b
			case <-time.After(wait):
			}
		}
		_ = b.stop(syscall.SIGKILL)
		s.kills++
		for _, p := range s.ports {
			seq, _ := p.pile.Change("kill", func(*meter.Reading) {})
			p.mu.Lock()
			p.restarts = append(p.restarts, seq)
			p.mu.Unlock()
		}
		time.Sleep(s.randDur(200*time.Millisecond, 4*time.Second))
		b = s.startBridge()
	}
}

// faults makes the platform fail now and then.
func (s *soak) faults(ctx context.Context) {
	kinds := []string{"1500", "500", "502", "slow"}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.randDur(3*time.Second, 10*time.Second)):
		}
		k := kinds[s.randInt(0, int64(len(kinds)-1))]
		s.plat.Inject(simulator.PlatformFault{Kind: k, Count: int(s.randInt(1, 6)), Delay: 1500 * time.Millisecond})
	}
}

type soakResult struct {
	sessions, unseen, kills               int
	exact, wrong, lost, duplicated, extra int
	energyWh                              int64
	notes                                 []string // a line per bill that is not exact
	evidence                              []string // what the bridge and the pile lived around it
}

// String puts the evidence first and the verdict last, where a log cut to
// its tail still shows it.
func (r soakResult) String() string {
	var b strings.Builder
	for _, n := range r.evidence {
		b.WriteString(n + "\n")
	}
	fmt.Fprintf(&b, "sessions %d (unseen by the bridge: %d), kills %d, energy %d Wh\n", r.sessions, r.unseen, r.kills, r.energyWh)
	fmt.Fprintf(&b, "bills exact %d, wrong %d, lost %d, duplicated %d, extra orders %d\n", r.exact, r.wrong, r.lost, r.duplicated, r.extra)
	for _, n := range r.notes {
		b.WriteString("  " + n + "\n")
	}
	return b.String()
}

func (s *soak) run(d time.Duration) soakResult {
	b := s.startBridge()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for i, p := range s.ports {
		wg.Add(1)
		go func() { defer wg.Done(); s.script(ctx, p, i) }()
	}
	go s.faults(ctx)
	killed := make(chan *bridge)
	go func() { killed <- s.killer(ctx, b) }()
	wg.Wait() // every session under way has ended
	b = <-killed
	s.plat.ClearFaults()
	// let the bridge see the last edges, close the sessions and deliver
	s.settle()
	require.NoError(s.t, b.stop(syscall.SIGTERM))
	return s.analyse()
}

// settle waits until no port has an open order and the outbox is empty.
func (s *soak) settle() { settleStation(s.t, s.listen, s.dir) }

// settleStation waits until the daemon listening at listen has no port
// with an open order and an empty outbox; it fails the test after 60 s
// with the tail of the log in dir.
func settleStation(t *testing.T, listen, dir string) {
	// every port read again since now: a line that was away is back, and
	// whatever happened on it while it was away has been seen (a dead
	// slave is asked again within config.DeadMax, a minute)
	since := time.Now()
	deadline := since.Add(90 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		var st struct {
			Ports []struct {
				Order       string     `json:"order"`
				LastReading *time.Time `json:"last_reading_at"`
			} `json:"ports"`
			Outbox struct {
				Pending int64 `json:"pending"`
			} `json:"outbox"`
		}
		if getJSON("http://"+listen+"/status", &st) != nil || st.Outbox.Pending > 0 {
			continue
		}
		open, stale := false, false
		for _, p := range st.Ports {
			open = open || p.Order != ""
			stale = stale || p.LastReading == nil || p.LastReading.Before(since)
		}
		if !open && !stale {
			return
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "bridge.log"))
	t.Fatalf("the bridge did not settle in 90 s\n%s", tail(string(log), 40))
}

func getJSON(url string, v any) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// analyse compares the platform's bills with each port's ground truth.
func (s *soak) analyse() soakResult {
	res := soakResult{kills: s.kills}
	// the latest record of each order, by port
	type rec struct {
		Order     string `json:"order"`
		State     int    `json:"state"`
		Quantity  int64  `json:"quantity"`
		StartTime string `json:"start_time"`
		VIN       string `json:"vin"`
		DeviceNo  string `json:"device_no"`
		PortNo    string `json:"port_no"`
	}
	finals := map[string]map[string]rec{} // port -> order -> final
	for _, r := range s.plat.Received(simulator.PathReplenish) {
		var x rec
		require.NoError(s.t, json.Unmarshal(r.Body, &x))
		key := x.DeviceNo + "/" + x.PortNo
		if finals[key] == nil {
			finals[key] = map[string]rec{}
		}
		if x.State != 2 {
			if old, ok := finals[key][x.Order]; ok && old.Quantity != x.Quantity {
				res.duplicated++
				res.notes = append(res.notes, fmt.Sprintf("%s order %s: two finals, %d and %d Wh", key, x.Order, old.Quantity, x.Quantity))
			}
			finals[key][x.Order] = x
		}
	}
	for _, p := range s.ports {
		log := p.pile.Log()
		var reads []billcheck.Read
		for _, e := range log {
			if e.Kind == "read" {
				reads = append(reads, billcheck.Read{Seq: e.Seq, At: e.At, MWh: e.MWh})
			}
		}
		var ss []billcheck.Session
		for _, x := range p.sessions {
			ss = append(ss, billcheck.Session{StartSeq: x.startSeq, ChargeSeq: x.chargeSeq, EndSeq: x.endSeq, EndMWh: x.endMWh})
		}
		candidates, seen, maybeUnseen := s.candidates(p, ss, reads)
		// orders, oldest first, matched to sessions by VIN (piles) or start time
		var orders []rec
		for _, f := range finals[p.key] {
			orders = append(orders, f)
		}
		sort.Slice(orders, func(i, j int) bool { return orders[i].StartTime < orders[j].StartTime })
		used := map[string]bool{}
		for i, x := range p.sessions {
			res.sessions++
			var match []rec
			for _, o := range orders {
				if s.matches(p, x, o.VIN, o.StartTime) {
					match = append(match, o)
				}
			}
			for _, o := range match {
				used[o.Order] = true
			}
			switch {
			case (!seen[i] || maybeUnseen[i]) && len(match) == 0:
				res.unseen++
			case !seen[i]:
				res.extra += len(match)
				res.notes = append(res.notes, fmt.Sprintf("%s session %d: never seen, yet billed as %s", p.key, i, match[0].Order))
			case len(match) == 0:
				res.lost++
				res.notes = append(res.notes, fmt.Sprintf("%s session %d (%s): no bill; expected one of %v Wh", p.key, i, x.vin, keys(candidates[i])))
				res.evidence = append(res.evidence, fmt.Sprintf("%s session %d:", p.key, i))
				res.evidence = append(res.evidence, s.evidence(p, x, "", log)...)
			case len(match) > 1:
				res.duplicated++
				res.notes = append(res.notes, fmt.Sprintf("%s session %d: %d orders", p.key, i, len(match)))
			case match[0].State != 3:
				res.wrong++
				res.notes = append(res.notes, fmt.Sprintf("%s session %d: state %d", p.key, i, match[0].State))
			case candidates[i][match[0].Quantity]:
				res.exact++
				res.energyWh += match[0].Quantity
			default:
				res.wrong++
				res.notes = append(res.notes, fmt.Sprintf("%s session %d (%s, order %s): billed %d Wh, expected one of %v", p.key, i, x.vin, match[0].Order, match[0].Quantity, keys(candidates[i])))
				res.evidence = append(res.evidence, fmt.Sprintf("%s session %d:", p.key, i))
				res.evidence = append(res.evidence, s.evidence(p, x, match[0].Order, log)...)
			}
		}
		for _, o := range orders {
			if !used[o.Order] {
				res.extra++
				res.notes = append(res.notes, fmt.Sprintf("%s order %s (%s, %d Wh, state %d) matches no session", p.key, o.Order, o.StartTime, o.Quantity, o.State))
			}
		}
	}
	return res
}

// evidence is what the bridge logged of an order, and what the pile lived
// around the session: the reads (with what its meter held), edges and kills.
func (s *soak) evidence(p *soakPort, x soakSession, order string, log []simulator.LogEntry) []string {
	var out []string
	if data, err := os.ReadFile(filepath.Join(s.dir, "bridge.log")); err == nil && order != "" {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, order) {
				out = append(out, "    bridge: "+line)
			}
		}
	}
	for _, e := range log {
		if e.Seq >= x.startSeq-12 && e.Seq <= x.endSeq+3 && (e.Kind != "read" || e.Seq <= x.startSeq+15 || e.Seq >= x.endSeq-3) {
			out = append(out, fmt.Sprintf("    pile: seq %d %s %s %d mWh", e.Seq, e.At.Format("15:04:05.000"), e.Kind, e.MWh))
		}
	}
	return out
}

// candidates are the bills the rules allow for each session. A kill can
// land between a read and its commit, so the last read before each kill may
// or may not have been kept: every combination near a session is tried.
func (s *soak) candidates(p *soakPort, ss []billcheck.Session, reads []billcheck.Read) (wh []map[int64]bool, seen, maybeUnseen []bool) {
	uncertain := map[int64]bool{}
	for _, k := range p.restarts {
		last := int64(-1)
		for _, r := range reads {
			if r.Seq < k {
				last = r.Seq
			}
		}
		if last >= 0 {
			uncertain[last] = true
		}
	}
	out := make([]map[int64]bool, len(ss))
	seenAny, unseenAny := make([]bool, len(ss)), make([]bool, len(ss))
	for i := range ss {
		out[i] = map[int64]bool{}
		lo := ss[i].StartSeq
		hi := int64(1 << 62)
		if i+1 < len(ss) {
			hi = max(ss[i+1].ChargeSeq, ss[i+1].StartSeq)
		}
		if i > 0 {
			lo = ss[i-1].EndSeq // a read dropped there can change where this one opens
		}
		var near []int64
		for q := range uncertain {
			if q > lo && q < hi {
				near = append(near, q)
			}
		}
		sort.Slice(near, func(a, b int) bool { return near[a] < near[b] })
		if len(near) > 6 {
			near = near[:6]
		}
		// Meter-only: start_for is timed by the bridge from when a poll
		// began, here from when the pile served it, a few ms later or
		// earlier; the boundary is only defined to within a poll either way.
		rules := []billcheck.Rules{p.rules}
		if !p.isPile {
			early, late := p.rules, p.rules
			early.StartFor -= 100 * time.Millisecond
			late.StartFor += 250 * time.Millisecond
			rules = append(rules, early, late)
		}
		for mask := 0; mask < 1<<len(near); mask++ {
			drop := map[int64]bool{}
			for b, q := range near {
				if mask&(1<<b) != 0 {
					drop[q] = true
				}
			}
			var kept []billcheck.Read
			for _, r := range reads {
				if !drop[r.Seq] {
					kept = append(kept, r)
				}
			}
			for _, rl := range rules {
				wh, seen := rl.Expected(ss, kept, p.restarts)
				if seen[i] {
					out[i][wh[i]] = true
					seenAny[i] = true
				} else {
					unseenAny[i] = true
				}
			}
		}
	}
	return out, seenAny, unseenAny
}

// matches says an order belongs to a session: by VIN on pile ports, by
// start time on meter-only ports.
func (s *soak) matches(p *soakPort, x soakSession, vin, start string) bool {
	if p.isPile {
		return vin == x.vin
	}
	t, err := time.Parse("2006-01-02T15:04:05.000Z", start)
	return err == nil && !t.Before(x.startAt.Add(-time.Second)) && !t.After(x.endedAt.Add(time.Second))
}

func keys(m map[int64]bool) []int64 {
	var out []int64
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
