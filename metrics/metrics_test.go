package metrics

import (
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestExpositionParsesAsPrometheusWould(t *testing.T) {
	r := New()
	calls := r.Counter("calls_total", "Calls by function\nand status.", "function", "status")
	lat := r.Histogram("latency_seconds", "Latency.", []float64{0.1, 0.01, 1}, "function")
	r.GaugeFunc("up", "Always 1.", nil, func(emit func(float64, ...string)) { emit(1) })
	r.CounterFunc("done_total", "Read at scrape.", []string{"kind"}, func(emit func(float64, ...string)) {
		emit(3, "a")
		emit(4, `q"uo\te`)
	})
	r.RegisterProcess("agent")
	calls.Inc("f", "ok")
	calls.Add(2.5, "f", "ok")
	calls.Inc(`we"ird\name`+"\n", "error")
	for _, v := range []float64{0.005, 0.01, 0.05, 0.5, 5} {
		lat.Observe(v, "f")
	}
	if got := calls.Value("f", "ok"); got != 3.5 {
		t.Fatalf("Value = %v, want 3.5", got)
	}

	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("content type %q", ct)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, rec.Body.String())
	}
	got := map[string]float64{}
	for _, m := range fams["calls_total"].GetMetric() {
		key := ""
		for _, l := range m.GetLabel() {
			key += l.GetName() + "=" + l.GetValue() + ";"
		}
		got[key] = m.GetCounter().GetValue()
	}
	want := map[string]float64{"function=f;status=ok;": 3.5, "function=we\"ird\\name\n;status=error;": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("calls_total{%s} = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if h := fams["calls_total"].GetHelp(); h != "Calls by function\nand status." {
		t.Errorf("help %q", h)
	}
	hist := fams["latency_seconds"].GetMetric()[0].GetHistogram()
	if hist.GetSampleCount() != 5 || math.Abs(hist.GetSampleSum()-5.565) > 1e-9 {
		t.Errorf("histogram count %d sum %v", hist.GetSampleCount(), hist.GetSampleSum())
	}
	wantCum := []uint64{2, 3, 4, 5} // <= 0.01, <= 0.1, <= 1 (buckets sorted), +Inf
	if len(hist.GetBucket()) != len(wantCum) {
		t.Fatalf("%d buckets, want %d", len(hist.GetBucket()), len(wantCum))
	}
	for i, b := range hist.GetBucket() {
		if b.GetCumulativeCount() != wantCum[i] {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), wantCum[i])
		}
	}
	if fams["done_total"].GetType().String() != "COUNTER" || len(fams["done_total"].GetMetric()) != 2 {
		t.Errorf("done_total: %v", fams["done_total"])
	}
	if v := fams["agent_process_resident_memory_bytes"].GetMetric()[0].GetGauge().GetValue(); v <= 0 {
		t.Errorf("resident memory %v", v)
	}
	if v := fams["go_goroutines"].GetMetric()[0].GetGauge().GetValue(); v < 1 {
		t.Errorf("goroutines %v", v)
	}
}
