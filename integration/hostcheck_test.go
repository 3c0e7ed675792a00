package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/cgroups"
)

// sandboxCgroups lists the cgroup directories of the agent's sandboxes, in
// every hierarchy (cgroup v1 controllers, or the v2 unified tree).
func (a *agentProc) sandboxCgroups() []string {
	var dirs []string
	for _, pattern := range []string{"/sys/fs/cgroup/*/" + a.cgroupParent + "/*", "/sys/fs/cgroup/" + a.cgroupParent + "/*"} {
		m, _ := filepath.Glob(pattern)
		for _, d := range m {
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

// cgroupFile reads a file of the only sandbox of fn in one v1 controller
// (or the v2 tree when controller is "").
func (a *agentProc) cgroupFile(t testing.TB, fn, controller, file string) string {
	t.Helper()
	base := "/sys/fs/cgroup/" + controller + "/" + a.cgroupParent
	if controller == "" {
		base = "/sys/fs/cgroup/" + a.cgroupParent
	}
	m, _ := filepath.Glob(base + "/" + fn + "-v*")
	if len(m) != 1 {
		t.Fatalf("want one sandbox cgroup of %s in %s, found %v", fn, base, m)
	}
	b, err := os.ReadFile(filepath.Join(m[0], file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// sandboxPids lists host processes that live in one of the agent's sandbox
// cgroups (of one function when fn is not empty).
func (a *agentProc) sandboxPids(fn string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	needle := "/" + a.cgroupParent + "/" + fn
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		if err == nil && strings.Contains(string(b), needle) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// programPids are sandboxPids without held inits (prewarmed sandboxes:
// the agent binary parked as "init", the function's program not started).
func (a *agentProc) programPids(fn string) []int {
	var out []int
	for _, pid := range a.sandboxPids(fn) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if args := strings.Split(string(b), "\x00"); len(args) > 1 && args[1] == "init" {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// hostMounts lists host mount points below the agent's state directory
// (there should be none: sandbox mounts live in their own namespaces).
func (a *agentProc) hostMounts() []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], a.state) {
			out = append(out, f[4])
		}
	}
	return out
}

// assertNoCgroups checks, after the agent stopped, that nothing of its
// sandboxes is left on the host.
func (a *agentProc) assertNoCgroups() {
	t := a.t
	t.Helper()
	if d := a.sandboxCgroups(); len(d) > 0 {
		t.Errorf("cgroups left after the agent stopped: %v", d)
	}
	if p := a.sandboxPids(""); len(p) > 0 {
		t.Errorf("sandbox processes left after the agent stopped: %v", p)
	}
	if m := a.hostMounts(); len(m) > 0 {
		t.Errorf("mounts left after the agent stopped: %v", m)
	}
	// The (now empty) parent itself is the test's to remove.
	if _, err := cgroups.Cleanup(cgroups.Detect(), a.cgroupParent); err != nil {
		t.Errorf("removing the test's cgroup parent: %v", err)
	}
}

// alive reports whether pid is a live process: not gone and not a zombie
// waiting for its parent (after kill -9 of the agent, the sandboxes' inits
// are reparented to the machine's init, which reaps them when it pleases).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}
