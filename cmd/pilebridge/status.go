package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"pilebridge/internal/config"
	"pilebridge/meter"
	"pilebridge/session"
	"pilebridge/uploader"
)

// portView is what the status page shows of a port.
type portView struct {
	Key         string            `json:"port"`
	Pile        string            `json:"device_no"`
	PortNo      string            `json:"port_no"`
	Alias       string            `json:"alias,omitempty"`
	State       session.PortState `json:"state"`
	Order       string            `json:"order,omitempty"`
	QuantityWh  int64             `json:"quantity_wh"`
	EnergyFen   int64             `json:"energy_fen"`
	ServiceFen  int64             `json:"service_fen"`
	StartedAt   *time.Time        `json:"session_started_at"`
	EnergyWh    int64             `json:"meter_energy_wh"`
	PowerW      int64             `json:"power_w"`
	SOC         *int              `json:"soc_percent"`
	Quantised   bool              `json:"energy_quantised,omitempty"`
	FaultText   string            `json:"fault,omitempty"`
	Error       string            `json:"poll_error,omitempty"`
	LastReading *time.Time        `json:"last_reading_at"`
	UpdatedAt   time.Time         `json:"updated_at"`

	reported bool // its pile's device/sync report has seen this port
}

// statusBoard keeps the latest view of every port and feeds device/sync.
type statusBoard struct {
	mu      sync.Mutex
	ports   map[string]*portView
	piles   map[string]config.Pile
	devsync *uploader.DeviceSync
}

func newStatusBoard(cfg *config.Config, ds *uploader.DeviceSync) *statusBoard {
	return &statusBoard{ports: map[string]*portView{}, piles: map[string]config.Pile{}, devsync: ds}
}

func (s *statusBoard) addPort(key string, p config.Pile, pt config.Port) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ports[key] = &portView{Key: key, Pile: p.DeviceNo, PortNo: pt.PortNo, Alias: pt.Alias, State: session.Idle}
	s.piles[p.DeviceNo] = p
}

func (s *statusBoard) observe(key string, st session.PortState, sess *session.Session, r meter.Reading, err error) {
	s.mu.Lock()
	v := s.ports[key]
	was, wasFault := v.State, v.FaultText
	v.State, v.UpdatedAt, v.Error = st, time.Now().UTC(), ""
	if err != nil {
		v.Error = err.Error()
	} else {
		v.EnergyWh, v.PowerW, v.Quantised, v.FaultText = r.EnergyWh, r.PowerW, r.Quantised(), r.FaultText
		at := r.Time.UTC()
		v.LastReading, v.SOC = &at, nil
		if r.HasSOC {
			soc := r.SOC
			v.SOC = &soc
		}
	}
	v.Order, v.QuantityWh, v.EnergyFen, v.ServiceFen, v.StartedAt = "", 0, 0, 0, nil
	if sess != nil {
		start := sess.StartTime.UTC()
		v.Order, v.QuantityWh, v.StartedAt = sess.Order, sess.QuantityWh(), &start
		v.EnergyFen, v.ServiceFen = sess.Fees()
	}
	if v.reported && v.State == was && v.FaultText == wasFault {
		s.mu.Unlock() // the report depends on nothing else: build it only on a change
		return
	}
	v.reported = true
	dev := s.deviceLocked(v.Pile)
	s.mu.Unlock()
	s.devsync.Update(dev)
}

// deviceLocked builds a pile's device/sync report from its ports.
func (s *statusBoard) deviceLocked(deviceNo string) uploader.DeviceStatus {
	p := s.piles[deviceNo]
	ports := make([]uploader.PortView, 0, len(p.Ports))
	for _, pt := range p.Ports {
		v := s.ports[p.DeviceNo+"/"+pt.PortNo]
		ports = append(ports, uploader.PortView{PortNo: pt.PortNo, Alias: pt.Alias, State: v.State, FaultText: v.FaultText})
	}
	return uploader.DeviceOf(uploader.PileInfo{DeviceNo: p.DeviceNo, Name: p.Name, DeviceType: p.DeviceType,
		EnergyCode: p.EnergyCode, RatedPowerW: p.RatedPowerW, Version: version}, ports)
}

func (s *statusBoard) snapshot() []portView {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]portView, 0, len(s.ports))
	for _, v := range s.ports {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Paging of /outbox and /sessions: anyone who reaches listen could
// otherwise make the board read and send its whole database at once.
const (
	defaultPage = 500
	maxPage     = 5000
)

// pageLimit reads ?limit= (default defaultPage, at most maxPage).
func pageLimit(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return defaultPage, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPage {
		http.Error(w, fmt.Sprintf("limit: want 1..%d", maxPage), http.StatusBadRequest)
		return 0, false
	}
	return n, true
}

// setNext points to the next page (RFC 8288 Link, rel="next"): the same
// query with after= where this page ended.
func setNext(w http.ResponseWriter, r *http.Request, after string) {
	q := r.URL.Query()
	q.Set("after", after)
	w.Header().Set("Link", fmt.Sprintf("<%s?%s>; rel=\"next\"", r.URL.Path, q.Encode()))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // records carry personal data; state is live
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// handler serves /status, /outbox, /outbox/retry and /metrics on the
// configured listen address (keep it on loopback or a management network).
func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.servePage)
	mux.HandleFunc("GET /status", a.serveStatus)
	mux.HandleFunc("GET /sessions", a.serveSessions)
	mux.HandleFunc("GET /healthz", a.serveHealth)
	mux.HandleFunc("GET /outbox", func(w http.ResponseWriter, r *http.Request) {
		limit, ok := pageLimit(w, r)
		if !ok {
			return
		}
		var after uint64
		if v := r.URL.Query().Get("after"); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				http.Error(w, "after: want the sequence number a page ended at", http.StatusBadRequest)
				return
			}
			after = n
		}
		pending, parked, delivered, next, err := a.outbox.ListPage(r.URL.Query().Get("all") != "", after, limit)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		l := outboxListing{Pending: pending, Parked: parked, Delivered: delivered}
		if !authorized(r) {
			for _, list := range [][]uploader.Entry{l.Pending, l.Parked, l.Delivered} {
				for i := range list {
					list[i].Record = list[i].Record.Masked()
				}
			}
		}
		if next > 0 {
			setNext(w, r, strconv.FormatUint(next, 10))
		}
		writeJSON(w, l)
	})
	mux.HandleFunc("POST /outbox/retry", func(w http.ResponseWriter, r *http.Request) {
		order := r.URL.Query().Get("order")
		if order == "" && r.URL.Query().Get("parked") == "" {
			http.Error(w, "give order=ORDER or parked=1", http.StatusBadRequest)
			return
		}
		n, dropped, err := a.outbox.Requeue(order)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, requeueResult{Requeued: n, Dropped: dropped})
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{a: a}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

type requeueResult struct {
	Requeued int `json:"requeued"`
	Dropped  int `json:"dropped_obsolete"`
}

type outboxListing struct {
	Pending   []uploader.Entry `json:"pending"`
	Parked    []uploader.Entry `json:"parked"`
	Delivered []uploader.Entry `json:"delivered"`
}

// collector reads the live counters at scrape time.
// collector reads the daemon's state at each scrape. A source it cannot
// read (the outbox, from a failing store) is counted in
// pilebridge_scrape_errors_total{source}, as exporters do, rather than
// silently missing from the scrape.
type collector struct {
	a            *app
	outboxErrors atomic.Uint64
}

var (
	mBuild     = prometheus.NewDesc("pilebridge_build_info", "The running version.", []string{"version"}, nil)
	mExchanges = prometheus.NewDesc("pilebridge_modbus_exchanges_total", "Modbus exchanges on the wire by outcome.", []string{"bus", "slave", "outcome"}, nil)
	mSkipped   = prometheus.NewDesc("pilebridge_modbus_skipped_total", "Reads failed fast, without an exchange, while a dead slave backs off.", []string{"bus", "slave"}, nil)
	mStrays    = prometheus.NewDesc("pilebridge_modbus_stray_frames_total", "Whole frames from a slave other than the one addressed (late replies), skipped.", []string{"bus"}, nil)
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
)

// allStates are the series of pilebridge_port_state: every state always
// present, so a state change moves a 1 instead of making a series vanish.
var allStates = []session.PortState{session.Idle, session.Plugged, session.Starting, session.Charging, session.Finishing,
	session.Finished, session.StartFailed, session.Faulted, session.Offline}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mBuild, mScrapeErr, mExchanges, mSkipped, mStrays, mBabbles, mLatency, mRecords, mOldest, mUploads, mAnswers,
		mEnergy, mPower, mSOC, mPortState, mResets} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(mBuild, prometheus.GaugeValue, 1, version)
	for name, b := range c.a.buses {
		ls := b.LineStats()
		ch <- prometheus.MustNewConstMetric(mStrays, prometheus.CounterValue, float64(ls.StrayFrames), name)
		ch <- prometheus.MustNewConstMetric(mBabbles, prometheus.CounterValue, float64(ls.Babbles), name)
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
	}
	for _, v := range c.a.status.snapshot() {
		ch <- prometheus.MustNewConstMetric(mEnergy, prometheus.GaugeValue, float64(v.QuantityWh), v.Key)
		ch <- prometheus.MustNewConstMetric(mPower, prometheus.GaugeValue, float64(v.PowerW), v.Key)
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
