package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
	"pilebridge/simulator"
)

// browser finds headless Chromium. Without one the test is skipped, unless
// PILEBRIDGE_REQUIRE_BROWSER is set (CI installs it and sets it).
func browser(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("PILEBRIDGE_REQUIRE_BROWSER") != "" {
		t.Fatal("no chromium on PATH (PILEBRIDGE_REQUIRE_BROWSER is set)")
	}
	t.Skip("no chromium on PATH")
	return ""
}

func headless(t *testing.T, bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir()}
	out, err := exec.CommandContext(ctx, bin, append(base, args...)...).Output()
	require.NoError(t, err, "chromium %v", args)
	return string(out)
}

// The status page in a real browser, against the daemon and the simulator
// mid-session: every port with its live state, and a parked bill.
// PILEBRIDGE_SCREENSHOT=docs/status-page.png keeps a phone-sized screenshot.
func TestStatusPageInBrowser(t *testing.T) {
	t.Parallel()
	bin := browser(t)
	s := newStation(t, "listen: 127.0.0.1:0\n")
	s.startBridge()
	listen := s.listenAddr()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.charging(ctx)

	// a first session whose bill the platform rejects
	s.plat.Inject(simulator.PlatformFault{Path: simulator.PathReplenish, Match: `"state":3`, Kind: "401", Count: 1})
	s.startSession(60000)
	time.Sleep(1200 * time.Millisecond)
	s.set(meter.StatusFinished, 0, 1)
	s.waitFor("the bill parked", 10*time.Second, func() bool {
		o, _, _ := runCLI(t, "outbox", "list", "--config", s.config)
		return strings.Contains(o, "parked") && strings.Contains(o, "final")
	})
	s.setAndSee(meter.StatusIdle, 0, 0, "idle")
	// a second one, charging now
	s.startSession(60000)
	s.waitFor("the second session charging", 10*time.Second, func() bool {
		return strings.Count(s.log(), `"to":"charging"`) >= 2
	})

	dom := headless(t, bin, "--dump-dom", "http://"+listen+"/?lang=zh")
	assert.Contains(t, dom, `data-port="E2E01/1"`)
	assert.Contains(t, dom, `data-state="charging"`, "the port's live state")
	assert.Contains(t, dom, "充电中")
	assert.Contains(t, dom, "kWh")
	assert.Contains(t, dom, `class="parked"`, "the parked bill is listed")
	assert.Contains(t, dom, "401")
	assert.Contains(t, dom, "需要处理", "health says what needs attention")
	assert.Contains(t, dom, "条记录被平台拒收", "the reason in the page's language")
	assert.NotContains(t, dom, "parked by the platform", "not in English on the Chinese page")
	assert.Contains(t, dom, `http-equiv="refresh"`, "it refreshes itself")
	assert.NotContains(t, dom, "<script", "works without JavaScript")

	en := headless(t, bin, "--dump-dom", "http://"+listen+"/?lang=en")
	assert.Contains(t, en, "charging")
	assert.Contains(t, en, "Records the platform rejected")
	assert.Contains(t, en, "record(s) parked by the platform")

	shot := os.Getenv("PILEBRIDGE_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "status.png")
	} else if !filepath.IsAbs(shot) {
		shot = filepath.Join("..", "..", shot) // relative to the repository
	}
	headless(t, bin, "--screenshot="+shot, "--window-size=420,1600", "http://"+listen+"/?lang=zh")
	st, err := os.Stat(shot)
	require.NoError(t, err)
	assert.Greater(t, st.Size(), int64(10_000), "a real rendering")
}
