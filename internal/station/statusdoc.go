package station

import (
	"math"
	"net/http"
	"pilebridge/internal/pii"
	"sort"
	"strconv"
	"time"

	"pilebridge/uploader"
)

// statusDoc is the station at a glance: /status serves it as JSON and /
// renders it as a page. Keys are snake_case, unset times null, durations
// in milliseconds.
type statusDoc struct {
	Station   string                 `json:"station_uuid"`
	Version   string                 `json:"version"`
	StartedAt time.Time              `json:"started_at"`
	UptimeMs  int64                  `json:"uptime_ms"`
	Clock     string                 `json:"clock"`     // believed, or provisional until it is
	Health    []string               `json:"unhealthy"` // the reasons' English texts, as /healthz gives them
	Reasons   []reason               `json:"unhealthy_reasons"`
	Platform  platformDoc            `json:"platform"`
	Ports     []portView             `json:"ports"`
	Buses     []busDoc               `json:"buses"`
	Outbox    outboxDoc              `json:"outbox"`
	Recent    []uploader.LedgerEntry `json:"recent_sessions"`
	// CameraPushes are the latest camera pushes, newest first, with what
	// became of each (plates masked): why a camera's reads are not taken.
	CameraPushes []cameraPush `json:"camera_pushes"`
	Now          time.Time    `json:"now"`
}

type platformDoc struct {
	BaseURL             string           `json:"base_url"`
	LastSuccessAt       *time.Time       `json:"last_success_at"`
	ConsecutiveFailures int              `json:"consecutive_failures"`
	LastError           string           `json:"last_error,omitempty"`
	LastErrorAt         *time.Time       `json:"last_error_at"`
	Delivered           int64            `json:"delivered"`
	Failed              int64            `json:"failed"`
	Parked              int64            `json:"parked"`
	Codes               map[string]int64 `json:"answers_by_code"`
}

type busDoc struct {
	Name        string `json:"name"`
	Device      string `json:"device"`
	StrayFrames uint64 `json:"stray_frames"`
	// Reopened: the link was lost under an exchange (a converter that
	// closes the connection, a TCP reset), reopened at once and answered.
	Reopened uint64 `json:"reopened"`
	// LoadPct: the share of the last minute the line spent in exchanges;
	// Overloaded above overloadPct (it cannot keep every port's interval).
	LoadPct    float64    `json:"load_percent"`
	Overloaded bool       `json:"overloaded"`
	Slaves     []slaveDoc `json:"slaves"`
}

type slaveDoc struct {
	Slave         int        `json:"slave"`
	Exchanges     uint64     `json:"exchanges"`
	OK            uint64     `json:"ok"`
	SuccessPct    float64    `json:"success_percent"`
	Timeouts      uint64     `json:"timeouts"`
	CRCErrors     uint64     `json:"crc_errors"`
	FrameErrors   uint64     `json:"frame_errors"`
	Exceptions    uint64     `json:"exceptions"`
	LineErrors    uint64     `json:"line_errors"`
	Skipped       uint64     `json:"skipped_in_backoff"`
	LastGoodAt    *time.Time `json:"last_good_at"`
	LastGoodAgeMs *int64     `json:"last_good_age_ms"`
	LastLatencyMs float64    `json:"last_latency_ms"`
	MaxLatencyMs  float64    `json:"max_latency_ms"`
}

// parkedDoc is a record the platform rejected, with its reason.
type parkedDoc struct {
	Order      string     `json:"order"`
	Kind       string     `json:"kind"`
	DeviceNo   string     `json:"device_no"`
	PortNo     string     `json:"port_no"`
	QuantityWh int64      `json:"quantity_wh"`
	EnergyFen  int64      `json:"energy_fen"`
	ServiceFen int64      `json:"service_fen"`
	QueuedAt   *time.Time `json:"queued_at"`
	ParkedAt   *time.Time `json:"parked_at"`
	Reason     string     `json:"reason"`
}

type outboxDoc struct {
	Pending           int64       `json:"pending"`
	Parked            int64       `json:"parked"`
	OldestPendingAt   *time.Time  `json:"oldest_pending_at"`
	OldestParkedAt    *time.Time  `json:"oldest_parked_at"`
	OldestBillAt      *time.Time  `json:"oldest_pending_bill_at"`
	LastDeliveryAt    *time.Time  `json:"last_delivery_at"`
	ParkedRecords     []parkedDoc `json:"parked_records"`
	ParkedRecordsLeft int         `json:"parked_records_not_shown"`
}

func optT(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// overloadPct: a line busier than this has no slack left for retries and
// late replies; the page marks it.
const overloadPct = 90

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// statusOf reads everything the page shows; recent is how many closed
// sessions to include.
func (a *Station) statusOf(now time.Time, recent int, unmasked bool) (statusDoc, error) {
	counts, err := a.outbox.Counts()
	if err != nil {
		return statusDoc{}, err
	}
	d := statusDoc{
		Station: a.cfg.StationUUID, Version: a.version, StartedAt: a.started.UTC(), UptimeMs: now.Sub(a.started).Milliseconds(),
		Clock: "provisional", Reasons: a.reasons(now, counts, nil), Ports: a.status.snapshot(), Now: now.UTC(),
	}
	d.Health = []string{}
	for _, r := range d.Reasons {
		d.Health = append(d.Health, r.Text)
	}
	if d.Reasons == nil {
		d.Reasons = []reason{}
	}
	if a.clock.Believed(now) {
		d.Clock = "believed"
	}
	st := a.sender.Stats()
	d.Platform = platformDoc{BaseURL: a.cfg.Platform.BaseURL, LastSuccessAt: optT(st.LastDelivery), ConsecutiveFailures: st.ConsecutiveFailures,
		LastError: st.LastError, LastErrorAt: optT(st.LastErrorAt), Delivered: st.Delivered, Failed: st.Failed, Parked: st.Parked, Codes: st.Codes}
	for _, name := range a.busNames() {
		b := a.buses[name]
		ls := b.LineStats()
		bd := busDoc{Name: name, Device: a.busDevice(name), StrayFrames: ls.StrayFrames, Reopened: ls.Reopened, Slaves: []slaveDoc{},
			LoadPct: math.Round(1000*ls.BusyRatio) / 10, Overloaded: 100*ls.BusyRatio > overloadPct}
		for id, s := range b.Stats() {
			sd := slaveDoc{Slave: int(id), Exchanges: s.Exchanges, OK: s.OK, Timeouts: s.Timeouts, CRCErrors: s.CRCErrors,
				FrameErrors: s.FrameErrors, Exceptions: s.Exceptions, LineErrors: s.LineErrors, Skipped: s.Skipped,
				LastGoodAt: optT(s.LastGood), LastLatencyMs: ms(s.LastLatency), MaxLatencyMs: ms(s.MaxLatency)}
			if pct, ok := s.SuccessPercent(); ok {
				sd.SuccessPct = pct
			}
			if !s.LastGood.IsZero() {
				age := now.Sub(s.LastGood).Milliseconds()
				sd.LastGoodAgeMs = &age
			}
			bd.Slaves = append(bd.Slaves, sd)
		}
		sort.Slice(bd.Slaves, func(i, j int) bool { return bd.Slaves[i].Slave < bd.Slaves[j].Slave })
		d.Buses = append(d.Buses, bd)
	}
	d.Outbox = outboxDoc{Pending: counts.Pending, Parked: counts.Parked, OldestPendingAt: optT(counts.OldestPending),
		OldestParkedAt: optT(counts.OldestParked), OldestBillAt: optT(counts.OldestPendingBill), LastDeliveryAt: optT(st.LastDelivery),
		ParkedRecords: []parkedDoc{}}
	if counts.Parked > 0 {
		_, parked, _, err := a.outbox.List(false)
		if err != nil {
			return d, err
		}
		const show = 20
		if len(parked) > show {
			d.Outbox.ParkedRecordsLeft, parked = len(parked)-show, parked[:show]
		}
		for _, e := range parked {
			r := e.Record
			d.Outbox.ParkedRecords = append(d.Outbox.ParkedRecords, parkedDoc{Order: r.Order, Kind: string(r.Kind), DeviceNo: r.DeviceNo,
				PortNo: r.PortNo, QuantityWh: r.QuantityWh, EnergyFen: r.EnergyFen, ServiceFen: r.ServiceFen,
				QueuedAt: optT(e.EnqueuedAt), ParkedAt: optT(e.DoneAt), Reason: e.LastError})
		}
	}
	if !unmasked {
		for i := range d.Ports {
			d.Ports[i].Plate = pii.Plate(d.Ports[i].Plate)
		}
	}
	d.CameraPushes = a.plates.Pushes()
	if d.Recent, err = a.outbox.LedgerLast(recent); err == nil && !unmasked {
		for i := range d.Recent {
			d.Recent[i].Record = d.Recent[i].Record.Masked()
		}
	}
	if err != nil {
		return d, err
	}
	return d, nil
}

func (a *Station) busDevice(name string) string {
	for _, b := range a.cfg.Buses {
		if b.Name == name {
			return b.Device
		}
	}
	return ""
}

// serveStatus is GET /status: the statusDoc as JSON (?recent=N closed
// sessions, default 20).
func (a *Station) serveStatus(w http.ResponseWriter, r *http.Request) {
	recent := 20
	if v := r.URL.Query().Get("recent"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1000 {
			http.Error(w, "recent: want 0..1000", http.StatusBadRequest)
			return
		}
		recent = n
	}
	d, err := a.statusOf(time.Now(), recent, authorized(r))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, d)
}
