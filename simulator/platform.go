package simulator

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Platform paths served by the stand-in.
const (
	PathReplenish = "/gate/1.0/energy/internal/replenish/sync"
	PathDevice    = "/gate/1.0/energy/internal/device/sync"
)

// PlatformFault makes the stand-in misbehave for the next N requests.
type PlatformFault struct {
	Path  string // only requests to this path ("" = any)
	Match string // only requests whose body contains this ("" = any)
	Kind  string // "1500", "500", "502", "slow", "garbage", "401", "quote" (a 400 quoting the record's VIN, plate, mobile), "302", "307"
	Count int
	Delay time.Duration // for slow
	// Location is where a 302 or 307 points: a hostile or misconfigured
	// proxy sending the bridge elsewhere.
	Location string
}

// Received is one accepted request, as the stand-in logs it.
type Received struct {
	At   time.Time       `json:"received_at"`
	Path string          `json:"path"`
	Body json.RawMessage `json:"body"`
}

// Platform is a stand-in for the P云 gateway: it checks signatures and
// fields like the real one and records every accepted request.
type Platform struct {
	apps    map[string]string // app_id -> secret
	logFile *os.File
	now     func() time.Time

	mu       sync.Mutex
	received []Received
	faults   []PlatformFault
	seq      atomic.Int64
	rejected atomic.Int64
}

// NewPlatform serves one application. logPath, if set, gets every accepted
// request as a JSON line.
func NewPlatform(appID, secret, logPath string) (*Platform, error) {
	p := &Platform{apps: map[string]string{appID: secret}, now: time.Now}
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("platform log: %w", err)
		}
		p.logFile = f
	}
	return p, nil
}

// Close closes the log.
func (p *Platform) Close() error {
	if p.logFile != nil {
		return p.logFile.Close()
	}
	return nil
}

// Inject queues a fault.
func (p *Platform) Inject(f PlatformFault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, f)
}

// Received returns the accepted requests on path, in arrival order.
func (p *Platform) Received(path string) []Received {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Received
	for _, r := range p.received {
		if path == "" || r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// Rejected counts requests answered with an error code.
func (p *Platform) Rejected() int64 { return p.rejected.Load() }

func (p *Platform) takeFault(path string, body []byte) *PlatformFault {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.faults {
		f := &p.faults[i]
		if (f.Path != "" && f.Path != path) || (f.Match != "" && !bytes.Contains(body, []byte(f.Match))) {
			continue
		}
		out := *f
		if f.Count--; f.Count <= 0 {
			p.faults = append(p.faults[:i], p.faults[i+1:]...)
		}
		return &out
	}
	return nil
}

type reply struct {
	Code     string `json:"code"`
	Message  string `json:"message,omitempty"`
	Hint     string `json:"hint,omitempty"`
	Seqno    string `json:"seqno"`
	DataNode string `json:"data_node,omitempty"`
	TimeCost int    `json:"time_cost,omitempty"`
}

func (p *Platform) write(w http.ResponseWriter, status int, r reply) {
	r.Seqno = fmt.Sprintf("%032d", p.seq.Add(1))
	r.DataNode = "LOCAL/STANDIN"
	if r.Code != "1001" {
		p.rejected.Add(1)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(r)
}

// ServeHTTP implements the two platform endpoints and a control endpoint
// (POST /_standin/fault?kind=1500&count=3&delay=2s) for scripted tests.
func (p *Platform) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	if req.URL.Path == "/_standin/fault" && req.Method == http.MethodPost {
		q := req.URL.Query()
		f := PlatformFault{Kind: q.Get("kind"), Path: q.Get("path"), Count: 1}
		fmt.Sscan(q.Get("count"), &f.Count)
		f.Delay, _ = time.ParseDuration(q.Get("delay"))
		f.Location = q.Get("location")
		p.Inject(f)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var check func(map[string]any) (string, string)
	switch req.URL.Path {
	case PathReplenish:
		check = checkReplenish
	case PathDevice:
		check = checkDevice
	default:
		p.write(w, http.StatusNotFound, reply{Code: "404", Message: "no such API"})
		return
	}
	if req.Method != http.MethodPost {
		p.write(w, http.StatusMethodNotAllowed, reply{Code: "405", Message: "POST only"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		p.write(w, http.StatusBadRequest, reply{Code: "400", Message: "unreadable body"})
		return
	}
	if f := p.takeFault(req.URL.Path, body); f != nil {
		switch f.Kind {
		case "1500":
			p.write(w, http.StatusOK, reply{Code: "1500", Message: "系统繁忙 (injected)"})
			return
		case "500", "502":
			status := http.StatusInternalServerError
			if f.Kind == "502" {
				status = http.StatusBadGateway
			}
			p.write(w, status, reply{Code: f.Kind, Message: "injected HTTP " + f.Kind})
			return
		case "slow":
			time.Sleep(f.Delay)
		case "garbage":
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("<html>gateway error"))
			p.rejected.Add(1)
			return
		case "401":
			p.write(w, http.StatusOK, reply{Code: "401", Message: "签名错误 (injected)"})
			return
		case "quote":
			// a platform that quotes the record it refuses: its VIN, plate
			// and mobile come back in the message
			var rec struct {
				VIN    string `json:"vin"`
				Plate  string `json:"plate"`
				Mobile string `json:"mobile"`
			}
			_ = json.Unmarshal(body, &rec)
			p.write(w, http.StatusOK, reply{Code: "400", Message: fmt.Sprintf("bad record plate=%s vin=%s mobile=%s (injected)", rec.Plate, rec.VIN, rec.Mobile)})
			return
		case "302", "307":
			status := http.StatusFound
			if f.Kind == "307" {
				status = http.StatusTemporaryRedirect
			}
			w.Header().Set("Location", f.Location+req.URL.Path)
			w.WriteHeader(status)
			return
		}
	}
	if ct := req.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		p.write(w, http.StatusOK, reply{Code: "400", Message: "Content-Type must be application/json", Hint: "Content-Type"})
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		p.write(w, http.StatusOK, reply{Code: "400", Message: "body is not a JSON object: " + err.Error()})
		return
	}
	appID, _ := m["app_id"].(string)
	secret, ok := p.apps[appID]
	if !ok {
		p.write(w, http.StatusOK, reply{Code: "401", Message: "unknown app_id", Hint: "app_id"})
		return
	}
	sum := md5.Sum(append(append([]byte(nil), body...), "&app_secret="+secret...))
	if !strings.EqualFold(req.Header.Get("Authorization"), hex.EncodeToString(sum[:])) {
		p.write(w, http.StatusOK, reply{Code: "401", Message: "签名验证失败", Hint: "Authorization"})
		return
	}
	if msg, field := checkCommon(m, p.now()); msg != "" {
		p.write(w, http.StatusOK, reply{Code: "400", Message: msg, Hint: field})
		return
	}
	if msg, field := check(m); msg != "" {
		p.write(w, http.StatusOK, reply{Code: "400", Message: msg, Hint: field})
		return
	}
	rec := Received{At: time.Now().UTC(), Path: req.URL.Path, Body: json.RawMessage(body)}
	p.mu.Lock()
	p.received = append(p.received, rec)
	if p.logFile != nil {
		line, _ := json.Marshal(rec)
		_, _ = p.logFile.Write(append(line, '\n'))
	}
	p.mu.Unlock()
	p.write(w, http.StatusOK, reply{Code: "1001", TimeCost: int(time.Since(start).Milliseconds())})
}

type fieldRule struct {
	name     string
	kind     string // string, int32, int64, time, array, object
	required bool
	allowed  []string
}

func checkFields(m map[string]any, rules []fieldRule) (string, string) {
	for _, r := range rules {
		v, ok := m[r.name]
		if !ok || v == nil {
			if r.required {
				return "missing required field " + r.name, r.name
			}
			continue
		}
		switch r.kind {
		case "string", "time":
			s, ok := v.(string)
			if !ok {
				return r.name + " must be a string", r.name
			}
			if r.required && s == "" {
				return r.name + " must not be empty", r.name
			}
			if r.kind == "time" {
				if _, err := time.Parse("2006-01-02T15:04:05.000Z", s); err != nil || len(s) != 24 {
					return r.name + " must be UTC like 2024-04-14T16:00:00.000Z", r.name
				}
			}
		case "int32", "int64":
			n, ok := v.(json.Number)
			if !ok {
				return r.name + " must be a number", r.name
			}
			i, err := n.Int64()
			if err != nil {
				return r.name + " must be an integer", r.name
			}
			if r.kind == "int32" && (i > 1<<31-1 || i < -(1<<31)) {
				return r.name + " out of int32 range", r.name
			}
		case "array":
			if _, ok := v.([]any); !ok {
				return r.name + " must be an array", r.name
			}
		case "object":
			if _, ok := v.(map[string]any); !ok {
				return r.name + " must be an object", r.name
			}
		}
		if len(r.allowed) > 0 {
			s := fmt.Sprint(v)
			found := false
			for _, a := range r.allowed {
				found = found || a == s
			}
			if !found {
				return fmt.Sprintf("%s=%s not one of %v", r.name, s, r.allowed), r.name
			}
		}
	}
	return "", ""
}

func checkCommon(m map[string]any, now time.Time) (string, string) {
	msg, f := checkFields(m, []fieldRule{
		{"app_id", "string", true, nil},
		{"timestamp", "int64", true, nil},
		{"sign_type", "string", true, []string{"MD5"}},
		{"station_uuid", "string", true, nil},
	})
	if msg != "" {
		return msg, f
	}
	ts, _ := m["timestamp"].(json.Number).Int64()
	if d := now.Sub(time.UnixMilli(ts)); d > 10*time.Minute || d < -10*time.Minute {
		return "timestamp outside 10 minutes of the platform clock", "timestamp"
	}
	return "", ""
}

func checkReplenish(m map[string]any) (string, string) {
	msg, f := checkFields(m, []fieldRule{
		{"order", "string", true, nil},
		{"start_time", "time", true, nil},
		{"end_time", "time", true, nil},
		{"vin", "string", false, nil},
		{"plate", "string", false, nil},
		{"quantity", "int32", true, nil},
		{"energy_value", "int32", true, nil},
		{"fee_value", "int32", true, nil},
		{"state", "int32", true, []string{"0", "-1", "2", "3"}},
		{"state_desc", "string", true, nil},
		{"device_no", "string", true, nil},
		{"device_type", "int32", true, []string{"0", "1"}},
		{"port_no", "string", true, nil},
		{"energy_code", "string", true, []string{"CN_AC", "CN_DC"}},
		{"soc", "int32", false, nil},
		{"mobile", "string", true, nil},
	})
	if msg != "" {
		return msg, f
	}
	for _, k := range []string{"quantity", "energy_value", "fee_value"} {
		if n, _ := m[k].(json.Number).Int64(); n < 0 {
			return k + " must not be negative", k
		}
	}
	if len(m["order"].(string)) > 32 {
		return "order longer than 32 characters", "order"
	}
	return "", ""
}

func checkDevice(m map[string]any) (string, string) {
	msg, f := checkFields(m, []fieldRule{
		{"no", "string", true, nil},
		{"name", "string", true, nil},
		{"type", "int32", true, []string{"0", "1"}},
		{"state", "int32", true, []string{"1", "-1", "-2"}},
		{"state_desc", "string", false, nil},
		{"energy_code", "string", true, []string{"CN_AC", "CN_DC"}},
		{"port", "array", true, nil},
		// The documentation marks these optional; some deployments answer
		// 400 without them, so the stand-in is that strict.
		{"metadata", "object", true, nil},
	})
	if msg != "" {
		return msg, f
	}
	for i, raw := range m["port"].([]any) {
		pm, ok := raw.(map[string]any)
		if !ok {
			return fmt.Sprintf("port[%d] must be an object", i), "port"
		}
		if msg, f := checkFields(pm, []fieldRule{
			{"no", "string", true, nil},
			{"state", "int32", true, []string{"1", "2", "3", "-1"}},
			{"state_desc", "string", false, nil},
			{"alias", "string", true, nil},
			{"space_status", "int32", false, []string{"-1", "1", "2"}},
		}); msg != "" {
			return fmt.Sprintf("port[%d]: %s", i, msg), "port." + f
		}
	}
	return "", ""
}

// ClearFaults drops every queued fault: the outage is over.
func (p *Platform) ClearFaults() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
}
