package agent

import (
	"net/http"
	"time"

	"github.com/edgefaas/edgefaas/metrics"
)

// metricsSet are the agent's Prometheus metrics, on a registry of its own
// (no global state: tests run several agents in one process).
type metricsSet struct {
	reg         *metrics.Registry
	invocations *metrics.Counter   // function, trigger, status
	duration    *metrics.Histogram // function
	coldStarts  *metrics.Counter   // function
	initTime    *metrics.Histogram // function
	gbSeconds   *metrics.Counter   // function
	cpuSeconds  *metrics.Counter   // function
}

// latencyBuckets span a warm call (sub-millisecond) to a long timeout.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

func newMetrics(iv *invoker) *metricsSet {
	reg := metrics.New()
	m := &metricsSet{
		reg: reg,
		invocations: reg.Counter("edgefaas_invocations_total",
			"Invocations by function, trigger and outcome (the X-Faas-Status).", "function", "trigger", "status"),
		duration: reg.Histogram("edgefaas_invocation_duration_seconds",
			"Time from the call reaching the agent to its answer, cold starts included.", latencyBuckets, "function"),
		coldStarts: reg.Counter("edgefaas_cold_starts_total", "Invocations that had to start an instance first.", "function"),
		initTime: reg.Histogram("edgefaas_instance_init_seconds",
			"Time to start an instance until it was ready.", latencyBuckets, "function"),
		gbSeconds: reg.Counter("edgefaas_billed_gb_seconds_total",
			"Billed GB-seconds: configured memory in GiB times billed duration (100 ms units).", "function"),
		cpuSeconds: reg.Counter("edgefaas_function_cpu_seconds_total",
			"CPU time used by invocations, from cgroup and process counters.", "function"),
	}
	fn := []string{"function"}
	reg.GaugeFunc("edgefaas_warm_instances", "Running instances per function.", fn, func(emit func(float64, ...string)) {
		for _, s := range iv.states() {
			emit(float64(s.instances), s.name)
		}
	})
	reg.GaugeFunc("edgefaas_queue_depth", "Calls waiting for a concurrency slot, per function.", fn, func(emit func(float64, ...string)) {
		for _, s := range iv.states() {
			emit(float64(s.waiting), s.name)
		}
	})
	reg.GaugeFunc("edgefaas_invocations_in_flight", "Calls running in an instance now, per function.", fn, func(emit func(float64, ...string)) {
		for _, s := range iv.states() {
			emit(float64(s.inflight), s.name)
		}
	})
	reg.RegisterProcess("edgefaas_agent")
	return m
}

func (m *metricsSet) handler() http.Handler { return m.reg }

// observe counts one finished invocation.
func (m *metricsSet) observe(fn, trigger string, res result, d time.Duration, gbs float64) {
	m.invocations.Inc(fn, trigger, res.FaasStatus)
	m.duration.Observe(d.Seconds(), fn)
	if res.Cold {
		m.coldStarts.Inc(fn)
		m.initTime.Observe(res.InitTime.Seconds(), fn)
	}
	if gbs > 0 {
		m.gbSeconds.Add(gbs, fn)
	}
	if res.CPUTime > 0 {
		m.cpuSeconds.Add(res.CPUTime.Seconds(), fn)
	}
}
