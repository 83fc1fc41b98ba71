package session_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"pilebridge/internal/billcheck"
	"pilebridge/meter"
	"pilebridge/session"
	"pilebridge/uploader"
)

// The property run: random timelines through the real engine, each bill
// checked against the timeline's ground truth under the rules of
// docs/billing.md, stated here in the test's own words:
//
//   - a session's energy is what its register shows between its baseline
//     and its end, rounded to Wh once;
//   - baseline: the register when the bridge first saw the session (pile
//     ports), or the last reading before power rose (meter-only);
//   - end: when the session ended, if the bridge saw the pile after that
//     and before another session began; else the last reading the bridge
//     took of it;
//   - a meter reset loses only what flowed between the last reading of the
//     old register and the first of the new;
//   - a session the bridge never saw has no order; nothing else is invented.
//
// `make soak-model SEED=.. N=..` runs more cases.

type simSession struct {
	vin           string
	start, charge time.Time // starting, charging
	end           time.Time // finished (pile) or power fell (meter-only)
	truthEnd      int64     // truth at end
	resetAt       time.Time // a meter reset during charging (zero: none)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestPropertyRandomTimelines(t *testing.T) {
	t.Parallel()
	seed, n := uint64(envInt("PILEBRIDGE_MODEL_SEED", 20261129)), envInt("PILEBRIDGE_MODEL_N", 60)
	var bills, kills, resets int
	for i := 0; i < n; i++ {
		c := seed + uint64(i)
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			b, k, rs := runModelCase(t, c)
			bills, kills, resets = bills+b, kills+k, resets+rs
		})
	}
	t.Logf("seed %d: %d timelines, %d bills checked, %d kills, %d meter resets", seed, n, bills, kills, resets)
}

func runModelCase(t *testing.T, seed uint64) (bills, kills, resets int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	type prof struct {
		name   string
		ratios meter.Ratios
		shows  func(int64) int64
		pile   bool
	}
	profs := []prof{
		{"ref-ac", meter.Ratios{}, billcheck.Step(1000), true},
		{"ref-dc", meter.Ratios{}, billcheck.Step(1000), true},
		{"adl400", meter.Ratios{}, billcheck.Step(10_000), false},
		{"adl400", meter.Ratios{PT: 1, CT: 10}, billcheck.Step(100_000), false},
		{"adl400", meter.Ratios{PT: 1, CT: 5}, billcheck.Step(50_000), false},
		{"abb-b23", meter.Ratios{}, billcheck.Step(10_000), false},
		{"sdm120", meter.Ratios{}, billcheck.Float32KWh(1), false},
	}
	p := profs[rng.IntN(len(profs))]
	zones := []struct {
		name string
		at   time.Time // near a daylight-saving change there
	}{
		{"Asia/Shanghai", time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC)},
		{"America/New_York", time.Date(2026, 3, 8, 6, 30, 0, 0, time.UTC)},
		{"Australia/Lord_Howe", time.Date(2026, 4, 4, 14, 30, 0, 0, time.UTC)},
		{"Australia/Lord_Howe", time.Date(2026, 10, 3, 15, 30, 0, 0, time.UTC)},
	}
	z := zones[rng.IntN(len(zones))]
	tr, err := session.NewTariff(z.name, []session.PeriodSpec{
		{Start: "00:00", End: "02:30", Type: "valley", Electricity: "0.3123", Service: "0.2"},
		{Start: "02:30", End: "24:00", Type: "peak", Electricity: "1.0511", Service: "0.8"},
	})
	require.NoError(t, err)
	rated := []int64{7400, 22000, 60000}[rng.IntN(3)]
	var cfg session.PortConfig
	if p.pile {
		cfg = pileCfg()
		cfg.RatedPowerW = rated
	} else {
		cfg = meterOnly(rated)
	}
	r := newRig(t, p.name, p.ratios, cfg, tr)
	r.now = z.at.Add(-time.Duration(rng.IntN(3600)) * time.Second)
	if p.name == "ref-ac" && rng.IntN(3) == 0 {
		r.dev.baseMWh = (1<<32-1)*1000 - rng.Int64N(3_000_000) // rolls over in the first session
	}
	wrap := int64(0)
	if p.pile {
		wrap = (1 << 32) * 1000
	}
	shows := p.shows
	r.dev.wrapMWh = wrap

	up := true
	var downUntil, awayUntil time.Time
	var restarts []time.Time
	// pile ports: the line goes away now and then at any moment, across
	// session edges too (issue 25), for 1 s to 4 minutes (a whole session can fall inside), the bridge up
	lineAway := p.pile && rng.IntN(2) == 0
	// advance runs d, killing and restarting the bridge at random when the
	// timeline allows it (allowKill), and returns when d has passed.
	advance := func(d time.Duration, allowKill bool) {
		end := r.now.Add(d)
		for r.now.Before(end) {
			if !up && !r.now.Before(downUntil) {
				r.start()
				up = true
			}
			if up && allowKill && rng.IntN(400) == 0 {
				r.kill()
				kills++
				restarts = append(restarts, r.now)
				up = false
				downUntil = r.now.Add(time.Duration(1+rng.IntN(300)) * time.Second)
			}
			if lineAway && !r.dev.silent && rng.IntN(60) == 0 {
				awayUntil = r.now.Add(time.Duration(1+rng.IntN([]int{60, 60, 240}[rng.IntN(3)])) * time.Second)
			}
			if lineAway && !awayUntil.IsZero() {
				r.dev.silent = r.now.Before(awayUntil)
				if !r.dev.silent {
					awayUntil = time.Time{}
				}
			}
			if up {
				r.run(time.Second)
			} else {
				r.down(time.Second)
			}
		}
	}
	var sessions []*simSession
	nSess := 1 + rng.IntN(3)
	for s := 0; s < nSess; s++ {
		ss := &simSession{vin: fmt.Sprintf("LSVMODEL%09d", seed%1_000_000_000*10+uint64(s))}
		power := 1000 + rng.Int64N(rated-999)
		if p.pile {
			advance(time.Duration(5+rng.IntN(120))*time.Second, true)
			r.set(meter.StatusPlugged, 0)
			r.dev.vin = ss.vin
			advance(time.Duration(2+rng.IntN(4))*time.Second, true)
			r.dev.count++
			r.set(meter.StatusStarting, 0)
			ss.start = r.now
			advance(time.Duration(2+rng.IntN(5))*time.Second, true)
			r.set(meter.StatusCharging, power)
			ss.charge = r.now
		} else {
			// a long idle gap: a downtime never spans a whole power cycle (a
			// meter-only port cannot tell two sessions apart across one)
			advance(time.Duration(600+rng.IntN(300))*time.Second, true)
			for !up {
				advance(time.Second, false)
			}
			advance(time.Duration(rng.IntN(40))*time.Second, true)
			r.dev.powerW = power
			ss.start, ss.charge = r.now, r.now
			advance(cfg.StartFor+2*time.Second, true)
		}
		chargeFor := time.Duration(60+rng.IntN(1500)) * time.Second
		chargeEnd := r.now.Add(chargeFor)
		for r.now.Before(chargeEnd) {
			switch rng.IntN(200) {
			case 0: // the line goes silent a while (bridge up)
				r.dev.silent = true
				advance(time.Duration(5+rng.IntN(90))*time.Second, true)
				r.dev.silent = false
			case 1: // the register freezes, then catches up
				r.dev.frozen, r.dev.frozenAt = true, r.dev.truthMWh()
				advance(time.Duration(2+rng.IntN(4))*time.Second, false)
				r.dev.frozen = false
			case 2: // the meter is swapped for a new one (once per session, bridge up)
				if p.name == "ref-dc" && ss.resetAt.IsZero() && up && !r.dev.silent {
					ss.resetAt = r.now
					// a new meter reads well below the old one; one reading a
					// little higher is indistinguishable from a frozen register
					// catching up, and counted as such (docs/billing.md)
					r.dev.resetTo(rng.Int64N(r.dev.truthMWh()/2000) * 1000)
					resets++
					advance(20*time.Second, false)
				}
			}
			advance(time.Second, true)
		}
		if p.pile {
			r.set(meter.StatusFinished, 0)
			r.dev.stopCode = 1
			ss.end, ss.truthEnd = r.now, r.dev.truthMWh()
			advance(time.Duration(3+rng.IntN(10))*time.Second, true)
			r.set(meter.StatusIdle, 0)
			r.dev.vin, r.dev.stopCode = "", 0
		} else {
			r.dev.powerW = 0
			ss.end, ss.truthEnd = r.now, r.dev.truthMWh()
			advance(cfg.StopFor+10*time.Second, true)
		}
		sessions = append(sessions, ss)
	}
	// the bridge comes back, the line too, and sees everything settle
	lineAway, r.dev.silent = false, false
	if !up {
		r.down(downUntil.Sub(r.now))
		r.start()
	}
	r.run(3 * time.Minute)

	terminal, progress := r.records()
	want := expectedBills(r, sessions, p.pile, wrap, shows, cfg, restarts)
	var got []int64
	orders := map[string]bool{}
	for _, rec := range terminal {
		require.False(t, orders[rec.Order], "order %s billed twice", rec.Order)
		orders[rec.Order] = true
		require.Equal(t, uploader.KindFinal, rec.Kind, "no start failure in these timelines: %+v", rec)
		require.Equal(t, uploader.StateFinished, rec.State)
		require.False(t, rec.EndTime.Before(rec.StartTime))
		got = append(got, rec.QuantityWh)
		// fees: the Wh at one of the two prices each, rounded once
		lo, hi := fenOf(rec.QuantityWh, 3123), fenOf(rec.QuantityWh, 10511)
		require.True(t, rec.EnergyFen >= lo && rec.EnergyFen <= hi, "energy fee %d outside [%d, %d]", rec.EnergyFen, lo, hi)
		if pr, ok := progress[rec.Order]; ok {
			require.LessOrEqual(t, pr.QuantityWh, rec.QuantityWh, "progress never exceeds the bill")
			require.Less(t, pr.Seq, rec.Seq)
		}
	}
	for o := range progress {
		require.True(t, orders[o], "order %s has progress but no bill", o)
	}
	require.Equal(t, want, got, "profile %s ratios %+v zone %s, %d sessions, %d kills", p.name, p.ratios, z.name, len(sessions), kills)
	return len(terminal), kills, resets
}

// expectedBills applies the rules (internal/billcheck, the tests' own
// statement of docs/billing.md) to the timeline: what the meter counted at
// each poll the bridge made, where sessions began and ended, and when the
// bridge restarted. A poll at instant T read the state before any change
// made at T, so polls are ordered at 2T and changes at 2T+1.
func expectedBills(r *rig, sessions []*simSession, pile bool, wrap int64, shows func(int64) int64, cfg session.PortConfig, restarts []time.Time) []int64 {
	seq := func(t time.Time, change bool) int64 {
		n := t.UnixNano() * 2
		if change {
			n++
		}
		return n
	}
	var reads []billcheck.Read
	for _, p := range r.polls {
		if p.answer {
			reads = append(reads, billcheck.Read{Seq: seq(p.at, false), At: p.at, MWh: p.truth})
		}
	}
	var ss []billcheck.Session
	for _, s := range sessions {
		b := billcheck.Session{StartSeq: seq(s.start, true), ChargeSeq: seq(s.charge, true), EndSeq: seq(s.end, true), EndMWh: s.truthEnd}
		if !s.resetAt.IsZero() {
			b.ResetSeq = seq(s.resetAt, true)
		}
		ss = append(ss, b)
	}
	var rs []int64
	for _, k := range restarts {
		rs = append(rs, seq(k, true))
	}
	rules := billcheck.Rules{Pile: pile, WrapMWh: wrap, Shows: shows, StartFor: cfg.StartFor, MaxGap: 30 * time.Second}
	wh, seen := rules.Expected(ss, reads, rs)
	var out []int64
	for i := range wh {
		if seen[i] {
			out = append(out, wh[i])
		}
	}
	return out
}
