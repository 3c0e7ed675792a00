package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	cg "github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"

	"github.com/edgefaas/edgefaas/errdefs"
)

const (
	// cleanupTimeout bounds how long Cleanup waits for killed processes to
	// leave their cgroups and for the kernel to let the directories go.
	cleanupTimeout = 10 * time.Second
	freezeTimeout  = time.Second
	pollInterval   = 10 * time.Millisecond

	unifiedRoot = "/sys/fs/cgroup"
	hybridRoot  = "/sys/fs/cgroup/unified"
)

// Cleanup removes the cgroup parent (a relative cgroup path such as
// "edgefaas") and everything below it, in every hierarchy of the layout:
// each v1 controller hierarchy (plus the cgroup2 of a hybrid host) on V1,
// the unified hierarchy on V2. Processes still inside are killed first.
// It returns the relative paths it removed, children before parents, and
// is a no-op when parent does not exist. The agent calls it at start to
// clear what a crash left behind.
//
// It never signals or removes anything outside parent, and it refuses to
// run when the calling process itself is inside parent.
func Cleanup(mode Mode, parent string) ([]string, error) {
	if err := checkParent(parent); err != nil {
		return nil, err
	}
	roots, err := hierarchies(mode)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(cleanupTimeout)
	var tops []string
	var dirs []cgroupDir
	for _, root := range roots {
		found, err := cgroupDirs(root, parent)
		if err != nil {
			return nil, err
		}
		if len(found) > 0 {
			tops = append(tops, found[0].path)
			dirs = append(dirs, found...)
		}
	}
	if len(dirs) == 0 {
		return nil, nil
	}
	if err := killAll(tops, dirs, deadline); err != nil {
		return nil, fmt.Errorf("cgroup cleanup %q: %w", parent, err)
	}
	return removeDirs(dirs, deadline)
}

// cgroupDir is one cgroup directory: its absolute path and its path
// relative to the hierarchy's mount point.
type cgroupDir struct {
	path, rel string
}

// checkParent accepts only a clean relative path that stays inside the
// hierarchy: "", ".", "/x" and "../x" would all reach cgroups we do not own.
func checkParent(parent string) error {
	if parent == "" || parent == "." || filepath.IsAbs(parent) ||
		filepath.Clean(parent) != parent || parent == ".." || strings.HasPrefix(parent, "../") {
		return fmt.Errorf("cgroup cleanup: parent %q: want a clean relative path like \"edgefaas\": %w", parent, errdefs.ErrInvalid)
	}
	return nil
}

// hierarchies lists the mount points to search.
func hierarchies(mode Mode) ([]string, error) {
	switch mode {
	case V2:
		return []string{unifiedRoot}, nil
	case V1:
		mounts, err := cg.GetCgroupMounts(true)
		if err != nil {
			return nil, fmt.Errorf("cgroup cleanup: listing cgroup mounts: %w", err)
		}
		var roots []string
		for _, m := range mounts {
			roots = append(roots, m.Mountpoint)
		}
		// On a hybrid host libcontainer's v1 driver also puts every
		// container into the empty cgroup2 (paths[""]), and into the
		// name=systemd hierarchy, which GetCgroupMounts lists already.
		if cg.IsCgroup2HybridMode() {
			roots = append(roots, hybridRoot)
		}
		slices.Sort(roots)
		return slices.Compact(roots), nil
	}
	return nil, fmt.Errorf("cgroup cleanup: unknown mode %v: %w", mode, errdefs.ErrInvalid)
}

// cgroupDirs returns root/parent and every directory below it, parents
// first.
func cgroupDirs(root, parent string) ([]cgroupDir, error) {
	var dirs []cgroupDir
	err := filepath.WalkDir(filepath.Join(root, parent), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			dirs = append(dirs, cgroupDir{path: path, rel: rel})
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) && len(dirs) == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup cleanup: %w", err)
	}
	return dirs, nil
}

// killAll kills every process in dirs and waits until they are all gone.
func killAll(tops []string, dirs []cgroupDir, deadline time.Time) error {
	pids, err := procs(dirs)
	if err != nil {
		return err
	}
	if slices.Contains(pids, os.Getpid()) {
		return fmt.Errorf("refusing to kill our own process %d: %w", os.Getpid(), errdefs.ErrInvalid)
	}
	for _, top := range tops {
		// cgroup.kill (v2, Linux 5.14) kills the whole subtree atomically,
		// forks in flight included.
		if err := writeExisting(filepath.Join(top, "cgroup.kill"), "1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	// A frozen task only acts on its SIGKILL once thawed: thaw after the
	// first round of kills, or on the way out whatever happens.
	thaw := sync.OnceFunc(freeze(tops))
	defer thaw()
	for {
		pids, err := procs(dirs)
		if err != nil {
			return err
		}
		for _, pid := range pids {
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("kill %d: %w", pid, err)
			}
		}
		thaw()
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still alive after %v: %w", pids, cleanupTimeout, errdefs.ErrUnavailable)
		}
		time.Sleep(pollInterval)
	}
}

// freeze freezes the v1 freezer cgroup among tops, if any, so that the pids
// read from cgroup.procs cannot fork or exit (and be reused) before they are
// killed. It returns a function that thaws it again. Freezing is best effort:
// a task stuck in the kernel can keep a group FREEZING, so it waits at most
// freezeTimeout and leaves the rest to the kill loop.
func freeze(tops []string) (thaw func()) {
	var state string
	for _, top := range tops {
		if p := filepath.Join(top, "freezer.state"); fileExists(p) {
			state = p
		}
	}
	if state == "" || writeExisting(state, "FROZEN") != nil {
		return func() {}
	}
	deadline := time.Now().Add(freezeTimeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(state)
		if err != nil || strings.TrimSpace(string(b)) == "FROZEN" {
			break
		}
		time.Sleep(pollInterval)
	}
	return func() { _ = writeExisting(state, "THAWED") }
}

// procs returns the distinct pids listed in the cgroup.procs of dirs.
func procs(dirs []cgroupDir) ([]int, error) {
	var all []int
	for _, dir := range dirs {
		pids, err := cg.GetPids(dir.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		all = append(all, pids...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

// removeDirs removes dirs deepest first and returns their paths relative to
// their hierarchy root, each once.
func removeDirs(dirs []cgroupDir, deadline time.Time) ([]string, error) {
	depth := func(d cgroupDir) int { return strings.Count(d.rel, "/") }
	slices.SortStableFunc(dirs, func(a, b cgroupDir) int { return depth(b) - depth(a) })
	var removed []string
	for _, dir := range dirs {
		if err := rmdir(dir.path, deadline); err != nil {
			return removed, fmt.Errorf("cgroup cleanup: %w", err)
		}
		if !slices.Contains(removed, dir.rel) {
			removed = append(removed, dir.rel)
		}
	}
	return removed, nil
}

// rmdir removes an empty cgroup, retrying while the kernel still counts
// exiting tasks in it (EBUSY).
func rmdir(dir string, deadline time.Time) error {
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return &os.PathError{Op: "rmdir", Path: dir, Err: err}
		}
		time.Sleep(pollInterval)
	}
}

// writeExisting writes to a cgroup file. Unlike os.WriteFile it does not ask
// for O_CREAT, which cgroupfs refuses with EACCES even for root: a missing
// file has to read as fs.ErrNotExist.
func writeExisting(path, data string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
