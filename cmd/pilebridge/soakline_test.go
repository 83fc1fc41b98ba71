package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
	"pilebridge/simulator"
)

// TestLineSoak runs the real daemon against simulated piles behind failing
// lines (simulator.FaultLine): an RS-485-to-Ethernet converter with three
// piles and a Modbus TCP gateway with one, each switching at random, with
// a printed seed, between clean, down (a flapping line), closing the
// connection after a few replies, delaying, corrupting, answering for
// another slave and stalling. The piles' own meters are the truth: at the
// end every bill is at most its session's meter delta, and what the bills
// leave out, port by port, is exactly the energy the daemon reports as
// unattributed under the written rules (docs/billing.md, "A line that was
// away"). That total is printed.
//
// PILEBRIDGE_LINE_SOAK sets how long piles start sessions (default 60s;
// `make soak-line` runs 30m), PILEBRIDGE_LINE_SPELL the longest fault spell
// (default 15s; 1m in make soak-line), PILEBRIDGE_LINE_SEED repeats a run,
// PILEBRIDGE_LINE_FAULT=cut holds one fault for the whole run (cut: the
// connection closed after every reply).
// Skipped with -short.
func TestLineSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("line soak: skipped with -short")
	}
	t.Parallel() // beside TestSoak: both mostly wait on real time
	d, spell := envDuration(t, "PILEBRIDGE_LINE_SOAK", 60*time.Second), envDuration(t, "PILEBRIDGE_LINE_SPELL", 15*time.Second)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("PILEBRIDGE_LINE_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "PILEBRIDGE_LINE_SEED")
	}
	t.Logf("line soak: %s, spells 1s..%s, seed %d (PILEBRIDGE_LINE_SEED=%d repeats it)", d, spell, seed, seed)
	s := newLineSoak(t, seed)
	res := s.run(d, spell)
	t.Logf("\n%s", res)
	require.Zero(t, res.overbilled+res.duplicated+res.extra, "no bill above its meter delta, none twice, none invented")
	require.Equal(t, res.shortWh, res.unattributedWh, "every Wh not billed is what a written rule leaves unattributed, and said")
	require.Positive(t, res.exact)
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	require.NoError(t, err, name)
	return d
}

// lineSession is one session as the pile lived it.
type lineSession struct {
	from, to         int64 // what the energy register showed (Wh) when it began and ended
	startAt, endedAt time.Time
}

type linePort struct {
	key      string
	pile     *simulator.Pile
	minW     int64
	maxW     int64
	mu       sync.Mutex
	sessions []lineSession
}

type lineSoak struct {
	t      *testing.T
	st     *testStation
	listen string
	plat   *simulator.Platform
	lines  map[string]*simulator.FaultLine
	ports  []*linePort
	rng    *rand.Rand
	rngMu  sync.Mutex
	spells map[simulator.LineFault]int
}

func (s *lineSoak) dur(lo, hi time.Duration) time.Duration {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)+1))
}

func newLineSoak(t *testing.T, seed uint64) *lineSoak {
	dir := t.TempDir()
	s := &lineSoak{t: t, rng: rand.New(rand.NewPCG(seed, seed>>1|1)), lines: map[string]*simulator.FaultLine{},
		spells: map[simulator.LineFault]int{}}
	reg, err := meter.LoadRegistry("")
	require.NoError(t, err)
	type dev struct {
		bus      string
		slave    uint8
		profile  string
		minW     int64
		maxW     int64
		ratedW   int64
		deviceNo string
	}
	devs := []dev{
		{"conv", 1, "ref-ac", 3000, 7000, 7400, "LINEAC1"},
		{"conv", 2, "ref-ac", 3000, 7000, 7400, "LINEAC2"},
		{"conv", 3, "ref-dc", 30000, 120000, 150000, "LINEDC3"},
		{"gw", 1, "ref-dc", 30000, 120000, 150000, "LINEGW1"},
	}
	servers := map[string]*simulator.Server{"conv": simulator.NewServer(zerolog.Nop()), "gw": simulator.NewServer(zerolog.Nop())}
	var piles strings.Builder
	for _, d := range devs {
		prof, err := reg.Get(d.profile)
		require.NoError(t, err)
		sl := servers[d.bus].AddSlave(d.slave)
		p, err := simulator.NewPile(prof, meter.Ratios{}, sl.Bank, 500_000+int64(d.slave)*1000)
		require.NoError(t, err)
		sl.Source = p
		s.ports = append(s.ports, &linePort{key: d.deviceNo + "/1", pile: p, minW: d.minW, maxW: d.maxW})
		fmt.Fprintf(&piles, "  - {device_no: %s, energy_code: CN_DC, bus: %s, rated_power_w: %d, ports: [{port_no: \"1\", slave: %d, profile: %s, poll_interval: 200ms}]}\n",
			d.deviceNo, d.bus, d.ratedW, d.slave, d.profile)
	}
	addr := map[string]string{}
	for name, mbap := range map[string]bool{"conv": false, "gw": true} {
		up, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { up.Close() })
		go servers[name].ServeTCP(up, !mbap)
		fl := simulator.NewFaultLine(up.Addr().String(), mbap, seed+uint64(len(name)), zerolog.Nop())
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		go fl.Serve(ln)
		s.lines[name], addr[name] = fl, ln.Addr().String()
	}
	s.plat, err = simulator.NewPlatform("op_line", "line-secret", "")
	require.NoError(t, err)
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &http.Server{Handler: s.plat}
	go hs.Serve(pl)
	t.Cleanup(func() { hs.Close() })
	s.listen = freeAddr(t)
	cfg := fmt.Sprintf(`station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a
data_dir: %s/data
listen: %s
log: {level: info, format: json}
platform: {base_url: "http://%s", app_id: op_line, app_secret: line-secret, progress_interval: 5s, timeout: 1s, retry_base: 100ms, retry_max: 1s}
tariff:
  periods:
    - {start: "00:00", end: "24:00", type: flat, electricity: "1.0", service: "0.5"}
session: {offline_after: 5s, hold_polls: 3}
buses:
  - {name: conv, device: "rtuovertcp://%s", timeout: 200ms, retries: 1}
  - {name: gw, device: "tcp://%s", timeout: 200ms, retries: 1}
piles:
%s`, dir, s.listen, pl.Addr(), addr["conv"], addr["gw"], piles.String())
	config := filepath.Join(dir, "pilebridge.yaml")
	require.NoError(t, os.WriteFile(config, []byte(cfg), 0o600))
	s.st = &testStation{t: t, dir: dir, config: config}
	return s
}

// script plays sessions on one pile until ctx ends; the one under way
// finishes. Idle spells are short: a line that is away across a session's
// end and the next one's start is part of the test.
func (s *lineSoak) script(ctx context.Context, p *linePort, n int) {
	change := func(f func(r *meter.Reading)) int64 {
		_, err := p.pile.Change("", f)
		require.NoError(s.t, err)
		return p.pile.Reading().EnergyMWh / 1000 // the register: whole Wh
	}
	for i := 0; ctx.Err() == nil; i++ {
		var ls lineSession
		time.Sleep(s.dur(time.Second, 15*time.Second))
		vin := fmt.Sprintf("LLINE%02d%010d", n, i)
		change(func(r *meter.Reading) { r.Status, r.VIN = meter.StatusPlugged, vin })
		time.Sleep(s.dur(500*time.Millisecond, 2*time.Second))
		ls.from = change(func(r *meter.Reading) {
			r.Status, r.SessionCount = meter.StatusStarting, (r.SessionCount+1)&0xFFFFFFFF
		})
		ls.startAt = time.Now()
		time.Sleep(s.dur(500*time.Millisecond, 2*time.Second))
		s.rngMu.Lock()
		w := p.minW + s.rng.Int64N(p.maxW-p.minW+1)
		s.rngMu.Unlock()
		change(func(r *meter.Reading) { r.Status, r.PowerW = meter.StatusCharging, w })
		time.Sleep(s.dur(3*time.Second, 40*time.Second))
		ls.to = change(func(r *meter.Reading) { r.Status, r.PowerW, r.StopCode = meter.StatusFinished, 0, 1 })
		ls.endedAt = time.Now()
		time.Sleep(s.dur(500*time.Millisecond, 3*time.Second))
		change(func(r *meter.Reading) { r.Status, r.VIN, r.StopCode = meter.StatusIdle, "", 0 })
		p.mu.Lock()
		p.sessions = append(p.sessions, ls)
		p.mu.Unlock()
	}
}

type lineResult struct {
	sessions, exact, short, unseen     int
	overbilled, duplicated, extra      int
	energyWh, shortWh, unattributedWh  int64
	spells                             map[simulator.LineFault]int
	replies, spoiled, reopened, dLines int
	byMsg                              map[string]int
	minutes                            float64
	notes                              []string
}

func (r lineResult) String() string {
	var b strings.Builder
	var kinds []string
	for k, n := range r.spells {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	fmt.Fprintf(&b, "fault spells: %s; %d replies from the piles, %d spoiled on the way; %d connections reopened under an exchange\n",
		strings.Join(kinds, ", "), r.replies, r.spoiled, r.reopened)
	fmt.Fprintf(&b, "sessions %d: exact %d, short %d, unseen %d; energy %d Wh, billed %d Wh\n",
		r.sessions, r.exact, r.short, r.unseen, r.energyWh, r.energyWh-r.shortWh)
	fmt.Fprintf(&b, "not billed %d Wh; unattributed by the written rules (pilebridge_unattributed_wh_total) %d Wh\n", r.shortWh, r.unattributedWh)
	fmt.Fprintf(&b, "over-billed %d, duplicated %d, invented %d; daemon warn/error lines %d in %.1f min\n",
		r.overbilled, r.duplicated, r.extra, r.dLines, r.minutes)
	var msgs []string
	for m, n := range r.byMsg {
		msgs = append(msgs, fmt.Sprintf("%4d  %s", n, m))
	}
	sort.Sort(sort.Reverse(sort.StringSlice(msgs)))
	for _, m := range msgs {
		b.WriteString("    " + m + "\n")
	}
	for _, n := range r.notes {
		b.WriteString("  " + n + "\n")
	}
	return b.String()
}

func (s *lineSoak) run(d, spell time.Duration) lineResult {
	started := time.Now()
	b := s.st.startBridge()
	// the bridge knows a pile from its first reading on: the faults and
	// sessions begin once it has read every one
	require.Eventually(s.t, func() bool {
		var st struct {
			Buses []struct {
				Slaves []struct {
					LastGoodAt *time.Time `json:"last_good_at"`
				} `json:"slaves"`
			} `json:"buses"`
		}
		if getJSON("http://"+s.listen+"/status", &st) != nil {
			return false
		}
		n := 0
		for _, b := range st.Buses {
			for _, sl := range b.Slaves {
				if sl.LastGoodAt != nil {
					n++
				}
			}
		}
		return n == len(s.ports)
	}, 30*time.Second, 100*time.Millisecond, "the bridge reads every pile")
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for i, p := range s.ports {
		wg.Add(1)
		go func() { defer wg.Done(); s.script(ctx, p, i) }()
	}
	var chaos sync.WaitGroup
	var spellMu sync.Mutex
	fixed := os.Getenv("PILEBRIDGE_LINE_FAULT") // one fault for the whole run, e.g. cut (after every reply)
	for _, fl := range s.lines {
		chaos.Add(1)
		go func() {
			defer chaos.Done()
			if fixed != "" {
				f, err := simulator.ParseLineFaults(fixed)
				require.NoError(s.t, err, "PILEBRIDGE_LINE_FAULT")
				fl.Set(f[0], 1, 0)
				s.spells[f[0]]++
				<-ctx.Done()
				fl.Set(simulator.LineClean, 0, 0)
				return
			}
			fl.Chaos(ctx, simulator.AllLineFaults, time.Second, spell, func(sp simulator.Spell) {
				spellMu.Lock()
				s.spells[sp.Fault]++
				spellMu.Unlock()
			})
		}()
	}
	wg.Wait()
	chaos.Wait() // the lines are clean again
	s.settle()
	un := s.unattributed()
	var st struct {
		Buses []struct {
			Reopened int `json:"reopened"`
		} `json:"buses"`
	}
	require.NoError(s.t, getJSON("http://"+s.listen+"/status", &st))
	reopened := 0
	for _, b := range st.Buses {
		reopened += b.Reopened
	}
	minutes := time.Since(started).Minutes()
	require.NoError(s.t, b.stop(syscall.SIGTERM))
	res := s.analyse(un)
	res.spells, res.minutes, res.reopened = s.spells, minutes, reopened
	for _, fl := range s.lines {
		r, sp := fl.Counts()
		res.replies, res.spoiled = res.replies+int(r), res.spoiled+int(sp)
	}
	res.dLines, res.byMsg = s.logFacts()
	return res
}

// settle waits until no port has an open order and the outbox is empty.
func (s *lineSoak) settle() { settleStation(s.t, s.listen, s.st.dir) }

var unattributedRe = regexp.MustCompile(`(?m)^pilebridge_unattributed_wh_total\{port="([^"]+)"\} (\S+)$`)

// unattributed is the daemon's pilebridge_unattributed_wh_total by port.
func (s *lineSoak) unattributed() map[string]int64 {
	resp, err := http.Get("http://" + s.listen + "/metrics")
	require.NoError(s.t, err)
	defer resp.Body.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if m := unattributedRe.FindStringSubmatch(sc.Text()); m != nil {
			f, err := strconv.ParseFloat(m[2], 64)
			require.NoError(s.t, err)
			out[m[1]] = int64(f + 0.5)
		}
	}
	require.NoError(s.t, sc.Err())
	require.Len(s.t, out, len(s.ports), "the metric for every port")
	return out
}

// portLog is what the daemon logged of a port, for a failure's report.
func (s *lineSoak) portLog(key string) []string {
	data, _ := os.ReadFile(filepath.Join(s.st.dir, "bridge.log"))
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, `"port":"`+key+`"`) {
			out = append(out, "    bridge: "+l)
		}
	}
	return out
}

// logFacts counts the daemon's warn and error lines, by message.
func (s *lineSoak) logFacts() (lines int, byMsg map[string]int) {
	data, err := os.ReadFile(filepath.Join(s.st.dir, "bridge.log"))
	require.NoError(s.t, err)
	byMsg = map[string]int{}
	for _, l := range strings.Split(string(data), "\n") {
		var x struct {
			Level, Message string
		}
		if json.Unmarshal([]byte(l), &x) == nil && (x.Level == "warn" || x.Level == "error") {
			lines++
			byMsg[x.Level+": "+x.Message]++
		}
	}
	return lines, byMsg
}

// analyse matches the platform's bills to the piles' sessions by time: an
// order belongs to the session that ended first after its start (a bill's
// start is its baseline reading: after the previous session ended).
func (s *lineSoak) analyse(unattributed map[string]int64) lineResult {
	var res lineResult
	type rec struct {
		Order     string `json:"order"`
		State     int    `json:"state"`
		Quantity  int64  `json:"quantity"`
		StartTime string `json:"start_time"`
		DeviceNo  string `json:"device_no"`
		PortNo    string `json:"port_no"`
	}
	finals := map[string]map[string]rec{}
	for _, r := range s.plat.Received(simulator.PathReplenish) {
		var x rec
		require.NoError(s.t, json.Unmarshal(r.Body, &x))
		if x.State == 2 {
			continue // progress
		}
		key := x.DeviceNo + "/" + x.PortNo
		if finals[key] == nil {
			finals[key] = map[string]rec{}
		}
		if old, ok := finals[key][x.Order]; ok && old.Quantity != x.Quantity {
			res.duplicated++
			res.notes = append(res.notes, fmt.Sprintf("%s order %s: two finals, %d and %d Wh", key, x.Order, old.Quantity, x.Quantity))
		}
		finals[key][x.Order] = x
	}
	for _, p := range s.ports {
		byTime := map[int][]rec{}
		for _, o := range finals[p.key] {
			at, err := time.Parse("2006-01-02T15:04:05.000Z", o.StartTime)
			require.NoError(s.t, err, "start_time %q", o.StartTime)
			i := sort.Search(len(p.sessions), func(i int) bool { return p.sessions[i].endedAt.After(at) })
			if i == len(p.sessions) {
				res.extra++
				res.notes = append(res.notes, fmt.Sprintf("%s order %s (%s, %d Wh) matches no session", p.key, o.Order, o.StartTime, o.Quantity))
				continue
			}
			byTime[i] = append(byTime[i], o)
		}
		var short int64
		for i, ls := range p.sessions {
			res.sessions++
			truth := ls.to - ls.from
			res.energyWh += truth
			orders := byTime[i]
			switch {
			case len(orders) == 0:
				res.unseen++
				short += truth
				res.notes = append(res.notes, fmt.Sprintf("%s session %d (%s–%s, %d Wh): no bill", p.key, i,
					ls.startAt.Format("15:04:05.0"), ls.endedAt.Format("15:04:05.0"), truth))
			case len(orders) > 1:
				res.duplicated++
				res.notes = append(res.notes, fmt.Sprintf("%s session %d: %d orders", p.key, i, len(orders)))
			case orders[0].Quantity > truth:
				res.overbilled++
				res.notes = append(res.notes, fmt.Sprintf("%s session %d, order %s: billed %d Wh, the meter counted %d", p.key, i, orders[0].Order, orders[0].Quantity, truth))
			case orders[0].Quantity == truth:
				res.exact++
			default:
				res.short++
				short += truth - orders[0].Quantity
				res.notes = append(res.notes, fmt.Sprintf("%s session %d, order %s: billed %d of %d Wh", p.key, i, orders[0].Order, orders[0].Quantity, truth))
			}
		}
		res.shortWh += short
		res.unattributedWh += unattributed[p.key]
		if short != unattributed[p.key] {
			res.notes = append(res.notes, fmt.Sprintf("%s: %d Wh not billed, %d Wh unattributed", p.key, short, unattributed[p.key]))
			res.notes = append(res.notes, s.portLog(p.key)...)
		}
	}
	return res
}
