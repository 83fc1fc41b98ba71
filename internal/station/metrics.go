package station

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"pilebridge/session"
)

// collector reads the live counters at scrape time.
// collector reads the daemon's state at each scrape. A source it cannot
// read (the outbox, from a failing store) is counted in
// pilebridge_scrape_errors_total{source}, as exporters do, rather than
// silently missing from the scrape.
type collector struct {
	a            *Station
	outboxErrors atomic.Uint64
}

var (
	mBuild     = prometheus.NewDesc("pilebridge_build_info", "The running version.", []string{"version"}, nil)
	mExchanges = prometheus.NewDesc("pilebridge_modbus_exchanges_total", "Modbus exchanges on the wire by outcome.", []string{"bus", "slave", "outcome"}, nil)
	mSkipped   = prometheus.NewDesc("pilebridge_modbus_skipped_total", "Reads failed fast, without an exchange, while a dead slave backs off.", []string{"bus", "slave"}, nil)
	mStrays    = prometheus.NewDesc("pilebridge_modbus_stray_frames_total", "Whole frames from a slave other than the one addressed (late replies), skipped.", []string{"bus"}, nil)
	mBusy      = prometheus.NewDesc("pilebridge_bus_busy_seconds_total", "Time the line spent in exchanges (request, silence, turnaround, reply).", []string{"bus"}, nil)
	mBusyRatio = prometheus.NewDesc("pilebridge_bus_busy_ratio", "Share of the last minute the line spent in exchanges, 0..1: near 1 the ports are read less often than configured.", []string{"bus"}, nil)
	mHealthy   = prometheus.NewDesc("pilebridge_healthy", "1 when /healthz answers 200, 0 when it lists reasons.", nil, nil)
	mReason    = prometheus.NewDesc("pilebridge_health_reason", "1 for each reason /healthz gives now (kind as in /status unhealthy_reasons; bus where it is one bus's).", []string{"kind", "bus"}, nil)
	mClock     = prometheus.NewDesc("pilebridge_clock_believed", "1 once the board's clock is believed (clock.min_date, clock.synced_file); session times are provisional until then.", nil, nil)
	mMeterWh   = prometheus.NewDesc("pilebridge_port_meter_energy_wh", "The port's meter register (lifetime energy), Wh: its increase over a day is the energy delivered.", []string{"port"}, nil)
	mPlates    = prometheus.NewDesc("pilebridge_plate_reads_total", "Plates read for the bays, by source (camera, api, attendant) and result (taken, invalid, no_plate, refused, malformed).", []string{"source", "result"}, nil)
	mScrapeErr = prometheus.NewDesc("pilebridge_scrape_errors_total", "Scrapes that could not read a source; its metrics are missing from those scrapes.", []string{"source"}, nil)
	mBabbles   = prometheus.NewDesc("pilebridge_modbus_babbles_total", "Times the line did not fall silent (a device or converter kept sending): closed and reopened after a backoff.", []string{"bus"}, nil)
	mLatency   = prometheus.NewDesc("pilebridge_modbus_last_latency_seconds", "Latency of the last good exchange.", []string{"bus", "slave"}, nil)
	mRecords   = prometheus.NewDesc("pilebridge_outbox_records", "Records in the outbox, read from the store: pending delivery, or parked (rejected by the platform, waiting for `outbox retry`).", []string{"state"}, nil)
	mOldest    = prometheus.NewDesc("pilebridge_outbox_oldest_age_seconds", "Age of the oldest record in each state (0 when none).", []string{"state"}, nil)
	mUploads   = prometheus.NewDesc("pilebridge_uploads_total", "Upload attempts by outcome.", []string{"outcome"}, nil)
	mAnswers   = prometheus.NewDesc("pilebridge_upload_answers_total", "Upload attempts by the platform's answer code (http_NNN: an answer without one; transport: no answer).", []string{"code"}, nil)
	mEnergy    = prometheus.NewDesc("pilebridge_port_session_energy_wh", "Energy of the port's open session (0 when none).", []string{"port"}, nil)
	mPower     = prometheus.NewDesc("pilebridge_port_power_w", "The port's power at the last good reading.", []string{"port"}, nil)
	mSOC       = prometheus.NewDesc("pilebridge_port_soc_percent", "The vehicle's state of charge, when the pile reports it.", []string{"port"}, nil)
	mPortState = prometheus.NewDesc("pilebridge_port_state", "1 for the port's present state, 0 for every other.", []string{"port", "state"}, nil)
	mResets    = prometheus.NewDesc("pilebridge_meter_resets_total", "Meter resets or swaps found in open sessions (energy between the two registers is not billed).", []string{"port"}, nil)
	mUnattrib  = prometheus.NewDesc("pilebridge_unattributed_wh_total", "Energy the meter counted while the line was away that no rule could give to a session (not billed; the next bill's evidence shows it), in Wh.", []string{"port"}, nil)
)

// allStates are the series of pilebridge_port_state: every state always
// present, so a state change moves a 1 instead of making a series vanish.
var allStates = []session.PortState{session.Idle, session.Plugged, session.Starting, session.Charging, session.Finishing,
	session.Finished, session.StartFailed, session.Faulted, session.Offline}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mBuild, mScrapeErr, mExchanges, mSkipped, mStrays, mBabbles, mLatency, mRecords, mOldest, mUploads, mAnswers,
		mEnergy, mPower, mSOC, mPortState, mResets, mUnattrib, mPlates, mBusy, mBusyRatio, mHealthy, mReason, mClock, mMeterWh} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(mBuild, prometheus.GaugeValue, 1, c.a.version)
	for k, v := range c.a.plates.Counts() {
		ch <- prometheus.MustNewConstMetric(mPlates, prometheus.CounterValue, float64(v), k[0], k[1])
	}
	for name, b := range c.a.buses {
		ls := b.LineStats()
		ch <- prometheus.MustNewConstMetric(mStrays, prometheus.CounterValue, float64(ls.StrayFrames), name)
		ch <- prometheus.MustNewConstMetric(mBabbles, prometheus.CounterValue, float64(ls.Babbles), name)
		ch <- prometheus.MustNewConstMetric(mBusy, prometheus.CounterValue, ls.Busy.Seconds(), name)
		ch <- prometheus.MustNewConstMetric(mBusyRatio, prometheus.GaugeValue, ls.BusyRatio, name)
		for id, s := range b.Stats() {
			sl := strconv.Itoa(int(id))
			for outcome, v := range map[string]uint64{"ok": s.OK, "timeout": s.Timeouts, "crc": s.CRCErrors,
				"frame": s.FrameErrors, "exception": s.Exceptions, "line": s.LineErrors} {
				ch <- prometheus.MustNewConstMetric(mExchanges, prometheus.CounterValue, float64(v), name, sl, outcome)
			}
			ch <- prometheus.MustNewConstMetric(mSkipped, prometheus.CounterValue, float64(s.Skipped), name, sl)
			ch <- prometheus.MustNewConstMetric(mLatency, prometheus.GaugeValue, s.LastLatency.Seconds(), name, sl)
		}
	}
	counts, err := c.a.outbox.Counts()
	if err != nil {
		c.outboxErrors.Add(1)
	}
	ch <- prometheus.MustNewConstMetric(mScrapeErr, prometheus.CounterValue, float64(c.outboxErrors.Load()), "outbox")
	now := time.Now()
	reasons := c.a.reasons(now, counts, err)
	ch <- prometheus.MustNewConstMetric(mHealthy, prometheus.GaugeValue, b2f(len(reasons) == 0))
	seen := map[[2]string]bool{}
	for _, r := range reasons {
		if k := [2]string{r.Kind, r.Bus}; !seen[k] {
			seen[k] = true
			ch <- prometheus.MustNewConstMetric(mReason, prometheus.GaugeValue, 1, r.Kind, r.Bus)
		}
	}
	ch <- prometheus.MustNewConstMetric(mClock, prometheus.GaugeValue, b2f(c.a.clock.Believed(now)))
	if err == nil {
		age := func(t time.Time) float64 {
			if t.IsZero() {
				return 0
			}
			return time.Since(t).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(mRecords, prometheus.GaugeValue, float64(counts.Pending), "pending")
		ch <- prometheus.MustNewConstMetric(mRecords, prometheus.GaugeValue, float64(counts.Parked), "parked")
		ch <- prometheus.MustNewConstMetric(mOldest, prometheus.GaugeValue, age(counts.OldestPending), "pending")
		ch <- prometheus.MustNewConstMetric(mOldest, prometheus.GaugeValue, age(counts.OldestParked), "parked")
	}
	st := c.a.sender.Stats()
	ch <- prometheus.MustNewConstMetric(mUploads, prometheus.CounterValue, float64(st.Delivered), "delivered")
	ch <- prometheus.MustNewConstMetric(mUploads, prometheus.CounterValue, float64(st.Failed), "failed")
	ch <- prometheus.MustNewConstMetric(mUploads, prometheus.CounterValue, float64(st.Parked), "parked")
	for code, n := range st.Codes {
		ch <- prometheus.MustNewConstMetric(mAnswers, prometheus.CounterValue, float64(n), code)
	}
	for _, p := range c.a.ports {
		ch <- prometheus.MustNewConstMetric(mResets, prometheus.CounterValue, float64(p.Machine.MeterResets()), p.Key)
		ch <- prometheus.MustNewConstMetric(mUnattrib, prometheus.CounterValue, float64(p.Machine.UnattributedMWh())/1000, p.Key)
	}
	for _, v := range c.a.status.snapshot() {
		ch <- prometheus.MustNewConstMetric(mEnergy, prometheus.GaugeValue, float64(v.QuantityWh), v.Key)
		ch <- prometheus.MustNewConstMetric(mPower, prometheus.GaugeValue, float64(v.PowerW), v.Key)
		if v.LastReading != nil {
			ch <- prometheus.MustNewConstMetric(mMeterWh, prometheus.GaugeValue, float64(v.EnergyWh), v.Key)
		}
		if v.SOC != nil {
			ch <- prometheus.MustNewConstMetric(mSOC, prometheus.GaugeValue, float64(*v.SOC), v.Key)
		}
		for _, st := range allStates {
			on := 0.0
			if st == v.State {
				on = 1
			}
			ch <- prometheus.MustNewConstMetric(mPortState, prometheus.GaugeValue, on, v.Key, string(st))
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
