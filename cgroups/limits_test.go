package cgroups

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cg "github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
)

// These tests create real cgroups with the same library libcontainer uses,
// put real processes in them and read the kernel's files back.

// requireCgroups skips unless we are root and every controller we limit is
// available in this host's layout.
func requireCgroups(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
	for _, c := range []string{"cpu", "memory", "pids"} {
		if !haveController(c) {
			t.Skipf("cgroup controller %q is not available (%v)", c, Detect())
		}
	}
}

func haveController(name string) bool {
	if Detect() == V2 {
		b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		return err == nil && strings.Contains(" "+string(b)+" ", " "+name+" ")
	}
	_, err := cg.FindCgroupMountpoint("", name)
	return err == nil
}

func randomName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// sandbox is a cgroup holding one shell that waits on its stdin before
// running its script, so the script runs entirely inside the cgroup.
type sandbox struct {
	m     cg.Manager
	cmd   *exec.Cmd
	start io.WriteCloser
	done  chan error
}

// newSandbox creates the cgroup /<path> with limits and starts script in it.
// Everything is killed and removed when the test ends.
func newSandbox(t *testing.T, path string, limits Limits, script string) *sandbox {
	t.Helper()
	m, err := manager.New(&cg.Cgroup{Path: path, Resources: limits.Resources()})
	if err != nil {
		t.Fatalf("manager.New(%s): %v", path, err)
	}
	cmd := exec.Command("/bin/sh", "-c", "read go; "+script)
	start, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sandbox{m: m, cmd: cmd, start: start, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { s.destroy(t) })
	if err := m.Apply(cmd.Process.Pid); err != nil {
		t.Fatalf("Apply(%d): %v", cmd.Process.Pid, err)
	}
	if err := m.Set(limits.Resources()); err != nil {
		t.Fatalf("Set(%+v): %v", limits, err)
	}
	return s
}

// run lets the script go.
func (s *sandbox) run(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(s.start, "go\n"); err != nil {
		t.Fatal(err)
	}
	s.start.Close()
}

func (s *sandbox) stats(t *testing.T) Stats {
	t.Helper()
	st, err := ReadStats(Detect(), s.m.GetPaths())
	if err != nil {
		t.Fatalf("ReadStats: %v", err)
	}
	return st
}

func (s *sandbox) destroy(t *testing.T) {
	waitFor(t, 10*time.Second, "the sandbox's processes to die", func() bool {
		pids, err := s.m.GetAllPids()
		if err != nil && !s.m.Exists() {
			return true // removed already, by Cleanup
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return err == nil && len(pids) == 0
	})
	<-s.done
	paths := s.m.GetPaths()
	dirs := make([]string, 0, len(paths))
	for _, p := range paths {
		dirs = append(dirs, p)
	}
	if err := s.m.Destroy(); err != nil {
		t.Errorf("Destroy: %v", err)
	}
	// The shared parent goes too once its last test cgroup is gone.
	for _, p := range dirs {
		_ = os.Remove(filepath.Dir(p))
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readFile(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestLimitsWritten(t *testing.T) {
	requireCgroups(t)
	limits := Limits{MemoryBytes: 64 << 20, CPUMillis: 250, Pids: 16}
	s := newSandbox(t, "/edgefaas-test/"+randomName(t), limits, "exit 0")
	paths := s.m.GetPaths()
	type file struct{ dir, name, want string }
	var files []file
	if Detect() == V2 {
		dir := paths[""]
		files = []file{
			{dir, "memory.max", "67108864"},
			{dir, "cpu.max", "25000 100000"},
			{dir, "pids.max", "16"},
		}
		if _, err := os.Stat(filepath.Join(dir, "memory.swap.max")); err == nil {
			files = append(files, file{dir, "memory.swap.max", "0"})
		}
	} else {
		files = []file{
			{paths["memory"], "memory.limit_in_bytes", "67108864"},
			{paths["cpu"], "cpu.cfs_quota_us", "25000"},
			{paths["cpu"], "cpu.cfs_period_us", "100000"},
			{paths["pids"], "pids.max", "16"},
		}
		if _, err := os.Stat(filepath.Join(paths["memory"], "memory.memsw.limit_in_bytes")); err == nil {
			files = append(files, file{paths["memory"], "memory.memsw.limit_in_bytes", "67108864"})
		}
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			if got := readFile(t, f.dir, f.name); got != f.want {
				t.Errorf("%s = %q, want %q", filepath.Join(f.dir, f.name), got, f.want)
			}
		})
	}
	s.run(t)
}

func TestCPUThrottled(t *testing.T) {
	requireCgroups(t)
	s := newSandbox(t, "/edgefaas-test/"+randomName(t), Limits{CPUMillis: 100}, "while :; do :; done")
	start := time.Now()
	s.run(t)
	var st Stats
	// Five throttled periods make half a second of wall time at least.
	waitFor(t, 20*time.Second, "5 throttled periods", func() bool {
		st = s.stats(t)
		return st.Throttled >= 5
	})
	wall := time.Since(start)
	ratio := float64(st.CPUTime) / float64(wall)
	t.Logf("after %v: cpu %v (%.2f of one core), throttled %d periods for %v", wall, st.CPUTime, ratio, st.Throttled, st.ThrottledTime)
	if ratio > 0.5 {
		t.Errorf("CPUTime %v over %v wall = %.2f of a core, want about 0.1 under a 100m limit", st.CPUTime, wall, ratio)
	}
	if st.CPUTime == 0 || st.ThrottledTime == 0 {
		t.Errorf("CPUTime = %v, ThrottledTime = %v, want both > 0", st.CPUTime, st.ThrottledTime)
	}
}

func TestMemoryOOMKill(t *testing.T) {
	requireCgroups(t)
	const limit = 32 << 20
	// The shell keeps the whole 200 MB output of the pipe in its memory.
	s := newSandbox(t, "/edgefaas-test/"+randomName(t), Limits{MemoryBytes: limit},
		`x=$(head -c 200000000 /dev/zero | tr '\0' a); echo ${#x}`)
	s.run(t)
	select {
	case err := <-s.done:
		s.done <- err // for destroy
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("shell ended with %v, want killed by SIGKILL", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the shell was not killed within 30s")
	}
	var st Stats
	waitFor(t, 5*time.Second, "the OOM kill to be counted", func() bool {
		st = s.stats(t)
		return st.OOMKills >= 1
	})
	t.Logf("stats: %+v", st)
	if st.MemoryPeak > limit || st.MemoryPeak < limit/2 {
		t.Errorf("MemoryPeak = %d, want close to the limit %d", st.MemoryPeak, limit)
	}
}

func TestPidsLimit(t *testing.T) {
	requireCgroups(t)
	const limit = 8
	// Keeps forking sleepers; forks past the limit fail, and the shell
	// carries on (or dies), but the count must never pass the limit.
	s := newSandbox(t, "/edgefaas-test/"+randomName(t), Limits{Pids: limit},
		`i=0; while [ $i -lt 100 ]; do sleep 60 & i=$((i+1)); done; wait`)
	pidsDir := s.m.GetPaths()["pids"]
	if Detect() == V2 {
		pidsDir = s.m.GetPaths()[""]
	}
	s.run(t)
	var maxSeen uint64
	waitFor(t, 10*time.Second, "a fork to be refused at the limit", func() bool {
		st := s.stats(t)
		maxSeen = max(maxSeen, st.Pids)
		if st.Pids > limit {
			t.Fatalf("pids.current = %d, above the limit %d", st.Pids, limit)
		}
		return eventsMax(t, pidsDir) > 0
	})
	st := s.stats(t)
	maxSeen = max(maxSeen, st.Pids)
	t.Logf("pids: highest seen %d, now %d, limit %d", maxSeen, st.Pids, limit)
	if st.Pids > limit {
		t.Errorf("pids.current = %d, above the limit %d", st.Pids, limit)
	}
}

// eventsMax returns the "max" count of pids.events: forks refused.
func eventsMax(t *testing.T, dir string) uint64 {
	t.Helper()
	for line := range strings.Lines(readFile(t, dir, "pids.events")) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "max "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("pids.events in %s has no max line", dir)
	return 0
}
