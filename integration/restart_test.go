package integration

import (
	"net/http"
	"os"
	"testing"
)

func TestKill9ThenRestartCleansUpAndKeepsFunctions(t *testing.T) {
	a := startAgent(t)
	a.mustCLI("deploy", "web", "--image", built.testfn)
	a.mustCLI("deploy", "sh", "--image", built.busybox, "--env", "SCRIPT=cat")
	a.call(http.MethodPost, "/function/web/echo", "x").want(t, 200, "ok")
	a.call(http.MethodPost, "/function/sh", "x").want(t, 200, "ok")
	before := append(a.sandboxPids("web"), a.sandboxPids("sh")...)
	if len(before) < 2 {
		t.Fatalf("want running sandboxes of both functions, found pids %v", before)
	}

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
