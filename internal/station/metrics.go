package station

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"pilebridge/internal/promtext"
	"pilebridge/session"
)

// collector reads the daemon's state at each scrape. A source it cannot
// read (the outbox, from a failing store) is counted in
// pilebridge_scrape_errors_total{source}, as exporters do, rather than
// silently missing from the scrape.
type collector struct {
	a            *Station
	outboxErrors atomic.Uint64
}

var (
	mBuild     = &promtext.Desc{Name: "pilebridge_build_info", Help: "The running version.", Type: promtext.Gauge, Labels: []string{"version"}}
	mExchanges = &promtext.Desc{Name: "pilebridge_modbus_exchanges_total", Help: "Modbus exchanges on the wire by outcome.", Type: promtext.Counter, Labels: []string{"bus", "slave", "outcome"}}
	mSkipped   = &promtext.Desc{Name: "pilebridge_modbus_skipped_total", Help: "Reads failed fast, without an exchange, while a dead slave backs off.", Type: promtext.Counter, Labels: []string{"bus", "slave"}}
	mStrays    = &promtext.Desc{Name: "pilebridge_modbus_stray_frames_total", Help: "Whole frames from a slave other than the one addressed (late replies), skipped.", Type: promtext.Counter, Labels: []string{"bus"}}
	mBusy      = &promtext.Desc{Name: "pilebridge_bus_busy_seconds_total", Help: "Time the line spent in exchanges (request, silence, turnaround, reply).", Type: promtext.Counter, Labels: []string{"bus"}}
	mBusyRatio = &promtext.Desc{Name: "pilebridge_bus_busy_ratio", Help: "Share of the last minute the line spent in exchanges, 0..1: near 1 the ports are read less often than configured.", Type: promtext.Gauge, Labels: []string{"bus"}}
	mHealthy   = &promtext.Desc{Name: "pilebridge_healthy", Help: "1 when /healthz answers 200, 0 when it lists reasons.", Type: promtext.Gauge}
	mReason    = &promtext.Desc{Name: "pilebridge_health_reason", Help: "1 for each reason /healthz gives now (kind as in /status unhealthy_reasons; bus where it is one bus's).", Type: promtext.Gauge, Labels: []string{"kind", "bus"}}
	mClock     = &promtext.Desc{Name: "pilebridge_clock_believed", Help: "1 once the board's clock is believed (clock.min_date, clock.synced_file); session times are provisional until then.", Type: promtext.Gauge}
	mMeterWh   = &promtext.Desc{Name: "pilebridge_port_meter_energy_wh", Help: "The port's meter register (lifetime energy), Wh: its increase over a day is the energy delivered.", Type: promtext.Gauge, Labels: []string{"port"}}
	mPlates    = &promtext.Desc{Name: "pilebridge_plate_reads_total", Help: "Plates read for the bays, by source (camera, api, attendant) and result (taken, invalid, no_plate, refused, malformed).", Type: promtext.Counter, Labels: []string{"source", "result"}}
	mScrapeErr = &promtext.Desc{Name: "pilebridge_scrape_errors_total", Help: "Scrapes that could not read a source; its metrics are missing from those scrapes.", Type: promtext.Counter, Labels: []string{"source"}}
	mBabbles   = &promtext.Desc{Name: "pilebridge_modbus_babbles_total", Help: "Times the line did not fall silent (a device or converter kept sending): closed and reopened after a backoff.", Type: promtext.Counter, Labels: []string{"bus"}}
	mLatency   = &promtext.Desc{Name: "pilebridge_modbus_last_latency_seconds", Help: "Latency of the last good exchange.", Type: promtext.Gauge, Labels: []string{"bus", "slave"}}
	mRecords   = &promtext.Desc{Name: "pilebridge_outbox_records", Help: "Records in the outbox, read from the store: pending delivery, or parked (rejected by the platform, waiting for `outbox retry`).", Type: promtext.Gauge, Labels: []string{"state"}}
	mOldest    = &promtext.Desc{Name: "pilebridge_outbox_oldest_age_seconds", Help: "Age of the oldest record in each state (0 when none).", Type: promtext.Gauge, Labels: []string{"state"}}
	mUploads   = &promtext.Desc{Name: "pilebridge_uploads_total", Help: "Upload attempts by outcome.", Type: promtext.Counter, Labels: []string{"outcome"}}
	mAnswers   = &promtext.Desc{Name: "pilebridge_upload_answers_total", Help: "Upload attempts by the platform's answer code (http_NNN: an answer without one; transport: no answer).", Type: promtext.Counter, Labels: []string{"code"}}
	mEnergy    = &promtext.Desc{Name: "pilebridge_port_session_energy_wh", Help: "Energy of the port's open session (0 when none).", Type: promtext.Gauge, Labels: []string{"port"}}
	mPower     = &promtext.Desc{Name: "pilebridge_port_power_w", Help: "The port's power at the last good reading.", Type: promtext.Gauge, Labels: []string{"port"}}
	mSOC       = &promtext.Desc{Name: "pilebridge_port_soc_percent", Help: "The vehicle's state of charge, when the pile reports it.", Type: promtext.Gauge, Labels: []string{"port"}}
	mPortState = &promtext.Desc{Name: "pilebridge_port_state", Help: "1 for the port's present state, 0 for every other.", Type: promtext.Gauge, Labels: []string{"port", "state"}}
	mResets    = &promtext.Desc{Name: "pilebridge_meter_resets_total", Help: "Meter resets or swaps found in open sessions (energy between the two registers is not billed).", Type: promtext.Counter, Labels: []string{"port"}}
	mUnattrib  = &promtext.Desc{Name: "pilebridge_unattributed_wh_total", Help: "Energy the meter counted while the line was away that no rule could give to a session (not billed; the next bill's evidence shows it), in Wh.", Type: promtext.Counter, Labels: []string{"port"}}
)

// mInterval: the time between a port's good readings, as achieved (a busy
// line reads each port less often than poll_interval).
var (
	intervalBounds = []float64{0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60}
	mInterval      = &promtext.Desc{Name: "pilebridge_port_reading_interval_seconds", Help: "Time between a port's good readings, as achieved.", Type: promtext.Histogram, Labels: []string{"port"}}
)

// allStates are the series of pilebridge_port_state: every state always
// present, so a state change moves a 1 instead of making a series vanish.
var allStates = []session.PortState{session.Idle, session.Plugged, session.Starting, session.Charging, session.Finishing,
	session.Finished, session.StartFailed, session.Faulted, session.Offline}

// ServeHTTP answers a scrape in the text format.
func (c *collector) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s := promtext.NewScrape()
	c.collect(s)
	s.AddRuntime()
	w.Header().Set("Content-Type", promtext.ContentType)
	_, _ = s.WriteTo(w) // the scraper went away: nothing to tell it
}

// collect adds every series of the daemon to one scrape.
func (c *collector) collect(sc *promtext.Scrape) {
	sc.Add(mBuild, 1, c.a.version)
	for k, v := range c.a.plates.Counts() {
		sc.Add(mPlates, float64(v), k[0], k[1])
	}
	for name, b := range c.a.buses {
		ls := b.LineStats()
		sc.Add(mStrays, float64(ls.StrayFrames), name)
		sc.Add(mBabbles, float64(ls.Babbles), name)
		sc.Add(mBusy, ls.Busy.Seconds(), name)
		sc.Add(mBusyRatio, ls.BusyRatio, name)
		for id, s := range b.Stats() {
			sl := strconv.Itoa(int(id))
			for outcome, v := range map[string]uint64{"ok": s.OK, "timeout": s.Timeouts, "crc": s.CRCErrors,
				"frame": s.FrameErrors, "exception": s.Exceptions, "line": s.LineErrors} {
				sc.Add(mExchanges, float64(v), name, sl, outcome)
			}
			sc.Add(mSkipped, float64(s.Skipped), name, sl)
			sc.Add(mLatency, s.LastLatency.Seconds(), name, sl)
		}
	}
	counts, err := c.a.outbox.Counts()
	if err != nil {
		c.outboxErrors.Add(1)
	}
	sc.Add(mScrapeErr, float64(c.outboxErrors.Load()), "outbox")
	now := time.Now()
	reasons := c.a.reasons(now, counts, err)
	sc.Add(mHealthy, b2f(len(reasons) == 0))
	seen := map[[2]string]bool{}
	for _, r := range reasons {
		if k := [2]string{r.Kind, r.Bus}; !seen[k] {
			seen[k] = true
			sc.Add(mReason, 1, r.Kind, r.Bus)
		}
	}
	sc.Add(mClock, b2f(c.a.clock.Believed(now)))
	if err == nil {
		age := func(t time.Time) float64 {
			if t.IsZero() {
				return 0
			}
			return time.Since(t).Seconds()
		}
		sc.Add(mRecords, float64(counts.Pending), "pending")
		sc.Add(mRecords, float64(counts.Parked), "parked")
		sc.Add(mOldest, age(counts.OldestPending), "pending")
		sc.Add(mOldest, age(counts.OldestParked), "parked")
	}
	st := c.a.sender.Stats()
	sc.Add(mUploads, float64(st.Delivered), "delivered")
	sc.Add(mUploads, float64(st.Failed), "failed")
	sc.Add(mUploads, float64(st.Parked), "parked")
	for code, n := range st.Codes {
		sc.Add(mAnswers, float64(n), code)
	}
	for _, p := range c.a.ports {
		sc.Add(mResets, float64(p.Machine.MeterResets()), p.Key)
		sc.Add(mUnattrib, float64(p.Machine.UnattributedMWh())/1000, p.Key)
	}
	for _, v := range c.a.status.snapshot() {
		sc.AddHistogram(mInterval, v.interval.Snapshot(), v.Key)
		sc.Add(mEnergy, float64(v.QuantityWh), v.Key)
		sc.Add(mPower, float64(v.PowerW), v.Key)
		if v.LastReading != nil {
			sc.Add(mMeterWh, float64(v.EnergyWh), v.Key)
		}
		if v.SOC != nil {
			sc.Add(mSOC, float64(*v.SOC), v.Key)
		}
		for _, st := range allStates {
			on := 0.0
			if st == v.State {
				on = 1
			}
			sc.Add(mPortState, on, v.Key, string(st))
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
