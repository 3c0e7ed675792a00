// Package metrics is a small Prometheus registry: counters and histograms
// with labels, gauges read at scrape time, and the text exposition format
// (version 0.0.4) that Prometheus scrapes.
//
// It exists instead of client_golang because the agent binary is also
// every sandbox's init: client_golang (with protobuf and procfs) added
// 2.2 MiB to the binary and about 1 ms of package initialisation to every
// sandbox start. It is not a general client: no summaries, no exemplars,
// no protobuf format.
package metrics

import (
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Registry holds metric families and writes them in the order they were
// made. It is safe for concurrent use.
type Registry struct {
	mu   sync.Mutex
	fams []writerTo
}

type writerTo interface{ writeTo(w io.Writer) }

// New returns an empty registry.
func New() *Registry { return &Registry{} }

func (r *Registry) add(f writerTo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fams = append(r.fams, f)
}

// ServeHTTP writes every family in the text exposition format.
func (r *Registry) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	r.Write(w)
}

// Write writes every family in the text exposition format.
func (r *Registry) Write(w io.Writer) {
	r.mu.Lock()
	fams := slices.Clone(r.fams)
	r.mu.Unlock()
	for _, f := range fams {
		f.writeTo(w)
	}
}

// desc is what every family has.
type desc struct {
	name, help, kind string
	labels           []string
}

func (d desc) header(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", d.name, escapeHelp(d.help), d.name, d.kind)
}

// Counter is a family of counters, one per combination of label values.
type Counter struct {
	desc
	mu     sync.Mutex
	series map[string]*counterSeries
}

type counterSeries struct {
	values []string
	v      float64
}

// Counter makes a counter family with the given label names.
func (r *Registry) Counter(name, help string, labels ...string) *Counter {
	c := &Counter{desc: desc{name, help, "counter", labels}, series: map[string]*counterSeries{}}
	r.add(c)
	return c
}

// Add adds v (>= 0) to the series with the given label values, in the
// order of the family's label names.
func (c *Counter) Add(v float64, values ...string) {
	key := strings.Join(values, "\xff")
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.series[key]
	if s == nil {
		s = &counterSeries{values: slices.Clone(values)}
		c.series[key] = s
	}
	s.v += v
}

// Inc adds 1.
func (c *Counter) Inc(values ...string) { c.Add(1, values...) }

// Value returns a series' value (for tests).
func (c *Counter) Value(values ...string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.series[strings.Join(values, "\xff")]; s != nil {
		return s.v
	}
	return 0
}

func (c *Counter) writeTo(w io.Writer) {
	c.header(w)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, key := range slices.Sorted(maps.Keys(c.series)) {
		s := c.series[key]
		fmt.Fprintf(w, "%s%s %s\n", c.name, labelSet(c.labels, s.values, "", ""), formatFloat(s.v))
	}
}

// Histogram is a family of histograms with fixed buckets.
type Histogram struct {
	desc
	buckets []float64 // upper bounds, ascending, without +Inf
	mu      sync.Mutex
	series  map[string]*histSeries
}

type histSeries struct {
	values []string
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

// Histogram makes a histogram family with the given bucket upper bounds.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *Histogram {
	h := &Histogram{desc: desc{name, help, "histogram", labels}, buckets: slices.Sorted(slices.Values(buckets)),
		series: map[string]*histSeries{}}
	r.add(h)
	return h
}

// Observe records v in the series with the given label values.
func (h *Histogram) Observe(v float64, values ...string) {
	key := strings.Join(values, "\xff")
	i, _ := slices.BinarySearch(h.buckets, v) // the first bound >= v
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.series[key]
	if s == nil {
		s = &histSeries{values: slices.Clone(values), counts: make([]uint64, len(h.buckets)+1)}
		h.series[key] = s
	}
	s.counts[i]++
	s.sum += v
	s.count++
}

func (h *Histogram) writeTo(w io.Writer) {
	h.header(w)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, key := range slices.Sorted(maps.Keys(h.series)) {
		s := h.series[key]
		var cum uint64
		for i, le := range h.buckets {
			cum += s.counts[i]
			fmt.Fprintf(w, "%s_bucket%s %d\n", h.name, labelSet(h.labels, s.values, "le", formatFloat(le)), cum)
		}
		fmt.Fprintf(w, "%s_bucket%s %d\n", h.name, labelSet(h.labels, s.values, "le", "+Inf"), s.count)
		fmt.Fprintf(w, "%s_sum%s %s\n", h.name, labelSet(h.labels, s.values, "", ""), formatFloat(s.sum))
		fmt.Fprintf(w, "%s_count%s %d\n", h.name, labelSet(h.labels, s.values, "", ""), s.count)
	}
}

// scraped is a gauge or counter family whose values are read at scrape
// time (GaugeFunc, CounterFunc).
type scraped struct {
	desc
	collect func(emit func(v float64, values ...string))
}

// GaugeFunc makes a gauge family; collect emits its series at each scrape.
func (r *Registry) GaugeFunc(name, help string, labels []string, collect func(emit func(v float64, values ...string))) {
	r.add(&scraped{desc: desc{name, help, "gauge", labels}, collect: collect})
}

// CounterFunc makes a counter family whose values are read at scrape time
// (a total kept elsewhere, such as the process's CPU time).
func (r *Registry) CounterFunc(name, help string, labels []string, collect func(emit func(v float64, values ...string))) {
	r.add(&scraped{desc: desc{name, help, "counter", labels}, collect: collect})
}

func (g *scraped) writeTo(w io.Writer) {
	g.header(w)
	g.collect(func(v float64, values ...string) {
		fmt.Fprintf(w, "%s%s %s\n", g.name, labelSet(g.labels, values, "", ""), formatFloat(v))
	})
}

// labelSet formats {name="value",...}, with an extra label when extra is
// not empty; "" when there are no labels.
func labelSet(names, values []string, extra, extraValue string) string {
	if len(names) == 0 && extra == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		v := ""
		if i < len(values) {
			v = values[i]
		}
		b.WriteString(n + `="` + escapeValue(v) + `"`)
	}
	if extra != "" {
		if len(names) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(extra + `="` + extraValue + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

var valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escapeValue(s string) string { return valueEscaper.Replace(s) }

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

func escapeHelp(s string) string { return helpEscaper.Replace(s) }

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
