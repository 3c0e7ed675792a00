package integration

import (
	"net/http"
	"os"
	"slices"
	"testing"
	"time"
)

func TestKill9ThenRestartCleansUpAndKeepsFunctions(t *testing.T) {
	a := startAgent(t)
	a.mustCLI("deploy", "web", "--image", built.testfn)
	a.mustCLI("deploy", "sh", "--image", built.busybox, "--env", "SCRIPT=cat")
	a.call(http.MethodPost, "/function/web/echo", "x").want(t, 200, "ok")
	a.call(http.MethodPost, "/function/sh", "x").want(t, 200, "ok")
	// Each call leaves an instance and, being recent, a prewarmed sandbox.
	// Wait until both are made: a sandbox caught while it is being created
	// has short-lived setup processes that die with the agent.
	// The same pids at two polls in a row (waitFor's delay grows to
	// 100 ms), so that none is a passing one.
	var before []int
	waitFor(t, 10*time.Second, "an instance and a prewarmed sandbox of each function", func() bool {
		web, sh := a.sandboxPids("web"), a.sandboxPids("sh")
		now := append(web, sh...)
		settled := len(web) == 2 && len(sh) == 2 && slices.Equal(now, before)
		before = now
		return settled
	})

	a.kill9()
	// The sandboxes outlive a crashed agent: that is what the next start
	// must clean up.
	for _, pid := range before {
		if !alive(pid) {
			t.Fatalf("sandbox process %d died with the agent; the test proves nothing", pid)
		}
	}
	oldCgroups := a.sandboxCgroups()

	a.start()
	for _, pid := range before {
		if alive(pid) {
			t.Errorf("leftover sandbox process %d survived the restart", pid)
		}
	}
	for _, d := range oldCgroups {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("leftover cgroup %s survived the restart", d)
		}
	}
	if m := a.hostMounts(); len(m) > 0 {
		t.Errorf("mounts remain: %v", m)
	}
	fns, err := a.client().Functions(t.Context())
	if err != nil || len(fns) != 2 {
		t.Fatalf("functions after restart: %+v %v", fns, err)
	}
	a.call(http.MethodPost, "/function/web/echo", "y").want(t, 200, "ok")
	a.call(http.MethodPost, "/function/sh", "y").want(t, 200, "ok")
}
