package simulator

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func validBody(now time.Time) map[string]any {
	return map[string]any{
		"app_id": "op1", "timestamp": now.UnixMilli(), "sign_type": "MD5", "station_uuid": "st",
		"order": "20250917151408743549", "start_time": "2025-09-17T06:14:08.320Z", "end_time": "2025-09-17T07:14:08.351Z",
		"quantity": 1000, "energy_value": 800, "fee_value": 200, "state": 3, "state_desc": "SOC已充满",
		"device_no": "TEST250911100001", "device_type": 0, "port_no": "1", "energy_code": "CN_AC", "mobile": "13800138001",
	}
}

func post(t *testing.T, p *Platform, path string, body map[string]any, secret string) reply {
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	sum := md5.Sum(append(raw, "&app_secret="+secret...))
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", strings.ToUpper(hex.EncodeToString(sum[:])))
	w := httptest.NewRecorder()
	p.ServeHTTP(w, req)
	var r reply
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &r), w.Body.String())
	return r
}

func TestStandInJudgesLikeThePlatform(t *testing.T) {
	p, err := NewPlatform("op1", "sec", "")
	require.NoError(t, err)
	now := time.Now()
	assert.Equal(t, "1001", post(t, p, PathReplenish, validBody(now), "sec").Code)
	assert.Len(t, p.Received(PathReplenish), 1)

	assert.Equal(t, "401", post(t, p, PathReplenish, validBody(now), "wrong").Code, "bad signature")

	cases := map[string]func(m map[string]any){
		"order":        func(m map[string]any) { delete(m, "order") },
		"mobile":       func(m map[string]any) { delete(m, "mobile") },
		"quantity":     func(m map[string]any) { m["quantity"] = "1000" },
		"state":        func(m map[string]any) { m["state"] = 1 },
		"energy_code":  func(m map[string]any) { m["energy_code"] = "AC" },
		"start_time":   func(m map[string]any) { m["start_time"] = "2025-09-17 06:14:08" },
		"timestamp":    func(m map[string]any) { m["timestamp"] = now.Add(-time.Hour).UnixMilli() },
		"fee_value":    func(m map[string]any) { m["fee_value"] = -1 },
		"device_type":  func(m map[string]any) { m["device_type"] = 5 },
		"energy_value": func(m map[string]any) { m["energy_value"] = 1.5 },
	}
	for field, spoil := range cases {
		b := validBody(now)
		spoil(b)
		r := post(t, p, PathReplenish, b, "sec")
		assert.Equal(t, "400", r.Code, field)
		assert.Equal(t, field, r.Hint, field)
	}
	assert.Len(t, p.Received(PathReplenish), 1, "nothing rejected was recorded")

	dev := map[string]any{"app_id": "op1", "timestamp": now.UnixMilli(), "sign_type": "MD5", "station_uuid": "st",
		"no": "D1", "name": "n", "type": 0, "state": 1, "energy_code": "CN_DC", "metadata": map[string]any{},
		"port": []any{map[string]any{"no": "1", "state": 2, "alias": "1"}}}
	assert.Equal(t, "1001", post(t, p, PathDevice, dev, "sec").Code)
	dev["port"] = []any{map[string]any{"no": "1", "state": 9, "alias": "1"}}
	assert.Equal(t, "400", post(t, p, PathDevice, dev, "sec").Code)
	dev["port"] = []any{map[string]any{"no": "1", "state": 2}}
	assert.Equal(t, "400", post(t, p, PathDevice, dev, "sec").Code, "every port needs an alias")
	dev["port"] = []any{map[string]any{"no": "1", "state": 2, "alias": "1"}}
	delete(dev, "metadata")
	assert.Equal(t, "400", post(t, p, PathDevice, dev, "sec").Code, "metadata is required")
}

func TestStandInFaultsTargetAPath(t *testing.T) {
	p, _ := NewPlatform("op1", "sec", "")
	p.Inject(PlatformFault{Path: PathReplenish, Kind: "1500", Count: 2})
	now := time.Now()
	dev := map[string]any{"app_id": "op1", "timestamp": now.UnixMilli(), "sign_type": "MD5", "station_uuid": "st",
		"no": "D1", "name": "n", "type": 0, "state": 1, "energy_code": "CN_DC", "port": []any{}, "metadata": map[string]any{}}
	assert.Equal(t, "1001", post(t, p, PathDevice, dev, "sec").Code, "other paths unaffected")
	assert.Equal(t, "1500", post(t, p, PathReplenish, validBody(now), "sec").Code)
	assert.Equal(t, "1500", post(t, p, PathReplenish, validBody(now), "sec").Code)
	assert.Equal(t, "1001", post(t, p, PathReplenish, validBody(now), "sec").Code)
}
