package uploader

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The platform's published vectors (shared/platform/FACTS.md).
func TestSignVectors(t *testing.T) {
	cases := []struct{ body, secret, want string }{
		{`{"a":"string","b":0,"c":1900000109}`, "您的密钥", "d7f3eca20c666483b2f4963d35a3f547"},
		{`{"reason":"接口测试退款","pay_serial":"20220721102644066066610031","app_id":"op00961963581daa7","value":"1"}`,
			"6409292d66625a2a0912acfc61ed956c", "55D9BC675B3B042A015895FA9F9D037B"},
	}
	for _, c := range cases {
		assert.True(t, strings.EqualFold(c.want, Sign([]byte(c.body), c.secret)), c.body)
	}
}

func TestMarshalKeepsHTMLCharacters(t *testing.T) {
	b, err := Marshal(map[string]string{"state_desc": "a&b<c>"})
	require.NoError(t, err)
	assert.Equal(t, `{"state_desc":"a&b<c>"}`, string(b))
}

func sampleRecord() Record {
	soc := 80
	return Record{Kind: KindFinal, Order: "20250917151408000001", Seq: 3,
		StartTime: time.Date(2025, 9, 17, 6, 14, 8, 320e6, time.UTC), EndTime: time.Date(2025, 9, 17, 7, 14, 8, 351e6, time.UTC),
		VIN: "LSTOP103212132001", Plate: "川A660N11", Mobile: "13800138001", QuantityWh: 1000, EnergyFen: 800, ServiceFen: 200,
		State: StateFinished, StateDesc: "SOC已充满", DeviceNo: "TEST250911100001", DeviceType: 0, PortNo: "1", EnergyCode: "CN_AC", SOC: &soc}
}

// The bytes signed are exactly the bytes sent, and the body has the seed's fields and time format.
func TestClientSignsTheBytesItSends(t *testing.T) {
	var gotBody []byte
	var gotAuth, gotCT string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotBody, _ = io.ReadAll(r.Body)
		gotAuth, gotCT = r.Header.Get("Authorization"), r.Header.Get("Content-Type")
		_, _ = w.Write([]byte(`{"code":"1001","seqno":"1"}`))
	}))
	defer srv.Close()
	c, err := NewClient(ClientConfig{BaseURL: srv.URL, AppID: "op00961963581daa7", AppSecret: "s3cret", Timeout: 10 * time.Second, StationUUID: "st"})
	require.NoError(t, err)
	c.now = func() time.Time { return time.UnixMilli(1758093248353) }
	_, err = c.SendRecord(context.Background(), sampleRecord())
	require.NoError(t, err)
	sum := md5.Sum([]byte(string(gotBody) + "&app_secret=s3cret"))
	assert.Equal(t, strings.ToUpper(hex.EncodeToString(sum[:])), gotAuth)
	assert.Equal(t, "application/json; charset=utf-8", gotCT)
	want := `{"app_id":"op00961963581daa7","timestamp":1758093248353,"sign_type":"MD5","station_uuid":"st",` +
		`"order":"20250917151408000001","start_time":"2025-09-17T06:14:08.320Z","end_time":"2025-09-17T07:14:08.351Z",` +
		`"vin":"LSTOP103212132001","plate":"川A660N11","quantity":1000,"energy_value":800,"fee_value":200,"state":3,` +
		`"state_desc":"SOC已充满","device_no":"TEST250911100001","device_type":0,"port_no":"1","energy_code":"CN_AC","soc":80,"mobile":"13800138001"}`
	assert.Equal(t, want, string(gotBody))
	assert.NotContains(t, string(gotBody), "s3cret")
}

func TestClientClassifiesAnswers(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   Outcome
	}{
		{200, `{"code":"1001","seqno":"1"}`, Delivered},
		{200, `{"code":"1500","message":"失败","seqno":"1"}`, RetryPlatform},
		{502, `{"code":"502","seqno":"1"}`, RetryPlatform},
		{500, `<html>oops`, RetryPlatform},
		{200, `{"code":"400","message":"bad","hint":"quantity","seqno":"1"}`, Rejected},
		{200, `{"code":"401","message":"签名错误","seqno":"1"}`, Rejected},
		{403, `{"code":"403","seqno":"1"}`, Rejected},
		{200, `{"code":"2001","message":"other","seqno":"1"}`, RetryRecord},
	}
	for _, tc := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(tc.body))
		}))
		c, err := NewClient(ClientConfig{BaseURL: srv.URL, AppID: "a", AppSecret: "s", Timeout: 10 * time.Second, StationUUID: "st"})
		require.NoError(t, err)
		_, err = c.SendRecord(context.Background(), sampleRecord())
		assert.Equal(t, tc.want, OutcomeOf(err), tc.body)
		if tc.want == Rejected {
			var m map[string]string
			_ = json.Unmarshal([]byte(tc.body), &m)
			assert.Contains(t, err.Error(), m["code"])
		}
		srv.Close()
	}
}

func TestClientTimeoutIsRetryable(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	c, err := NewClient(ClientConfig{BaseURL: srv.URL, AppID: "a", AppSecret: "s", StationUUID: "st", Timeout: 100 * time.Millisecond})
	require.NoError(t, err)
	_, err = c.SendRecord(context.Background(), sampleRecord())
	assert.Equal(t, RetryPlatform, OutcomeOf(err))
}

// A platform answering 100 codes it never documented yields a handful of
// names to count by: the documented codes, HTTP classes, "transport" and
// "other" (each becomes a Prometheus label value).
func TestCodeOfIsBounded(t *testing.T) {
	names := map[string]bool{}
	for i := 0; i < 100; i++ {
		code := fmt.Sprintf("%d", 2000+i)
		names[CodeOf(Response{Code: code}, &CallError{Outcome: RetryRecord, Resp: Response{Code: code}})] = true
		names[CodeOf(Response{}, &CallError{Outcome: RetryPlatform, Status: 500 + i%100})] = true
	}
	names[CodeOf(Response{Code: "1001"}, nil)] = true
	names[CodeOf(Response{}, &CallError{Outcome: Rejected, Resp: Response{Code: "401"}})] = true
	names[CodeOf(Response{}, errors.New("connection refused"))] = true
	assert.Equal(t, map[string]bool{"other": true, "http_5xx": true, "1001": true, "401": true, "transport": true}, names)
}
