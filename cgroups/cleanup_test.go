package cgroups

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCleanup(t *testing.T) {
	requireCgroups(t)
	mode := Detect()
	parent := "edgefaas-test-cleanup-" + randomName(t)
	// The sibling shares the parent's name as a prefix: a cleanup that
	// compared strings instead of paths would take it too.
	sibling := newSandbox(t, "/"+parent+"-sibling", Limits{}, "sleep 60")
	sibling.run(t)
	sleeper := newSandbox(t, "/"+parent+"/fn/1", Limits{}, "sleep 60")
	sleeper.run(t)
	// The forker keeps forking while Cleanup reads its pids.
	forker := newSandbox(t, "/"+parent+"/fn/2", Limits{Pids: 16}, "sleep 60 & sleep 60 & while :; do sleep 0.01; done")
	forker.run(t)
	waitFor(t, 5*time.Second, "the sleepers to run", func() bool {
		return sleeper.stats(t).Pids == 2 && sibling.stats(t).Pids == 2 && forker.stats(t).Pids >= 3
	})
	var victims []int
	for _, s := range []*sandbox{sleeper, forker} {
		pids, err := s.m.GetAllPids()
		if err != nil {
			t.Fatal(err)
		}
		victims = append(victims, pids...)
	}

	removed, err := Cleanup(mode, parent)
	if err != nil {
		t.Fatalf("Cleanup(%v, %q): %v", mode, parent, err)
	}
	want := []string{parent + "/fn/1", parent + "/fn/2", parent + "/fn", parent}
	slices.Sort(want[:2])
	slices.Sort(removed[:min(2, len(removed))])
	if !slices.Equal(removed, want) {
		t.Errorf("Cleanup removed %q, want %q", removed, want)
	}
	for _, s := range []*sandbox{sleeper, forker} {
		if err := waitExit(s, 5*time.Second); !killed(err) {
			t.Errorf("%v ended with %v, want killed by SIGKILL", s.cmd.Args, err)
		}
	}
	waitFor(t, 5*time.Second, "every process of the tree to be gone", func() bool {
		return !slices.ContainsFunc(victims, alive)
	})
	// Every hierarchy libcontainer's driver uses, as it reports them (on a
	// hybrid host that includes name=systemd and the cgroup2), and every
	// one Cleanup knows of.
	roots, err := hierarchies(mode)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sibling.m.GetPaths() {
		roots = append(roots, filepath.Dir(p))
	}
	for _, root := range roots {
		if _, err := os.Stat(filepath.Join(root, parent)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Cleanup (stat: %v)", filepath.Join(root, parent), err)
		}
	}
	if !sibling.m.Exists() {
		t.Fatalf("sibling cgroup %s-sibling removed", parent)
	}
	if pids, err := sibling.m.GetAllPids(); err != nil || len(pids) != 2 {
		t.Errorf("sibling's processes = %v, %v, want the shell and its sleep alive", pids, err)
	}
}

func TestCleanupMissingParent(t *testing.T) {
	requireCgroups(t)
	removed, err := Cleanup(Detect(), "edgefaas-test-absent-"+randomName(t))
	if err != nil || len(removed) != 0 {
		t.Errorf("Cleanup of a missing parent = %q, %v, want nothing and no error", removed, err)
	}
}

// waitExit waits for the sandbox's shell and hands its result back to the
// channel for the test's cleanup.
func waitExit(s *sandbox, timeout time.Duration) error {
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(timeout):
		return errors.New("still running")
	}
}

// alive reports whether pid exists and is not a zombie waiting for a parent
// that does not reap.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "1 (sh) S ...".
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func killed(err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
}

// TestCleanupV1Freezer kills through the v1 freezer and the kill loop alone,
// as on a v1 host without the hybrid cgroup2, whose cgroup.kill would
// otherwise do the work here.
func TestCleanupV1Freezer(t *testing.T) {
	requireCgroups(t)
	if Detect() != V1 {
		t.Skip("the freezer path is v1 only")
	}
	parent := "edgefaas-test-freezer-" + randomName(t)
	forker := newSandbox(t, "/"+parent+"/fn", Limits{Pids: 16}, "sleep 60 & sleep 60 & while :; do sleep 0.01; done")
	forker.run(t)
	waitFor(t, 5*time.Second, "the sleepers to run", func() bool { return forker.stats(t).Pids >= 3 })
	roots, err := hierarchies(V1)
	if err != nil {
		t.Fatal(err)
	}
	var tops []string
	var dirs []cgroupDir
	for _, root := range slices.DeleteFunc(roots, func(r string) bool { return r == hybridRoot }) {
		found, err := cgroupDirs(root, parent)
		if err != nil {
			t.Fatal(err)
		}
		if len(found) > 0 {
			tops = append(tops, found[0].path)
			dirs = append(dirs, found...)
		}
	}
	if err := killAll(tops, dirs, time.Now().Add(cleanupTimeout)); err != nil {
		t.Fatalf("killAll: %v", err)
	}
	if err := waitExit(forker, 5*time.Second); !killed(err) {
		t.Errorf("forker ended with %v, want killed by SIGKILL", err)
	}
	if _, err := Cleanup(V1, parent); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
}
