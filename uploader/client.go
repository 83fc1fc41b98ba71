package uploader

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Platform API paths.
const (
	PathReplenish = "/gate/1.0/energy/internal/replenish/sync"
	PathDevice    = "/gate/1.0/energy/internal/device/sync"
)

// TimeLayout is the platform's UTC time format.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Sign is the platform's signature: MD5 of body + "&app_secret=" + secret,
// in upper-case hex as the platform's own client sends it.
func Sign(body []byte, secret string) string {
	h := md5.New()
	h.Write(body)
	h.Write([]byte("&app_secret="))
	h.Write([]byte(secret))
	return strings.ToUpper(hex.EncodeToString(h.Sum(nil)))
}

// Marshal encodes compact JSON without HTML escaping, as the platform's JSON
// library does; these bytes are signed and sent unchanged.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Response is the platform's answer body.
type Response struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	Hint     string `json:"hint"`
	Seqno    string `json:"seqno"`
	DataNode string `json:"data_node"`
	TimeCost int    `json:"time_cost"`
}

// Outcome classifies a delivery attempt.
type Outcome int

const (
	Delivered     Outcome = iota
	RetryPlatform         // transport error, HTTP 5xx, code 1500: the platform is unwell; back off everything
	RetryRecord           // another code: back off this record
	Rejected              // 400/401/403: retrying will not help until someone fixes something
)

// CallError explains a failed call.
type CallError struct {
	Outcome Outcome
	Status  int
	Resp    Response
	Err     error
}

func (e *CallError) Error() string {
	var b strings.Builder
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		fmt.Fprintf(&b, "platform answered code %s", e.Resp.Code)
		if e.Resp.Message != "" {
			fmt.Fprintf(&b, ": %s", e.Resp.Message)
		}
		switch {
		case e.Resp.Code == "401":
			// the platform's hint names a header ("Authorization"); what
			// the operator must do is check the credentials
			b.WriteString(": check platform.app_id and the app secret")
		case e.Resp.Hint != "":
			fmt.Fprintf(&b, " (field: %s)", e.Resp.Hint)
		}
	}
	if e.Status != 0 && e.Status != http.StatusOK {
		fmt.Fprintf(&b, " [HTTP %d]", e.Status)
	}
	return b.String()
}

func (e *CallError) Unwrap() error { return e.Err }

// Client signs and posts requests to the platform.
type Client struct {
	base    string
	appID   string
	secret  string
	station string
	http    *http.Client
	now     func() time.Time
}

// ClientConfig configures a Client.
type ClientConfig struct {
	BaseURL     string
	AppID       string
	AppSecret   string
	StationUUID string
	Timeout     time.Duration
}

// NewClient builds a client. TLS verification stays on: the default
// transport's certificate checks are never relaxed.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Timeout <= 0 {
		return nil, errors.New("platform client: timeout must be set")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8
	return &Client{
		base: strings.TrimRight(cfg.BaseURL, "/"), appID: cfg.AppID, secret: cfg.AppSecret, station: cfg.StationUUID,
		http: &http.Client{Timeout: cfg.Timeout, Transport: tr, CheckRedirect: noRedirects}, now: time.Now,
	}, nil
}

// noRedirects keeps every request at the configured platform: a redirect
// would carry the signature and the body (VIN, plate, mobile) elsewhere,
// and whatever answers there is not P云. The 3xx comes back to Post.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Common are the public fields every request carries.
type Common struct {
	AppID       string `json:"app_id"`
	Timestamp   int64  `json:"timestamp"`
	SignType    string `json:"sign_type"`
	StationUUID string `json:"station_uuid"`
}

func (c *Client) common() Common {
	return Common{AppID: c.appID, Timestamp: c.now().UnixMilli(), SignType: "MD5", StationUUID: c.station}
}

// replenishBody is the replenish/sync request, fields in the platform's order.
type replenishBody struct {
	Common
	Order       string `json:"order"`
	StartTime   string `json:"start_time"`
	EndTime     string `json:"end_time"`
	VIN         string `json:"vin,omitempty"`
	Plate       string `json:"plate,omitempty"`
	Quantity    int64  `json:"quantity"`
	EnergyValue int64  `json:"energy_value"`
	FeeValue    int64  `json:"fee_value"`
	State       int    `json:"state"`
	StateDesc   string `json:"state_desc"`
	DeviceNo    string `json:"device_no"`
	DeviceType  int    `json:"device_type"`
	PortNo      string `json:"port_no"`
	EnergyCode  string `json:"energy_code"`
	SOC         *int   `json:"soc,omitempty"`
	Mobile      string `json:"mobile"`
}

// ReplenishBody builds the signed body of a record, stamped now.
func (c *Client) ReplenishBody(r Record) ([]byte, error) {
	if r.QuantityWh > 1<<31-1 || r.EnergyFen > 1<<31-1 || r.ServiceFen > 1<<31-1 {
		return nil, fmt.Errorf("order %s: quantity or fees exceed the platform's int32", r.Order)
	}
	return Marshal(replenishBody{
		Common: c.common(), Order: r.Order,
		StartTime: r.StartTime.UTC().Format(TimeLayout), EndTime: r.EndTime.UTC().Format(TimeLayout),
		VIN: r.VIN, Plate: r.Plate, Quantity: r.QuantityWh, EnergyValue: r.EnergyFen, FeeValue: r.ServiceFen,
		State: r.State, StateDesc: r.StateDesc, DeviceNo: r.DeviceNo, DeviceType: r.DeviceType,
		PortNo: r.PortNo, EnergyCode: r.EnergyCode, SOC: r.SOC, Mobile: r.Mobile,
	})
}

// SendRecord delivers one charging record.
func (c *Client) SendRecord(ctx context.Context, r Record) (Response, error) {
	body, err := c.ReplenishBody(r)
	if err != nil {
		return Response{}, &CallError{Outcome: Rejected, Err: err}
	}
	return c.Post(ctx, PathReplenish, body)
}

// Post signs body and sends exactly those bytes.
func (c *Client) Post(ctx context.Context, path string, body []byte) (Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return Response{}, &CallError{Outcome: Rejected, Err: fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", Sign(body, c.secret))
	resp, err := c.http.Do(req)
	if err != nil {
		return Response{}, &CallError{Outcome: RetryPlatform, Err: fmt.Errorf("post %s: %w", path, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return Response{}, &CallError{Outcome: RetryPlatform, Status: resp.StatusCode,
			Err: fmt.Errorf("post %s: redirected to %q: not followed (the platform is only reached at base_url)", path, resp.Header.Get("Location"))}
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Response{}, &CallError{Outcome: RetryPlatform, Status: resp.StatusCode, Err: fmt.Errorf("read answer of %s: %w", path, err)}
	}
	return parseAnswer(path, resp.StatusCode, raw)
}

// parseAnswer classifies the platform's answer: its body decides, whatever
// the HTTP status (FACTS: the platform sends a body even when it is not 200).
func parseAnswer(path string, status int, raw []byte) (Response, error) {
	var out Response
	if err := json.Unmarshal(raw, &out); err != nil || out.Code == "" {
		snippet := []rune(string(raw))
		if len(snippet) > 80 {
			snippet = snippet[:80]
		}
		return Response{}, &CallError{Outcome: RetryPlatform, Status: status, Err: fmt.Errorf("unreadable answer from %s: %q", path, string(snippet))}
	}
	switch {
	case out.Code == "1001":
		return out, nil
	case out.Code == "400" || out.Code == "401" || out.Code == "403":
		return out, &CallError{Outcome: Rejected, Status: status, Resp: out}
	case out.Code == "1500" || status >= 500:
		return out, &CallError{Outcome: RetryPlatform, Status: status, Resp: out}
	default:
		return out, &CallError{Outcome: RetryRecord, Status: status, Resp: out}
	}
}

// CodeOf names an attempt's result for counting: one of the platform's
// codes it documents ("1001", "401", "1500"...), "http_5xx"-style classes
// for an answer without one, "transport" when no answer came, and "other"
// for anything else. The set is fixed: the name becomes a Prometheus label
// and a map key, and a platform (or something posing as it) answering with
// ever new codes must not grow either without bound.
func CodeOf(resp Response, err error) string {
	var ce *CallError
	code := ""
	switch {
	case err == nil:
		code = resp.Code
	case errors.As(err, &ce) && ce.Resp.Code != "":
		code = ce.Resp.Code
	case errors.As(err, &ce) && ce.Status >= 100 && ce.Status < 600:
		return fmt.Sprintf("http_%dxx", ce.Status/100)
	case errors.As(err, &ce) && ce.Status != 0:
		return "other"
	default:
		return "transport"
	}
	if knownCodes[code] {
		return code
	}
	return "other"
}

// knownCodes are the answer codes counted by name (shared/platform/FACTS.md).
var knownCodes = map[string]bool{"1001": true, "1500": true, "400": true, "401": true, "403": true}

// OutcomeOf classifies an error from Post.
func OutcomeOf(err error) Outcome {
	if err == nil {
		return Delivered
	}
	var ce *CallError
	if errors.As(err, &ce) {
		return ce.Outcome
	}
	return RetryPlatform
}
