package agent

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the agent's Prometheus metrics, on a registry of its own (no
// global state: tests run several agents in one process).
type metrics struct {
	reg         *prometheus.Registry
	invocations *prometheus.CounterVec   // function, trigger, status
	duration    *prometheus.HistogramVec // function
	coldStarts  *prometheus.CounterVec   // function
	initTime    *prometheus.HistogramVec // function
	gbSeconds   *prometheus.CounterVec   // function
	cpuSeconds  *prometheus.CounterVec   // function
}

// latencyBuckets span a warm call (sub-millisecond) to a long timeout.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

func newMetrics(iv *invoker) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefaas_invocations_total", Help: "Invocations by function, trigger and outcome (the X-Faas-Status).",
		}, []string{"function", "trigger", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "edgefaas_invocation_duration_seconds", Help: "Time from the call reaching the agent to its answer, cold starts included.",
			Buckets: latencyBuckets,
		}, []string{"function"}),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefaas_cold_starts_total", Help: "Invocations that had to start an instance first.",
		}, []string{"function"}),
		initTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "edgefaas_instance_init_seconds", Help: "Time to start an instance until it was ready.",
			Buckets: latencyBuckets,
		}, []string{"function"}),
		gbSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefaas_billed_gb_seconds_total", Help: "Billed GB-seconds: configured memory in GiB times billed duration (100 ms units).",
		}, []string{"function"}),
		cpuSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefaas_function_cpu_seconds_total", Help: "CPU time used by invocations, from cgroup and process counters.",
		}, []string{"function"}),
	}
	m.reg.MustRegister(m.invocations, m.duration, m.coldStarts, m.initTime, m.gbSeconds, m.cpuSeconds,
		newInvokerCollector(iv),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "edgefaas_agent"}),
		collectors.NewGoCollector(),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// observe counts one finished invocation.
func (m *metrics) observe(fn, trigger string, res result, d time.Duration, gbs float64) {
	m.invocations.WithLabelValues(fn, trigger, res.FaasStatus).Inc()
	m.duration.WithLabelValues(fn).Observe(d.Seconds())
	if res.Cold {
		m.coldStarts.WithLabelValues(fn).Inc()
		m.initTime.WithLabelValues(fn).Observe(res.InitTime.Seconds())
	}
	if gbs > 0 {
		m.gbSeconds.WithLabelValues(fn).Add(gbs)
	}
	if res.CPUTime > 0 {
		m.cpuSeconds.WithLabelValues(fn).Add(res.CPUTime.Seconds())
	}
}

// invokerCollector reports the invoker's live state at scrape time.
type invokerCollector struct {
	iv                *invoker
	warm, queue, busy *prometheus.Desc
}

// (Descriptors made here, not in package variables: package init runs in
// every sandbox's init too.)
func newInvokerCollector(iv *invoker) *invokerCollector {
	label := []string{"function"}
	return &invokerCollector{iv: iv,
		warm:  prometheus.NewDesc("edgefaas_warm_instances", "Running instances per function.", label, nil),
		queue: prometheus.NewDesc("edgefaas_queue_depth", "Calls waiting for a concurrency slot, per function.", label, nil),
		busy:  prometheus.NewDesc("edgefaas_invocations_in_flight", "Calls running in an instance now, per function.", label, nil),
	}
}

func (c *invokerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.warm
	ch <- c.queue
	ch <- c.busy
}

func (c *invokerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.iv.states() {
		ch <- prometheus.MustNewConstMetric(c.warm, prometheus.GaugeValue, float64(s.instances), s.name)
		ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(s.waiting), s.name)
		ch <- prometheus.MustNewConstMetric(c.busy, prometheus.GaugeValue, float64(s.inflight), s.name)
	}
}
