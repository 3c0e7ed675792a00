package integration

import (
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgefaas/edgefaas/internal/testbrowser"
)

// TestCloudDashboardDeploy: the dashboard in headless Chromium against the
// real edgecloud and a real enrolled agent: log in, see the gateway in the
// fleet, deploy an image pushed with skopeo through the form, watch the
// rollout page refresh itself until the agent runs it, invoke it on the
// gateway, and find the invocations on the usage page.
func TestCloudDashboardDeploy(t *testing.T) {
	path := testbrowser.Path(t)
	c := startCloud(t)
	a, device := startCloudAgent(t, c)
	c.push(t, built.testfn, "demo/hello:1")
	b := testbrowser.Start(t, path)

	b.Do(chromedp.Navigate(c.url + "/"))
	b.WaitText("h1", "Log in")
	b.Do(chromedp.SendKeys(chromedp.ID("token"), c.adminToken()), chromedp.Click(chromedp.CSS("#login button")))
	b.WaitText("#fleet", device, "online", "site=test,tier=edge")

	b.Do(chromedp.Click(chromedp.CSS(`header nav a[href="/ui/deployments"]`)))
	b.Do(
		chromedp.SendKeys(chromedp.ID("name"), "hello"),
		chromedp.SendKeys(chromedp.ID("image"), "demo/hello:1"),
		chromedp.SendKeys(chromedp.ID("selector"), "site=test"),
		chromedp.SendKeys(chromedp.ID("memory"), "64Mi"),
		chromedp.SendKeys(chromedp.ID("env"), "GREETING=from the dashboard"),
		chromedp.Click(chromedp.CSS(`#deploy button[type="submit"]`)),
	)
	b.WaitText("h1", "Rollout of hello")
	b.WaitTextFor(60*time.Second, "#rollout-status", "rollout complete")
	b.WaitText("#rollout tbody", device, "online", "running")

	if got := a.call(http.MethodGet, "/function/hello/env?k=GREETING", "").want(t, 200, "ok").body; got != "from the dashboard" {
		t.Fatalf("GREETING = %q, want the form's", got)
	}
	for range 4 {
		a.call(http.MethodPost, "/function/hello/echo", "x").want(t, 200, "ok")
	}
	waitFor(t, 30*time.Second, "the invocations at the controller", func() bool { return c.invocations(device) == 5 })
	b.Do(chromedp.Navigate(c.url + "/ui/usage?range=1h"))
	b.WaitText("#usage-totals", device, "hello", "5")
	b.Do(chromedp.Navigate(c.url + "/ui/devices/" + device))
	b.WaitText("#device-functions", "hello", "running")
}
