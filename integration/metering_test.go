package integration

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/metering"
	"github.com/edgefaas/edgefaas/store"
)

func (a *agentProc) usage(t testing.TB, args ...string) []api.Usage {
	t.Helper()
	var rows []api.Usage
	out := a.mustCLI(append([]string{"usage", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("usage --json: %v: %s", err, out)
	}
	return rows
}

func TestMeteringTotalsAndMetrics(t *testing.T) {
	a := startAgent(t)
	a.mustCLI("deploy", "m", "--image", built.testfn, "--memory", "128Mi")
	const ok, crashes = 120, 3
	for range crashes {
		a.call(http.MethodGet, "/function/m/crash", "").want(t, 502, "crashed")
	}
	for range ok {
		a.call(http.MethodPost, "/function/m/echo", "x").want(t, 200, "ok")
	}
	a.call(http.MethodGet, "/function/nope", "").want(t, 404, "not_found") // not a function: not billed

	rows := a.usage(t, "m")
	if len(rows) != 1 {
		t.Fatalf("usage rows: %+v", rows)
	}
	u := rows[0]
	const n = ok + crashes
	// Billing: whole 100 ms units, at least one per call (a loaded machine
	// may push a cold start past 100 ms, so the exact sum is the unit
	// test's job, with known durations), and GB-s = 0.125 GiB x billed s.
	if u.Invocations != n || u.Errors != crashes || u.BilledMs < n*100 || u.BilledMs%100 != 0 {
		t.Fatalf("usage %+v; want %d invocations, %d errors, at least %d billed ms in 100 ms units", u, n, crashes, n*100)
	}
	if want := float64(u.BilledMs) / 1000 * 0.125; math.Abs(u.GBSeconds-want) > 1e-9 {
		t.Fatalf("GB-s %v, want %v for %d billed ms at 128 MiB", u.GBSeconds, want, u.BilledMs)
	}
	// Each crash costs its instance, so every crash call and the first call
	// after them start one.
	if u.ColdStarts != crashes+1 {
		t.Fatalf("cold starts %d, want %d", u.ColdStarts, crashes+1)
	}
	if out := a.mustCLI("usage"); !strings.Contains(out, "INVOCATIONS") || !strings.Contains(out, "123") {
		t.Fatalf("usage table: %s", out)
	}

	// /metrics, parsed as Prometheus would.
	resp, err := http.Get(a.gw + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	counter := func(family string, labels map[string]string) float64 {
		for _, m := range families[family].GetMetric() {
			match := true
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					match = false
				}
			}
			if match {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s%v in /metrics", family, labels)
		return 0
	}
	if got := counter("edgefaas_invocations_total", map[string]string{"function": "m", "trigger": "http", "status": "ok"}); got != ok {
		t.Errorf("ok invocations %v, want %d", got, ok)
	}
	if got := counter("edgefaas_invocations_total", map[string]string{"function": "m", "status": "crashed"}); got != crashes {
		t.Errorf("crashed invocations %v, want %d", got, crashes)
	}
	if got := counter("edgefaas_cold_starts_total", map[string]string{"function": "m"}); got != crashes+1 {
		t.Errorf("cold starts %v", got)
	}
	if got := counter("edgefaas_billed_gb_seconds_total", map[string]string{"function": "m"}); math.Abs(got-u.GBSeconds) > 1e-9 {
		t.Errorf("billed GB-s in /metrics %v, in the ledger %v", got, u.GBSeconds)
	}
	if got := counter("edgefaas_warm_instances", map[string]string{"function": "m"}); got != 1 {
		t.Errorf("warm instances %v", got)
	}
	if h := families["edgefaas_invocation_duration_seconds"]; h == nil || h.GetType().String() != "HISTOGRAM" {
		t.Errorf("no duration histogram")
	}
	if got := counter("edgefaas_agent_process_resident_memory_bytes", nil); got <= 0 {
		t.Errorf("agent resident memory %v", got)
	}
}

// TestKill9KeepsEveryAnsweredRecord: every call answered before kill -9 has
// its record after the restart, with sequence numbers 1..n.
func TestKill9KeepsEveryAnsweredRecord(t *testing.T) {
	a := startAgent(t)
	a.mustCLI("deploy", "k", "--image", built.busybox, "--env", "SCRIPT=cat")
	var answered []string
	for range 200 {
		ans := a.call(http.MethodPost, "/function/k", "x").want(t, 200, "ok")
		answered = append(answered, ans.header.Get("X-Call-Id"))
	}
	a.kill9()

	db, err := store.Open(context.Background(), filepath.Join(a.state, "edgefaas.db"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := metering.Open(db, metering.Config{})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := l.Unacked(context.Background(), 0, 10000)
	l.Close()
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(answered) {
		t.Fatalf("%d records after kill -9, %d calls answered", len(recs), len(answered))
	}
	for i, r := range recs {
		if r.Seq != int64(i+1) || r.CallID != answered[i] {
			t.Fatalf("record %d: seq %d call %s; want seq %d call %s", i, r.Seq, r.CallID, i+1, answered[i])
		}
	}
	a.start()
	if u := a.usage(t, "k"); len(u) != 1 || u[0].Invocations != int64(len(answered)) {
		t.Fatalf("usage after restart: %+v", u)
	}
}
