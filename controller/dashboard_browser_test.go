package controller

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/internal/testbrowser"
)

// The dashboard in a real headless Chromium (Debian's package), against a
// real controller. The devices are the tests' own (controller_test.go):
// stand-ins for remote agents, speaking the real link protocol by hand.

// TestDashboardInChromium walks the dashboard as a person would: log in,
// the fleet, a device, a deployment through the form and its rollout
// finishing while the page refreshes itself, the usage charts, log out.
func TestDashboardInChromium(t *testing.T) {
	path := testbrowser.Path(t)
	checkGoroutines(t) // before the rest: its cleanup runs after the browser's and the controller's
	tc := startController(t, Config{})
	farm := tc.enrolAs(t, "farm-gw", map[string]string{"site": "farm", "tier": "edge"})
	depot := tc.enrolAs(t, "depot-gw", map[string]string{"site": "depot"})
	tc.connect(t, farm, farm.key)
	tc.connect(t, depot, depot.key)
	farm.send(t, proto.TypeHello, "", proto.Hello{Version: "1.4.0", Arch: "arm64", CgroupMode: "v2",
		Functions: []proto.FunctionVersion{{Name: "resize", Version: 3, ImageDigest: fakeDigest('c')}},
		Resources: &proto.Resources{CPUs: 4, MemoryBytes: 2 << 30}})
	farm.send(t, proto.TypeHealth, "", proto.Health{UptimeMs: 3_600_000, Instances: 1, Functions: 1})
	depot.send(t, proto.TypeHello, "", proto.Hello{Version: "1.3.9", Arch: "arm", CgroupMode: "v1"})
	legacy := proto.FunctionStatus{Name: "legacy", Revision: 2, State: proto.StateRolledBack,
		Reason: "not ready within 10s", Serving: 1, AtMs: 1}
	farm.send(t, proto.TypeStatus, "", proto.Status{Functions: []proto.FunctionStatus{legacy}})

	// Usage: resize 3 calls on the farm and 2 on the depot now, thumb 4
	// calls on the depot 10 minutes ago; 1 GB-s a resize, 0.5 a thumb.
	now := time.Now()
	resizeAt, thumbAt := now, now.Add(-10*time.Minute)
	seed := func(d *device, from int64, fn string, n int, at time.Time, kibMs int64) {
		var recs []proto.UsageRecord
		for i := range int64(n) {
			recs = append(recs, proto.UsageRecord{Seq: from + i, CallID: fmt.Sprintf("%s-%d", fn, from+i), Function: fn,
				Trigger: "http", StartNs: at.UnixNano(), BilledMs: 1000, KiBMs: kibMs, Status: "ok"})
		}
		d.send(t, proto.TypeUsage, fn, proto.Usage{Records: recs})
		if e := d.read(t); e.Type != proto.TypeUsageAck {
			t.Fatalf("usage: got %s, want usage_ack", e.Type)
		}
	}
	const gib1s = 1024 * 1024 * 1000 // KiB·ms in 1 GB-s
	seed(farm, 1, "resize", 3, resizeAt, gib1s)
	seed(depot, 1, "resize", 2, resizeAt, gib1s)
	seed(depot, 3, "thumb", 4, thumbAt, gib1s/2)
	waitFor(t, 5*time.Second, "the farm's status stored", func() bool {
		fns, err := tc.client.DeviceFunctions(t.Context(), farm.id)
		return err == nil && len(fns) == 1
	})

	b := testbrowser.Start(t, path)
	base := tc.http.URL

	// Login: a wrong token, then the right one.
	b.Do(chromedp.Navigate(base + "/"))
	b.WaitText("h1", "Log in")
	b.Do(chromedp.SendKeys(chromedp.ID("token"), "adm_wrong"), chromedp.Click(chromedp.CSS("#login button")))
	b.WaitText("#error", "That is not the admin token.")
	b.Do(chromedp.SendKeys(chromedp.ID("token"), tc.srv.AdminToken()), chromedp.Click(chromedp.CSS("#login button")))
	b.WaitText("#fleet-summary", "2 devices, 2 online.")
	if c := testbrowser.Eval[string](b, `document.cookie`); c != "" {
		t.Fatalf("the page's script sees cookies %q: the session cookie must be HttpOnly", c)
	}
	row := func(id string) string { return fmt.Sprintf(`#fleet tr[data-device=%q]`, id) }
	b.WaitText(row(farm.id), farm.id, "farm-gw", "online", "1.4.0", "arm64", "site=farm,tier=edge")
	b.WaitText(row(depot.id), depot.id, "depot-gw", "online", "1.3.9", "arm", "site=depot")
	if got := testbrowser.Eval[string](b, testbrowser.TextOf(row(farm.id)+" td.num")); got != "1" {
		t.Fatalf("the farm's function count %q, want 1", got)
	}

	// The farm's page, by its link.
	b.Do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="/ui/devices/%s"]`, farm.id))))
	b.WaitText("#inventory", "online", "farm-gw", "1.4.0", "arm64", "v2", "4 CPUs, 2.0 GiB")
	b.WaitText("#health", "1h0m0s")
	b.WaitText("#device-inventory", "resize", "3", "sha256:cccccccccccc")
	b.WaitText("#device-functions", "legacy", "rolled_back", "not ready within 10s")
	b.WaitText("#device-errors", "legacy revision 2 rolled_back: not ready within 10s")
	b.WaitText("#device-usage", "resize", "3", "3.0000")

	// A deployment through the form, to the farm only, of an image in the
	// controller's registry.
	pushed := tc.pushRandom(t, "fn", "1")
	b.Do(chromedp.Click(chromedp.CSS(`header nav a[href="/ui/deployments"]`)))
	b.WaitText("main", "No deployments yet.")
	b.Do(
		chromedp.SendKeys(chromedp.ID("name"), "temp"),
		chromedp.SendKeys(chromedp.ID("image"), "fn:1"),
		chromedp.SendKeys(chromedp.ID("selector"), "site=farm"),
		chromedp.SendKeys(chromedp.ID("memory"), "64Mi"),
		chromedp.SendKeys(chromedp.ID("timeout"), "5s"),
		chromedp.SendKeys(chromedp.ID("max"), "2"),
		chromedp.SendKeys(chromedp.ID("env"), "GREETING=hi"),
		chromedp.Click(chromedp.CSS(`#deploy button[type="submit"]`)),
	)
	b.WaitText("h1", "Rollout of temp")
	b.WaitText("#rollout-status", "rollout in progress")
	b.WaitText("#rollout-counts", "0 running, 0 applying, 1 pending, 0 failed of 1")
	b.WaitText("#rollout tbody", farm.id, "farm-gw", "online", "pending")
	if n := testbrowser.Eval[int](b, `document.querySelectorAll("#rollout tbody tr").length`); n != 1 {
		t.Fatalf("rollout rows: %d, want the farm's only", n)
	}
	loaded := testbrowser.Eval[float64](b, `performance.timeOrigin`)

	// The farm gets the desired set and reports it running; the page,
	// left alone, refreshes itself to the end of the rollout.
	ds := farm.readDesired(t)
	if names(ds) != "temp@1" || ds.Functions[0].Spec.Memory != 64<<20 || ds.Functions[0].Spec.Env["GREETING"] != "hi" ||
		ds.Functions[0].Spec.MaxInstances != 2 {
		t.Fatalf("the farm's desired set %+v", ds)
	}
	farm.send(t, proto.TypeStatus, "", proto.Status{Functions: []proto.FunctionStatus{legacy,
		{Name: "temp", Revision: 1, State: proto.StateRunning, Serving: 1, Digest: pushed, AtMs: 2}}})
	b.WaitText("#rollout-status", "rollout complete")
	b.WaitText("#rollout-counts", "1 running, 0 applying, 0 pending, 0 failed of 1")
	b.WaitText("#rollout tbody", farm.id, "running")
	if again := testbrowser.Eval[float64](b, `performance.timeOrigin`); again == loaded {
		t.Fatal("the rollout page showed the end without loading again")
	}
	if testbrowser.Eval[bool](b, `!!document.querySelector('meta[http-equiv="refresh"]')`) {
		t.Fatal("a finished rollout still refreshes")
	}
	b.Do(chromedp.Click(chromedp.CSS(`header nav a[href="/ui/deployments"]`)))
	b.WaitText("#deployments", "temp", "fn:1", ShortDigest(pushed), "site=farm", "1/1 running")

	// Usage over the last hour: the charts' titles and bars, the totals.
	b.Do(chromedp.Click(chromedp.CSS(`header nav a[href="/ui/usage"]`)))
	b.WaitText("h1", "Usage, last 24 hours")
	b.Do(chromedp.Click(chromedp.CSS(`a[href="/ui/usage?range=1h"]`)))
	b.WaitText("h1", "Usage, last hour")
	b.WaitText("#chart-invocations-title", "Invocations, last hour: 9 in total")
	b.WaitText("#chart-gbs-title", "GB-seconds, last hour: 7.0000 in total")
	bars := func(chart string) string {
		return strings.Join(testbrowser.Eval[[]string](b, fmt.Sprintf(`[...document.querySelectorAll("#%s rect title")].map(e => e.textContent)`, chart)), "; ")
	}
	minute := func(at time.Time) string { return at.UTC().Format("15:04") }
	if got, want := bars("chart-invocations"), minute(thumbAt)+" thumb: 4; "+minute(resizeAt)+" resize: 5"; got != want {
		t.Fatalf("invocation bars %q, want %q", got, want)
	}
	if got, want := bars("chart-gbs"), minute(thumbAt)+" thumb: 2.0000; "+minute(resizeAt)+" resize: 5.0000"; got != want {
		t.Fatalf("GB-s bars %q, want %q", got, want)
	}
	totals := testbrowser.Eval[[]string](b, `[...document.querySelectorAll("#usage-totals tbody tr")].map(r => [...r.cells].slice(1, 3).map(c => c.textContent).join(" "))`)
	if got := strings.Join(totals, "; "); got != "resize 3; resize 2; thumb 4" && got != "resize 2; thumb 4; resize 3" {
		t.Fatalf("usage totals %q", got)
	}

	// Log out: the pages are closed again.
	b.Do(chromedp.Click(chromedp.CSS(`.logout button`)))
	b.WaitText("h1", "Log in")
	b.Do(chromedp.Navigate(base + "/ui/fleet"))
	b.WaitText("h1", "Log in")
}

// checkGoroutines fails the test if, once every other cleanup ran, more
// goroutines are left than when it started (a few idle keep-alive
// connections ending late are allowed for).
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before+2 {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
