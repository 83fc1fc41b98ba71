// Package promtext writes the Prometheus text exposition format (version
// 0.0.4): families with their HELP and TYPE, series with sorted, escaped
// labels, and histograms with cumulative buckets.
//
// It replaces prometheus/client_golang in the daemon, whose registry,
// protobuf and procfs graph cost the daemon 4.5 MB of binary and part of
// its resident memory on a board (docs/bench.md), for what the daemon needs:
// every value is read at scrape time, except one histogram per port.
package promtext

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// ContentType is the text format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Type is a family's TYPE.
type Type string

// The types the daemon exports.
const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Histogram Type = "histogram"
)

// Desc describes a family: its name, help text, type and label names.
type Desc struct {
	Name   string
	Help   string
	Type   Type
	Labels []string
}

// Scrape collects one scrape's series, then writes them grouped by family.
type Scrape struct {
	series map[*Desc][]series
}

type series struct {
	labels string // rendered and sorted: `a="x",b="y"`
	value  float64
	hist   *HistogramSnapshot
}

// NewScrape starts an empty scrape.
func NewScrape() *Scrape { return &Scrape{series: map[*Desc][]series{}} }

// Add records a counter or gauge value with the desc's label values, in the
// order of desc.Labels.
func (s *Scrape) Add(d *Desc, v float64, labelValues ...string) {
	s.series[d] = append(s.series[d], series{labels: render(d, labelValues), value: v})
}

// AddHistogram records a histogram's state with the desc's label values.
func (s *Scrape) AddHistogram(d *Desc, h HistogramSnapshot, labelValues ...string) {
	s.series[d] = append(s.series[d], series{labels: render(d, labelValues), hist: &h})
}

// render gives the label pairs sorted by name, as Prometheus clients print
// them; a missing value is empty, an extra one is dropped.
func render(d *Desc, values []string) string {
	if len(d.Labels) == 0 {
		return ""
	}
	idx := make([]int, len(d.Labels))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(d.Labels[a], d.Labels[b]) })
	var b strings.Builder
	for n, i := range idx {
		if n > 0 {
			b.WriteByte(',')
		}
		v := ""
		if i < len(values) {
			v = values[i]
		}
		b.WriteString(d.Labels[i])
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(v))
		b.WriteByte('"')
	}
	return b.String()
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// WriteTo writes the families sorted by name, each family's series sorted
// by their labels.
func (s *Scrape) WriteTo(w io.Writer) (int64, error) {
	descs := make([]*Desc, 0, len(s.series))
	for d := range s.series {
		descs = append(descs, d)
	}
	slices.SortFunc(descs, func(a, b *Desc) int { return strings.Compare(a.Name, b.Name) })
	cw := &countWriter{w: bufio.NewWriter(w)}
	for _, d := range descs {
		ss := s.series[d]
		slices.SortStableFunc(ss, func(a, b series) int { return strings.Compare(a.labels, b.labels) })
		cw.str("# HELP " + d.Name + " " + helpEscaper.Replace(d.Help) + "\n# TYPE " + d.Name + " " + string(d.Type) + "\n")
		for _, x := range ss {
			if x.hist == nil {
				cw.sample(d.Name, x.labels, "", x.value)
				continue
			}
			var cum uint64
			for i, ub := range x.hist.Bounds {
				cum += x.hist.Counts[i]
				cw.sample(d.Name+"_bucket", x.labels, `le="`+formatFloat(ub)+`"`, float64(cum))
			}
			cw.sample(d.Name+"_bucket", x.labels, `le="+Inf"`, float64(x.hist.Count))
			cw.sample(d.Name+"_sum", x.labels, "", x.hist.Sum)
			cw.sample(d.Name+"_count", x.labels, "", float64(x.hist.Count))
		}
	}
	if cw.err == nil {
		cw.err = cw.w.Flush()
	}
	return cw.n, cw.err
}

type countWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countWriter) str(s string) {
	if c.err != nil {
		return
	}
	n, err := c.w.WriteString(s)
	c.n += int64(n)
	c.err = err
}

func (c *countWriter) sample(name, labels, extra string, v float64) {
	c.str(name)
	if labels != "" || extra != "" {
		c.str("{" + labels)
		if labels != "" && extra != "" {
			c.str(",")
		}
		c.str(extra + "}")
	}
	c.str(" " + formatFloat(v) + "\n")
}

// formatFloat prints a value as Prometheus clients do: shortest form, and
// +Inf, -Inf and NaN by name.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// HistogramValues is a histogram with fixed upper bounds, safe for one
// writer and concurrent snapshots; Observe takes no lock and allocates
// nothing (it runs on every reading of every port).
type HistogramValues struct {
	bounds   []float64
	counts   []atomic.Uint64
	count    atomic.Uint64
	sumMicro atomic.Int64 // the sum in millionths: atomic without a CAS loop
}

// NewHistogram makes a histogram with the given ascending upper bounds.
func NewHistogram(bounds []float64) *HistogramValues {
	return &HistogramValues{bounds: bounds, counts: make([]atomic.Uint64, len(bounds))}
}

// Observe counts v in the first bucket whose bound is ≥ v.
func (h *HistogramValues) Observe(v float64) {
	if i, _ := slices.BinarySearch(h.bounds, v); i < len(h.bounds) {
		h.counts[i].Add(1)
	}
	h.sumMicro.Add(int64(math.Round(v * 1e6)))
	h.count.Add(1)
}

// HistogramSnapshot is a histogram's state at a scrape: per-bucket (not
// cumulative) counts, the total count and the sum.
type HistogramSnapshot struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Snapshot reads the histogram. Count is read first, so a concurrent
// Observe never leaves the +Inf bucket below a finite one.
func (h *HistogramValues) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Bounds: h.bounds, Counts: make([]uint64, len(h.bounds))}
	s.Count = h.count.Load()
	var inBuckets uint64
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
		inBuckets += s.Counts[i]
	}
	if inBuckets > s.Count {
		s.Count = inBuckets
	}
	s.Sum = float64(h.sumMicro.Load()) / 1e6
	return s
}
