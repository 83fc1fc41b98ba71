package simulator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Camera is a simulated LPR camera above a bay: it pushes its reads in the
// AlarmInfoPlate format, as many Chinese bay and gate cameras do.
type Camera struct {
	Serial  string
	IPAddr  string // the address it reports (not where it posts from)
	Channel int
	// Base64 sends the licence base64-encoded, as such cameras can be set to.
	Base64 bool
	Client *http.Client
}

// Push sends one read of plate to url and returns the bridge's answer.
func (c Camera) Push(ctx context.Context, url, plate string, confidence int, at time.Time) (int, []byte, error) {
	lic := plate
	if c.Base64 {
		lic = base64.StdEncoding.EncodeToString([]byte(plate))
	}
	type timeval struct {
		Sec  int64 `json:"sec"`
		USec int64 `json:"usec"`
	}
	msg := map[string]any{"AlarmInfoPlate": map[string]any{
		"channel": c.Channel, "deviceName": "IVS", "ipaddr": c.IPAddr, "serialno": c.Serial,
		"result": map[string]any{"PlateResult": map[string]any{
			"license": lic, "colorType": 1, "confidence": confidence, "triggerType": 8,
			"timeStamp": map[string]any{"Timeval": timeval{Sec: at.Unix(), USec: int64(at.Nanosecond() / 1000)}},
		}},
	}}
	body, err := json.Marshal(msg)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.Client
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("camera %s: push: %w", c.Serial, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, answer, err
}
