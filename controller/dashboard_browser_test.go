package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
)

// The dashboard in a real headless Chromium (Debian's package), against a
// real controller. The devices are the tests' own (controller_test.go):
// stand-ins for remote agents, speaking the real link protocol by hand.

// chromium finds the browser. CI installs it (.ci/run), so a missing one
// fails there rather than skipping quietly; EDGEFAAS_SKIP_BROWSER=1 lets a
// machine without it skip.
func chromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("EDGEFAAS_SKIP_BROWSER") == "1" {
		t.Skip("no chromium, and EDGEFAAS_SKIP_BROWSER=1")
	}
	t.Fatal("the dashboard's browser tests need chromium (apt-get install chromium, as .ci/run does); " +
		"set EDGEFAAS_SKIP_BROWSER=1 to skip them")
	return ""
}

// browser is one headless Chromium with one tab, closed (and waited for)
// when the test ends.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func startBrowser(t *testing.T, path, base string) *browser {
	t.Helper()
	// Our own profile directory: when the test ends, no process may still
	// name it (a leftover renderer or zygote).
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.UserDataDir(profile),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU) // NoSandbox: tests run as root
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		_ = chromedp.Cancel(cctx) // closes the browser gracefully
		ccancel()
		cancelTimeout()
		cancel()
		cancelAlloc() // waits for the browser process
		deadline := time.Now().Add(10 * time.Second)
		for len(processesNaming(profile)) > 0 {
			if time.Now().After(deadline) {
				t.Errorf("chromium processes left: %v", processesNaming(profile))
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return &browser{t: t, ctx: ctx, base: base}
}

// processesNaming lists the pids whose command line holds s.
func processesNaming(s string) []string {
	var out []string
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), s) {
			out = append(out, filepath.Base(filepath.Dir(f)))
		}
	}
	return out
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

func eval[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// textOf is the text of the first element sel matches, "" when none.
func textOf(sel string) string {
	q, _ := json.Marshal(sel)
	return fmt.Sprintf(`(document.querySelector(%s) || {}).textContent || ""`, q)
}

// waitText polls the page until the text of sel holds every want, across
// page loads (a click's, or the page refreshing itself), and returns it.
func (b *browser) waitText(sel string, want ...string) string {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var got string
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](textOf(sel)))
		cancel()
		if err == nil { // a navigation in progress fails the call: try again
			got = strings.Join(strings.Fields(v), " ")
			if containsAll(got, want) {
				return got
			}
		}
		if time.Now().After(deadline) {
			loc, _ := chromedp.Run(b.ctx, chromedp.Location())
			b.t.Fatalf("%s on %s: %q, want %q", sel, loc, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func containsAll(s string, want []string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// TestDashboardInChromium walks the dashboard as a person would: log in,
// the fleet, a device, a deployment through the form and its rollout
// finishing while the page refreshes itself, the usage charts, log out.
func TestDashboardInChromium(t *testing.T) {
	path := chromium(t)
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

	b := startBrowser(t, path, tc.http.URL)

	// Login: a wrong token, then the right one.
	b.do(chromedp.Navigate(b.base + "/"))
	b.waitText("h1", "Log in")
	b.do(chromedp.SendKeys(chromedp.ID("token"), "adm_wrong"), chromedp.Click(chromedp.CSS("#login button")))
	b.waitText("#error", "That is not the admin token.")
	b.do(chromedp.SendKeys(chromedp.ID("token"), tc.srv.AdminToken()), chromedp.Click(chromedp.CSS("#login button")))
	b.waitText("#fleet-summary", "2 devices, 2 online.")
	if c := eval[string](b, `document.cookie`); c != "" {
		t.Fatalf("the page's script sees cookies %q: the session cookie must be HttpOnly", c)
	}
	row := func(id string) string { return fmt.Sprintf(`#fleet tr[data-device=%q]`, id) }
	b.waitText(row(farm.id), farm.id, "farm-gw", "online", "1.4.0", "arm64", "site=farm,tier=edge")
	b.waitText(row(depot.id), depot.id, "depot-gw", "online", "1.3.9", "arm", "site=depot")
	if got := eval[string](b, textOf(row(farm.id)+" td.num")); got != "1" {
		t.Fatalf("the farm's function count %q, want 1", got)
	}

	// The farm's page, by its link.
	b.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="/ui/devices/%s"]`, farm.id))))
	b.waitText("#inventory", "online", "farm-gw", "1.4.0", "arm64", "v2", "4 CPUs, 2.0 GiB")
	b.waitText("#health", "1h0m0s")
	b.waitText("#device-inventory", "resize", "3", "sha256:cccccccccccc")
	b.waitText("#device-functions", "legacy", "rolled_back", "not ready within 10s")
	b.waitText("#device-errors", "legacy revision 2 rolled_back: not ready within 10s")
	b.waitText("#device-usage", "resize", "3", "3.0000")

	// A deployment through the form, to the farm only, of an image in the
	// controller's registry.
	pushed := tc.pushRandom(t, "fn", "1")
	b.do(chromedp.Click(chromedp.CSS(`header nav a[href="/ui/deployments"]`)))
	b.waitText("main", "No deployments yet.")
	b.do(
		chromedp.SendKeys(chromedp.ID("name"), "temp"),
		chromedp.SendKeys(chromedp.ID("image"), "fn:1"),
		chromedp.SendKeys(chromedp.ID("selector"), "site=farm"),
		chromedp.SendKeys(chromedp.ID("memory"), "64Mi"),
		chromedp.SendKeys(chromedp.ID("timeout"), "5s"),
		chromedp.SendKeys(chromedp.ID("max"), "2"),
		chromedp.SendKeys(chromedp.ID("env"), "GREETING=hi"),
		chromedp.Click(chromedp.CSS(`#deploy button[type="submit"]`)),
	)
	b.waitText("h1", "Rollout of temp")
	b.waitText("#rollout-status", "rollout in progress")
	b.waitText("#rollout-counts", "0 running, 0 applying, 1 pending, 0 failed of 1")
	b.waitText("#rollout tbody", farm.id, "farm-gw", "online", "pending")
	if n := eval[int](b, `document.querySelectorAll("#rollout tbody tr").length`); n != 1 {
		t.Fatalf("rollout rows: %d, want the farm's only", n)
	}
	loaded := eval[float64](b, `performance.timeOrigin`)

	// The farm gets the desired set and reports it running; the page,
	// left alone, refreshes itself to the end of the rollout.
	ds := farm.readDesired(t)
	if names(ds) != "temp@1" || ds.Functions[0].Spec.Memory != 64<<20 || ds.Functions[0].Spec.Env["GREETING"] != "hi" ||
		ds.Functions[0].Spec.MaxInstances != 2 {
		t.Fatalf("the farm's desired set %+v", ds)
	}
	farm.send(t, proto.TypeStatus, "", proto.Status{Functions: []proto.FunctionStatus{legacy,
		{Name: "temp", Revision: 1, State: proto.StateRunning, Serving: 1, Digest: pushed, AtMs: 2}}})
	b.waitText("#rollout-status", "rollout complete")
	b.waitText("#rollout-counts", "1 running, 0 applying, 0 pending, 0 failed of 1")
	b.waitText("#rollout tbody", farm.id, "running")
	if again := eval[float64](b, `performance.timeOrigin`); again == loaded {
		t.Fatal("the rollout page showed the end without loading again")
	}
	if eval[bool](b, `!!document.querySelector('meta[http-equiv="refresh"]')`) {
		t.Fatal("a finished rollout still refreshes")
	}
	b.do(chromedp.Click(chromedp.CSS(`header nav a[href="/ui/deployments"]`)))
	b.waitText("#deployments", "temp", "fn:1", ShortDigest(pushed), "site=farm", "1/1 running")

	// Usage over the last hour: the charts' titles and bars, the totals.
	b.do(chromedp.Click(chromedp.CSS(`header nav a[href="/ui/usage"]`)))
	b.waitText("h1", "Usage, last 24 hours")
	b.do(chromedp.Click(chromedp.CSS(`a[href="/ui/usage?range=1h"]`)))
	b.waitText("h1", "Usage, last hour")
	b.waitText("#chart-invocations-title", "Invocations, last hour: 9 in total")
	b.waitText("#chart-gbs-title", "GB-seconds, last hour: 7.0000 in total")
	bars := func(chart string) string {
		return strings.Join(eval[[]string](b, fmt.Sprintf(`[...document.querySelectorAll("#%s rect title")].map(e => e.textContent)`, chart)), "; ")
	}
	minute := func(at time.Time) string { return at.UTC().Format("15:04") }
	if got, want := bars("chart-invocations"), minute(thumbAt)+" thumb: 4; "+minute(resizeAt)+" resize: 5"; got != want {
		t.Fatalf("invocation bars %q, want %q", got, want)
	}
	if got, want := bars("chart-gbs"), minute(thumbAt)+" thumb: 2.0000; "+minute(resizeAt)+" resize: 5.0000"; got != want {
		t.Fatalf("GB-s bars %q, want %q", got, want)
	}
	totals := eval[[]string](b, `[...document.querySelectorAll("#usage-totals tbody tr")].map(r => [...r.cells].slice(1, 3).map(c => c.textContent).join(" "))`)
	if got := strings.Join(totals, "; "); got != "resize 3; resize 2; thumb 4" && got != "resize 2; thumb 4; resize 3" {
		t.Fatalf("usage totals %q", got)
	}

	// Log out: the pages are closed again.
	b.do(chromedp.Click(chromedp.CSS(`.logout button`)))
	b.waitText("h1", "Log in")
	b.do(chromedp.Navigate(b.base + "/ui/fleet"))
	b.waitText("h1", "Log in")
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
