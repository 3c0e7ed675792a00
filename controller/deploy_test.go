package controller

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
)

// fakeDigest is a well-formed digest of nothing stored.
func fakeDigest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

// pushRandom pushes a random image to the controller's registry as
// repo:tag and returns its manifest's digest.
func (tc *testController) pushRandom(t *testing.T, repo, tag string) string {
	t.Helper()
	return tc.pushImage(t, repo+":"+tag).digest
}

// names lists a desired set's functions as name@revision.
func names(d proto.Desired) string {
	var out []string
	for _, f := range d.Functions {
		out = append(out, fmt.Sprintf("%s@%d", f.Spec.Name, f.Revision))
	}
	return strings.Join(out, " ")
}

// readDesired reads frames until a desired set arrives.
func (d *device) readDesired(t *testing.T) proto.Desired {
	t.Helper()
	for {
		e := d.read(t)
		if e.Type != proto.TypeDesired {
			continue
		}
		ds, err := proto.DecodeBody[proto.Desired](e)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
}

// TestDeploymentsReachSelectedDevices: a deployment goes, as a desired
// set, to the linked devices its selector picks and only to them, at once
// and on their next link; a new revision and an undeploy follow; the
// devices' status reports make the rollout.
func TestDeploymentsReachSelectedDevices(t *testing.T) {
	tc := startController(t, Config{})
	ctx := t.Context()
	farm := tc.enrol(t, map[string]string{"site": "farm", "arch": "arm64"})
	factory := tc.enrol(t, map[string]string{"site": "factory"})
	tc.connect(t, farm, farm.key)
	tc.connect(t, factory, factory.key)
	if len(farm.desired.Functions) != 0 {
		t.Fatalf("desired before any deployment: %+v", farm.desired)
	}

	one, two := tc.pushRandom(t, "fn", "1"), tc.pushRandom(t, "fn", "2")
	d, err := tc.client.Deploy(ctx, DeployRequest{Image: "fn:1", Selector: map[string]string{"site": "farm"},
		Spec: api.FunctionSpec{Name: "temp", Memory: 64 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Revision != 1 || d.Repository != "fn" || d.Digest != one {
		t.Fatalf("deployment %+v", d)
	}
	got := farm.readDesired(t)
	if names(got) != "temp@1" || got.Functions[0].Digest != one || got.Functions[0].Spec.Memory != 64<<20 {
		t.Fatalf("farm's desired set %+v", got)
	}

	ro, err := tc.client.Rollout(ctx, "temp")
	if err != nil {
		t.Fatal(err)
	}
	if len(ro.Devices) != 1 || ro.Devices[0].Device != farm.id || ro.Devices[0].State != StatePending || ro.Done {
		t.Fatalf("rollout before any report: %+v", ro)
	}
	farm.send(t, proto.TypeStatus, "", proto.Status{Functions: []proto.FunctionStatus{
		{Name: "temp", Revision: 1, State: proto.StateRunning, Serving: 1, Digest: one, AtMs: 1}}})
	waitFor(t, 5*time.Second, "rollout done", func() bool {
		ro, err = tc.client.Rollout(ctx, "temp")
		return err == nil && ro.Done && ro.Running == 1
	})

	// A second revision that fails on the device: rolled back, with why.
	if _, err := tc.client.Deploy(ctx, DeployRequest{Image: "fn@" + two, Selector: map[string]string{"site": "farm"},
		Spec: api.FunctionSpec{Name: "temp"}}); err != nil {
		t.Fatal(err)
	}
	if got := farm.readDesired(t); names(got) != "temp@2" || got.Functions[0].Digest != two {
		t.Fatalf("farm's second desired set %+v", got)
	}
	ro, _ = tc.client.Rollout(ctx, "temp")
	if ro.Devices[0].State != StatePending || ro.Devices[0].Serving != 1 {
		t.Fatalf("rollout of revision 2 before a report: %+v", ro.Devices[0])
	}
	farm.send(t, proto.TypeStatus, "", proto.Status{Functions: []proto.FunctionStatus{
		{Name: "temp", Revision: 2, State: proto.StateRolledBack, Reason: "not ready within 10s", Serving: 1, AtMs: 2}}})
	waitFor(t, 5*time.Second, "rollout failed", func() bool {
		ro, err = tc.client.Rollout(ctx, "temp")
		return err == nil && ro.Failed == 1
	})
	if r := ro.Devices[0]; r.State != proto.StateRolledBack || r.Reason != "not ready within 10s" || r.Serving != 1 || ro.Done {
		t.Fatalf("rollout after the failure: %+v", ro)
	}
	fns, err := tc.client.DeviceFunctions(ctx, farm.id)
	if err != nil || len(fns) != 1 || fns[0].Reason != "not ready within 10s" {
		t.Fatalf("device functions %+v %v", fns, err)
	}

	// A device that links later gets the set at once; the factory never.
	late := tc.enrol(t, map[string]string{"site": "farm"})
	tc.connect(t, late, late.key)
	if names(late.desired) != "temp@2" {
		t.Fatalf("late device's first desired set %+v", late.desired)
	}

	if err := tc.client.Undeploy(ctx, "temp"); err != nil {
		t.Fatal(err)
	}
	if got := farm.readDesired(t); len(got.Functions) != 0 {
		t.Fatalf("desired after undeploy %+v", got)
	}
	if _, err := tc.client.Rollout(ctx, "temp"); !isStatus(err, 404) {
		t.Fatalf("rollout of a deleted deployment: %v", err)
	}
	// Made again under the same name: a revision never used before, so
	// no device takes it for the one it applied.
	again, err := tc.client.Deploy(ctx, DeployRequest{Image: "fn:1", Selector: map[string]string{"site": "farm"},
		Spec: api.FunctionSpec{Name: "temp"}})
	if err != nil || again.Revision != 3 {
		t.Fatalf("deployment made again: revision %d, %v; want 3", again.Revision, err)
	}
	if got := farm.readDesired(t); names(got) != "temp@3" {
		t.Fatalf("desired after the new deployment %+v", got)
	}
	// The digest a deployment pins cannot be deleted from the registry.
	if r := tc.do(t, http.MethodDelete, "/v2/fn/manifests/"+one, "", nil); r.code != http.StatusConflict {
		t.Fatalf("deleting a pinned manifest: %d %s", r.code, r.body)
	}
	if r := tc.do(t, http.MethodDelete, "/v2/fn/manifests/"+two, "", nil); r.code != http.StatusAccepted {
		t.Fatalf("deleting a manifest no deployment pins: %d %s", r.code, r.body)
	}
	// The factory heard nothing but its first, empty set.
	_ = factory.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, b, err := factory.conn.ReadMessage(); err == nil {
		t.Fatalf("the factory was sent %s", b)
	}
}

func isStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}

// TestDeployRefusals: bad deployments are refused with 400, nothing stored.
func TestDeployRefusals(t *testing.T) {
	tc := startController(t, Config{})
	good := api.FunctionSpec{Name: "f"}
	tests := []struct {
		name string
		req  DeployRequest
	}{
		{"bad name", DeployRequest{Image: "fn@" + fakeDigest('a'), Spec: api.FunctionSpec{Name: "F_1"}}},
		{"no image", DeployRequest{Spec: good}},
		{"bad selector", DeployRequest{Image: "fn@" + fakeDigest('a'), Selector: map[string]string{"a b": "c"}, Spec: good}},
		{"bad mode", DeployRequest{Image: "fn@" + fakeDigest('a'), Spec: api.FunctionSpec{Name: "f", Mode: "wasm"}}},
		{"negative memory", DeployRequest{Image: "fn@" + fakeDigest('a'), Spec: api.FunctionSpec{Name: "f", Memory: -1}}},
		{"bad reference", DeployRequest{Image: "http://fn", Spec: good}},
		{"min over max", DeployRequest{Image: "fn@" + fakeDigest('a'), Spec: api.FunctionSpec{Name: "f", MinInstances: 3, MaxInstances: 2}}},
		{"empty MQTT filter", DeployRequest{Image: "fn@" + fakeDigest('a'), Spec: api.FunctionSpec{Name: "f", MQTT: []api.MQTTBinding{{}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tc.client.Deploy(t.Context(), tt.req); !isStatus(err, 400) {
				t.Fatalf("got %v, want 400", err)
			}
		})
	}
	// A spec too large for its share of a desired set's frame: 413.
	big := api.FunctionSpec{Name: "f", Env: map[string]string{"BLOB": strings.Repeat("x", MaxDeploymentBytes)}}
	if _, err := tc.client.Deploy(t.Context(), DeployRequest{Image: "fn@" + fakeDigest('a'), Spec: big}); !isStatus(err, 413) {
		t.Fatalf("an oversized spec: got %v, want 413", err)
	}
	// An image the registry does not hold: 404, nothing stored.
	for _, ref := range []string{"fn:1", "fn@" + fakeDigest('a'), "nothing"} {
		if _, err := tc.client.Deploy(t.Context(), DeployRequest{Image: ref, Spec: good}); !isStatus(err, 404) {
			t.Fatalf("deploy of missing image %s: got %v, want 404", ref, err)
		}
	}
	if ds, err := tc.client.Deployments(t.Context()); err != nil || len(ds) != 0 {
		t.Fatalf("deployments after refusals: %+v %v", ds, err)
	}
}

// TestStoreUsageSeries: records fall into the buckets of their start.
func TestStoreUsageSeries(t *testing.T) {
	s, err := OpenStore(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var recs []proto.UsageRecord
	for i, off := range []time.Duration{0, 59 * time.Minute, 61 * time.Minute, 3 * time.Hour} {
		recs = append(recs, proto.UsageRecord{Seq: int64(i + 1), CallID: fmt.Sprint(i), Function: "f", Trigger: "http",
			StartNs: base.Add(off).UnixNano(), KiBMs: 1024 * 1024 * 1000, Status: "ok"})
	}
	if _, err := s.PutUsage(t.Context(), []UsageBatch{{Device: "d", Records: recs}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.UsageSeries(t.Context(), UsageQuery{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var sum []string
	for _, b := range got {
		sum = append(sum, fmt.Sprintf("%s:%d:%.0f", b.Start.Format("15:04"), b.Invocations, b.GBSeconds))
	}
	if g := strings.Join(sum, " "); g != "10:00:2:2 11:00:1:1 13:00:1:1" {
		t.Fatalf("series %q", g)
	}
	if _, err := s.UsageSeries(t.Context(), UsageQuery{}, time.Millisecond); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("a 1ms bucket: %v", err)
	}
}
