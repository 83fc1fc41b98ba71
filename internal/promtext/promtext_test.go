package promtext

import (
	"bytes"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	tReqs = &Desc{Name: "t_requests_total", Help: "Requests by code.\nSecond line with a \\.", Type: Counter, Labels: []string{"path", "code"}}
	tTemp = &Desc{Name: "t_temperature", Help: "A gauge.", Type: Gauge}
	tLat  = &Desc{Name: "t_latency_seconds", Help: "A histogram.", Type: Histogram, Labels: []string{"port"}}
)

func TestTextFormat(t *testing.T) {
	s := NewScrape()
	s.Add(tReqs, 3, "/b", "500")
	s.Add(tReqs, 7, `/a"q"`+"\n"+`\x`, "200")
	s.Add(tTemp, -1.5)
	h := NewHistogram([]float64{0.5, 1, 2})
	for _, v := range []float64{0.1, 0.5, 0.7, 1.5, 9} {
		h.Observe(v)
	}
	s.AddHistogram(tLat, h.Snapshot(), "P1")
	var b bytes.Buffer
	n, err := s.WriteTo(&b)
	require.NoError(t, err)
	assert.EqualValues(t, b.Len(), n)
	// written by hand from the format's description: families by name,
	// labels by name, escapes, cumulative buckets, +Inf = count
	want := `# HELP t_latency_seconds A histogram.
# TYPE t_latency_seconds histogram
t_latency_seconds_bucket{port="P1",le="0.5"} 2
t_latency_seconds_bucket{port="P1",le="1"} 3
t_latency_seconds_bucket{port="P1",le="2"} 4
t_latency_seconds_bucket{port="P1",le="+Inf"} 5
t_latency_seconds_sum{port="P1"} 11.8
t_latency_seconds_count{port="P1"} 5
# HELP t_requests_total Requests by code.\nSecond line with a \\.
# TYPE t_requests_total counter
t_requests_total{code="200",path="/a\"q\"\n\\x"} 7
t_requests_total{code="500",path="/b"} 3
# HELP t_temperature A gauge.
# TYPE t_temperature gauge
t_temperature -1.5
`
	assert.Equal(t, want, b.String())
}

// promtool, the Prometheus project's own checker, accepts a whole scrape
// including the runtime's and the process's families.
func TestPromtoolAcceptsAScrape(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus): the format is not checked by Prometheus's own tool")
	}
	s := NewScrape()
	s.Add(tReqs, 1, "/", "200")
	s.Add(tTemp, 21)
	h := NewHistogram([]float64{1, 2})
	h.Observe(1.5)
	s.AddHistogram(tLat, h.Snapshot(), "P1")
	s.AddRuntime()
	var b bytes.Buffer
	_, err = s.WriteTo(&b)
	require.NoError(t, err)
	for _, name := range []string{"process_start_time_seconds", "process_resident_memory_bytes", "process_cpu_seconds_total", "go_goroutines"} {
		assert.Contains(t, b.String(), "\n"+name+" ", "a scrape names %s", name)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &b
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", out)
}

// For any observations, the buckets are cumulative and end at the count,
// and the sum is the observations' sum (to a millionth each).
func TestHistogramProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	bounds := []float64{0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60}
	for round := 0; round < 200; round++ {
		h := NewHistogram(bounds)
		n := rng.IntN(50)
		var sum float64
		perBucket := make([]uint64, len(bounds))
		for i := 0; i < n; i++ {
			v := rng.Float64() * 80
			sum += v
			for k, ub := range bounds {
				if v <= ub {
					perBucket[k]++
					break
				}
			}
			h.Observe(v)
		}
		snap := h.Snapshot()
		assert.EqualValues(t, n, snap.Count)
		assert.Equal(t, perBucket, snap.Counts)
		assert.InDelta(t, sum, snap.Sum, 1e-6*float64(n+1))
	}
}

func TestObserveAllocatesNothing(t *testing.T) {
	h := NewHistogram([]float64{1, 2, 3})
	allocs := testing.AllocsPerRun(100, func() { h.Observe(1.5) })
	assert.Zero(t, allocs)
}
