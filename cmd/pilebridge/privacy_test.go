package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
	"pilebridge/simulator"
)

type httpAnswer struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, url, token string) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpAnswer{resp.StatusCode, resp.Header, string(b)}
}

// Personal data on the local API: VIN and plate are shown only with the
// bearer token; without it (a browser, anyone on the station LAN, a local
// user) they are masked on /status, /sessions and /outbox, and always on
// the page. Every answer says nosniff, the page has a strict CSP, JSON is
// no-store. /sessions and /outbox come in pages that the CLI follows.
func TestPersonalDataNeedsTheToken(t *testing.T) {
	t.Parallel()
	vin, plate := "LDC12345678901234", "川AD66011"
	s := newStation(t, "listen: 127.0.0.1:0\nplates: {"+vin+": "+plate+"}\n")
	b := s.startBridge()
	listen := s.listenAddr()
	ctxCharging(t, s)
	for i := 0; i < 3; i++ {
		s.oneBill(60000)
	}
	s.waitFor("three bills delivered", 10*time.Second, func() bool { return len(s.finals()) == 3 })
	token := s.token()
	base := "http://" + listen
	maskedVIN, maskedPlate := "LDC**************", "川A******"
	time.Sleep(500 * time.Millisecond) // the last delivery recorded

	for _, path := range []string{"/status?recent=5", "/sessions", "/outbox?all=1"} {
		open := get(t, base+path, "")
		require.Equal(t, http.StatusOK, open.status, path)
		assert.NotContains(t, open.body, vin, "%s without the token", path)
		assert.NotContains(t, open.body, plate, "%s without the token", path)
		assert.Contains(t, open.body, maskedVIN, "%s shows the masked VIN", path)
		assert.Contains(t, open.body, maskedPlate, "%s shows the masked plate", path)
		assert.Equal(t, "no-store", open.header.Get("Cache-Control"), path)
		withToken := get(t, base+path, token)
		assert.Contains(t, withToken.body, vin, "%s with the token", path)
		assert.Contains(t, withToken.body, plate, "%s with the token", path)
		wrong := get(t, base+path, strings.Repeat("0", len(token)))
		assert.NotContains(t, wrong.body, vin, "%s with a wrong token", path)
	}
	page := get(t, base+"/", token)
	assert.NotContains(t, page.body, vin, "the page masks, token or not")
	assert.NotContains(t, page.body, plate)
	assert.Contains(t, page.header.Get("Content-Security-Policy"), "default-src 'none'")
	assert.NotContains(t, page.header.Get("Content-Security-Policy"), "script-src")
	for _, path := range []string{"/", "/status", "/sessions", "/outbox", "/healthz", "/metrics", "/nope"} {
		assert.Equal(t, "nosniff", get(t, base+path, "").header.Get("X-Content-Type-Options"), path)
	}

	// pages: one bill at a time, each page pointing to the next
	var orders []string
	next := "/sessions?limit=1"
	for next != "" {
		a := get(t, base+next, token)
		require.Equal(t, http.StatusOK, a.status, next)
		var page []struct {
			Record struct {
				Order string `json:"order"`
			} `json:"record"`
		}
		require.NoError(t, json.Unmarshal([]byte(a.body), &page))
		require.LessOrEqual(t, len(page), 1)
		for _, e := range page {
			orders = append(orders, e.Record.Order)
		}
		next = ""
		if m := regexp.MustCompile(`<([^>]+)>;\s*rel="next"`).FindStringSubmatch(a.header.Get("Link")); m != nil {
			next = m[1]
		}
	}
	assert.Len(t, orders, 3, "every bill once across the pages")
	assert.Equal(t, http.StatusBadRequest, get(t, base+"/sessions?limit=100000", token).status, "a page is bounded")
	outboxPage := get(t, base+"/outbox?all=1&limit=1", token)
	assert.Contains(t, outboxPage.header.Get("Link"), "after=")

	// the CLI sends the token and follows the pages
	out, err := exec.Command(bridgeBin, "sessions", "--json", "--config", s.config).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, 3, strings.Count(string(out), vin), "the CLI, with the token file, sees every bill unmasked")
	require.NoError(t, b.stop(syscall.SIGTERM))
}

// ctxCharging runs the station's pile integration for the test's life.
func ctxCharging(t *testing.T, s *testStation) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				_ = s.pile.Tick()
			}
		}
	}()
}

// Issue 28, item 2: the platform refuses a bill and quotes its VIN, plate
// and mobile in its message. Without the token none of them shows in
// /status, /outbox or the page, and the log never has them in full.
func TestPlatformQuotingTheRecordIsMasked(t *testing.T) {
	t.Parallel()
	s := newStation(t, "listen: 127.0.0.1:0\nplates:\n  vins: {LDC12345678901234: 川AQQK15}\n")
	s.plat.Inject(simulator.PlatformFault{Path: simulator.PathReplenish, Kind: "quote", Count: 1_000_000})
	s.startBridge()
	base := "http://" + s.listenAddr()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.charging(ctx)
	s.startSession(60000)
	time.Sleep(1500 * time.Millisecond)
	s.set(meter.StatusFinished, 0, 1)
	s.waitFor("the bill parked with the platform's message", 15*time.Second, func() bool {
		return strings.Contains(get(t, base+"/status", "").body, "bad record plate=")
	})
	secrets := []string{"LDC12345678901234", "川AQQK15"}
	for _, page := range []string{"/status", "/outbox?all=1", "/"} {
		body := get(t, base+page, "").body
		for _, sec := range secrets {
			assert.NotContains(t, body, sec, "%s without the token", page)
		}
	}
	for _, sec := range secrets {
		assert.NotContains(t, s.log(), sec, "the log")
	}
	assert.Contains(t, get(t, base+"/status", "").body, "bad record plate=川A*****", "the message is kept, masked")
}
