package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/simulator"
)

const monitoringDir = "../../deploy/monitoring"

// needProm finds a Prometheus tool, or skips loudly (fails in CI, which
// installs Debian's prometheus package).
func needProm(t *testing.T, tool string) string {
	path, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("PILEBRIDGE_REQUIRE_PROMETHEUS") != "" {
			t.Fatalf("%s not found and PILEBRIDGE_REQUIRE_PROMETHEUS is set (apt-get install prometheus)", tool)
		}
		t.Skipf("SKIPPED LOUDLY: %s not found (apt-get install prometheus)", tool)
	}
	return path
}

// The alert rules parse and pass their unit tests.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtool := needProm(t, "promtool")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}, {"check", "config", "prometheus.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = monitoringDir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// expressions are every PromQL expression of the dashboard and the alerts,
// with Grafana's variables given values promtool can parse.
func expressions(t *testing.T) map[string]string {
	out := map[string]string{}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	b, err := os.ReadFile(filepath.Join(monitoringDir, "grafana-dashboard.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &dash))
	grafana := strings.NewReplacer("$__rate_interval", "1m", "$__range", "1d", "$__interval", "1m", "$instance", ".*", "$station", ".*")
	n := 0
	for _, p := range dash.Panels {
		for i, tg := range p.Targets {
			if tg.Expr != "" {
				out[fmt.Sprintf("dashboard %q #%d", p.Title, i)] = grafana.Replace(tg.Expr)
				n++
			}
		}
	}
	require.GreaterOrEqual(t, n, 10, "the dashboard's expressions")
	for _, v := range dash.Templating.List {
		if m := regexp.MustCompile(`^label_values\((.+), \w+\)$`).FindStringSubmatch(v.Definition); m != nil {
			out["variable "+v.Name] = grafana.Replace(m[1])
		}
	}
	rules, err := os.ReadFile(filepath.Join(monitoringDir, "alerts.yml"))
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`(?m)^\s+- alert: (\w+)\n\s+expr: (.+)$`).FindAllStringSubmatch(string(rules), -1) {
		out["alert "+m[1]] = m[2]
	}
	return out
}

var metricName = regexp.MustCompile(`\b(pilebridge_[a-z_]+|process_[a-z_]+|go_[a-z_]+)\b`)

// Every expression of the dashboard and the alerts parses (promtool, as a
// recording rule each) and names only metrics the running daemon exports
// (compared with scrapes of it: healthy, and with a silent bus).
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	t.Parallel()
	promtool := needProm(t, "promtool")
	exprs := expressions(t)
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: check\n    rules:\n")
	keys := make([]string, 0, len(exprs))
	for k := range exprs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		fmt.Fprintf(&rules, "      - record: check_%d # %s\n        expr: %q\n", i, k, exprs[k])
	}
	file := filepath.Join(t.TempDir(), "exprs.yml")
	require.NoError(t, os.WriteFile(file, []byte(rules.String()), 0o644))
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	require.NoError(t, err, "an expression does not parse:\n%s\n%s", out, rules.String())

	// what the daemon exports: a scrape while it reads the pile, one with
	// the pile silent (the health reasons), one with a plate refused
	s := newStationWith(t, "ref-ac", platesConfig)
	s.startBridge()
	base := "http://" + s.listenAddr()
	ctxCharging(t, s)
	exported := map[string]bool{}
	scrape := func() {
		body := get(t, base+"/metrics", "").body
		for _, l := range strings.Split(body, "\n") {
			if f := strings.Fields(l); len(f) > 2 && f[0] == "#" && f[1] == "TYPE" {
				exported[f[2]] = true
				if f[3] == "histogram" {
					for _, suf := range []string{"_bucket", "_sum", "_count"} {
						exported[f[2]+suf] = true
					}
				}
			}
		}
	}
	s.acSession(7000, func() { time.Sleep(time.Second) }) // a bill: the platform's answers
	s.waitFor("a few readings and the platform's first answers", 10*time.Second, func() bool {
		m := get(t, base+"/metrics", "").body
		return strings.Contains(m, "pilebridge_port_reading_interval_seconds_count") && strings.Contains(m, "pilebridge_upload_answers_total{")
	})
	scrape()
	s.rig.Server.Slave(3).Inject(simulator.Fault{Kind: simulator.FaultNoAnswer})
	s.waitFor("the silent bus in the metrics", 15*time.Second, func() bool {
		return strings.Contains(get(t, base+"/metrics", "").body, `pilebridge_health_reason{bus="l1",kind="bus_silent"} 1`)
	})
	scrape()
	s.rig.Server.Slave(3).Clear()

	used := map[string][]string{}
	for k, e := range exprs {
		for _, m := range metricName.FindAllString(e, -1) {
			used[m] = append(used[m], k)
		}
	}
	require.NotEmpty(t, used)
	for name, where := range used {
		assert.True(t, exported[name], "%s (used by %s) is not exported by the daemon", name, strings.Join(where, ", "))
	}
}

// A real Prometheus (Debian's package) scrapes the real daemon with the
// shipped alert rules (their `for` shortened): the silent-bus alert fires
// when the simulated pile stops answering and resolves when it answers.
func TestRealPrometheusSeesTheSilentBus(t *testing.T) {
	t.Parallel()
	prom := needProm(t, "prometheus")
	s := newStation(t, "listen: 127.0.0.1:0\n")
	s.startBridge()
	target := s.listenAddr()

	dir := t.TempDir()
	rules, err := os.ReadFile(filepath.Join(monitoringDir, "alerts.yml"))
	require.NoError(t, err)
	short := regexp.MustCompile(`(?m)^(\s+)for: \S+$`).ReplaceAll(rules, []byte("${1}for: 0s"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alerts.yml"), short, 0o644))
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [alerts.yml]
scrape_configs:
  - job_name: pilebridge
    static_configs:
      - targets: [%q]
        labels: {station: e2e}
`, target)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	promAddr := l.Addr().String()
	l.Close()
	cmd := exec.Command(prom, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = dieWithTheTest()
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })

	type alert struct {
		Labels map[string]string `json:"labels"`
		State  string            `json:"state"`
	}
	alerts := func() []alert {
		var doc struct {
			Data struct {
				Alerts []alert `json:"alerts"`
			} `json:"data"`
		}
		status, body := tryGet("http://" + promAddr + "/api/v1/alerts")
		if status != 200 || json.Unmarshal([]byte(body), &doc) != nil {
			return nil
		}
		return doc.Data.Alerts
	}
	firing := func(name string) bool {
		for _, a := range alerts() {
			if a.Labels["alertname"] == name && a.State == "firing" && a.Labels["station"] == "e2e" {
				return true
			}
		}
		return false
	}
	up := func() bool {
		status, body := tryGet("http://" + promAddr + "/api/v1/query?query=up")
		return status == 200 && strings.Contains(body, `"1"]`)
	}
	s.waitFor("Prometheus scraping the daemon", 30*time.Second, up)
	time.Sleep(3 * time.Second)
	assert.False(t, firing("PilebridgeBusSilent"), "a healthy bus")

	s.rig.Server.Slave(3).Inject(simulator.Fault{Kind: simulator.FaultNoAnswer})
	silent := time.Now()
	s.waitFor("PilebridgeBusSilent firing in Prometheus", 30*time.Second, func() bool { return firing("PilebridgeBusSilent") })
	t.Logf("fired %s after the pile fell silent (offline_after 2s, scrape and evaluation 1s)", time.Since(silent).Round(100*time.Millisecond))
	s.rig.Server.Slave(3).Clear()
	back := time.Now()
	s.waitFor("PilebridgeBusSilent resolved", 30*time.Second, func() bool { return !firing("PilebridgeBusSilent") })
	t.Logf("resolved %s after the pile answered again", time.Since(back).Round(100*time.Millisecond))
}

// tryGet is a GET that may fail (Prometheus still starting): status 0.
func tryGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
