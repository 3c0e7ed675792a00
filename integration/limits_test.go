package integration

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cgroupV1 skips a test that reads v1 controller files when the machine is
// on the unified hierarchy (the cgroups package's own tests cover v2).
func cgroupV1(t *testing.T, controller string) {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/" + controller); err != nil {
		t.Skipf("reads cgroup v1 %s files; this machine has none", controller)
	}
}

func TestMemoryLimitKillsOnlyTheHog(t *testing.T) {
	a := startAgent(t, "--prewarm", "-1") // one sandbox per function: no parked one beside it
	a.mustCLI("deploy", "hog", "--image", built.testfn, "--memory", "48Mi")
	a.mustCLI("deploy", "calm", "--image", built.testfn)
	a.call(http.MethodPost, "/function/calm/echo", "before").want(t, 200, "ok")
	ans := a.call(http.MethodGet, "/function/hog/oom", "").want(t, 502, "oom")
	if !strings.Contains(ans.body, "memory limit") {
		t.Fatalf("oom body %q", ans.body)
	}
	a.call(http.MethodPost, "/function/calm/echo", "after").want(t, 200, "ok")
	// The hog comes back in a new instance on its next call.
	a.call(http.MethodPost, "/function/hog/echo", "again").want(t, 200, "ok")
}

func TestExecModeMemoryLimit(t *testing.T) {
	a := startAgent(t, "--prewarm", "-1") // one sandbox per function: no parked one beside it
	// A shell variable that grows past 32 MiB.
	a.mustCLI("deploy", "grow", "--image", built.busybox, "--memory", "32Mi", "--env",
		`SCRIPT=x=aaaaaaaaaaaaaaaa; while :; do x="$x$x"; done`)
	a.call(http.MethodPost, "/function/grow", "").want(t, 502, "oom")
}

func TestForkBombStopsAtPidsLimit(t *testing.T) {
	cgroupV1(t, "pids")
	a := startAgent(t, "--prewarm", "-1") // one sandbox per function: no parked one beside it
	a.mustCLI("deploy", "forker", "--image", built.testfn, "--pids", "24", "--timeout", "30s")
	ans := a.call(http.MethodGet, "/function/forker/fork", "").want(t, 200, "ok")
	var started, failed int
	if _, err := fmt.Sscanf(ans.body, "started=%d failed=%d", &started, &failed); err != nil {
		t.Fatalf("body %q: %v", ans.body, err)
	}
	if failed == 0 || started >= 24 {
		t.Fatalf("started=%d failed=%d: the pids limit of 24 did not stop the forks", started, failed)
	}
	if got := a.cgroupFile(t, "forker", "pids", "pids.max"); got != "24" {
		t.Fatalf("pids.max = %s", got)
	}
	cur, _ := strconv.Atoi(a.cgroupFile(t, "forker", "pids", "pids.current"))
	if cur > 24 {
		t.Fatalf("pids.current = %d, above the limit", cur)
	}
	// The gateway and other functions are unharmed.
	a.mustCLI("deploy", "calm", "--image", built.testfn)
	a.call(http.MethodPost, "/function/calm/echo", "x").want(t, 200, "ok")
}

func TestBusyLoopCappedByCPULimit(t *testing.T) {
	cgroupV1(t, "cpu")
	a := startAgent(t, "--prewarm", "-1") // one sandbox per function: no parked one beside it
	a.mustCLI("deploy", "spin", "--image", built.testfn, "--cpu", "100m", "--timeout", "20s")
	a.call(http.MethodGet, "/function/spin/spin?for=1500ms", "").want(t, 200, "ok")
	if got := a.cgroupFile(t, "spin", "cpu", "cpu.cfs_quota_us"); got != "10000" {
		t.Fatalf("cpu.cfs_quota_us = %s, want 10000 (100m of a 100000us period)", got)
	}
	stat := a.cgroupFile(t, "spin", "cpu", "cpu.stat")
	var throttled int
	for _, line := range strings.Split(stat, "\n") {
		if v, ok := strings.CutPrefix(line, "nr_throttled "); ok {
			throttled, _ = strconv.Atoi(v)
		}
	}
	if throttled == 0 {
		t.Fatalf("never throttled: %s", stat)
	}
	usage, _ := strconv.ParseInt(a.cgroupFile(t, "spin", "cpuacct", "cpuacct.usage"), 10, 64)
	// The loop ran 1.5 s of wall time; at 100m it may use about 0.15 s of
	// CPU. Allow start-up and slack, but far below what an unlimited loop
	// takes (1.5 s).
	if cpu := time.Duration(usage); cpu > 600*time.Millisecond {
		t.Fatalf("CPU time %s for a 1.5 s loop under a 100m limit", cpu)
	}
}

func TestTimeoutKillsAndLeavesNothing(t *testing.T) {
	tests := []struct {
		name string
		args []string
		path string
	}{
		{"http", []string{"--image", built.testfn}, "/hang"},
		{"exec", []string{"--image", built.busybox, "--env", "SCRIPT=sleep 600 & sleep 600"}, "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No prewarming: after the timeout nothing of the function
			// may remain, not even a parked sandbox for its next call.
			a := startAgent(t, "--prewarm", "-1")
			a.mustCLI(append([]string{"deploy", "stuck", "--timeout", "1s"}, tt.args...)...)
			ans := a.call(http.MethodPost, "/function/stuck"+tt.path, "").want(t, 504, "timeout")
			if !strings.Contains(ans.body, "timed out after 1s") {
				t.Fatalf("body %q", ans.body)
			}
			waitFor(t, 5*time.Second, "the timed-out sandbox to go", func() bool {
				return len(a.sandboxPids("stuck")) == 0 && len(a.sandboxCgroups()) == 0
			})
			if m := a.hostMounts(); len(m) > 0 {
				t.Fatalf("mounts remain: %v", m)
			}
		})
	}
}
