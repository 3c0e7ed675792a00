package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// Stats is a sandbox's resource usage since its cgroup was created.
type Stats struct {
	CPUTime       time.Duration // user+system CPU time
	Throttled     uint64        // CFS periods in which the quota ran out
	ThrottledTime time.Duration // time spent throttled
	MemoryCurrent uint64        // bytes charged now, page cache included
	MemoryPeak    uint64        // high-water mark of MemoryCurrent
	OOMKills      uint64        // processes killed by the OOM killer
	Pids          uint64        // processes and threads now
}

// ReadStats reads the usage of one sandbox from the cgroup paths
// libcontainer reports for it (State.CgroupPaths): on V1 a map from
// controller ("cpu", "cpuacct", "memory", "pids") to directory, on V2 the
// key "" holding the unified directory. A missing controller or file is an
// error naming it; only the files that older kernels lack are optional.
func ReadStats(mode Mode, paths map[string]string) (Stats, error) {
	switch mode {
	case V1:
		return readStatsV1(paths)
	case V2:
		dir, ok := paths[""]
		if !ok || dir == "" {
			return Stats{}, fmt.Errorf("cgroup v2 stats: no unified path (key \"\") in %v: %w", paths, errdefs.ErrInvalid)
		}
		return readStatsV2(dir)
	}
	return Stats{}, fmt.Errorf("cgroup stats: unknown mode %v: %w", mode, errdefs.ErrInvalid)
}

func readStatsV1(paths map[string]string) (Stats, error) {
	var s Stats
	r := v1Reader{paths: paths}
	s.CPUTime = time.Duration(r.uint("cpuacct", "cpuacct.usage"))
	cpu := r.keyed("cpu", "cpu.stat", "nr_throttled", "throttled_time")
	s.Throttled = cpu["nr_throttled"]
	s.ThrottledTime = time.Duration(cpu["throttled_time"])
	s.MemoryCurrent = r.uint("memory", "memory.usage_in_bytes")
	s.MemoryPeak = r.uint("memory", "memory.max_usage_in_bytes")
	// oom_kill appeared in memory.oom_control in Linux 4.13; older kernels
	// only say whether the group is under OOM now, so it reads as 0 there.
	s.OOMKills = r.keyed("memory", "memory.oom_control")["oom_kill"]
	s.Pids = r.uint("pids", "pids.current")
	return s, r.err
}

// v1Reader reads files from several controller directories and keeps the
// first error, so readStatsV1 reads as a list of what it takes from where.
type v1Reader struct {
	paths map[string]string
	err   error
}

func (r *v1Reader) dir(controller string) (string, bool) {
	if r.err != nil {
		return "", false
	}
	dir, ok := r.paths[controller]
	if !ok || dir == "" {
		r.err = fmt.Errorf("cgroup v1 stats: no path for controller %q in %v: %w", controller, r.paths, errdefs.ErrInvalid)
		return "", false
	}
	return dir, true
}

func (r *v1Reader) uint(controller, file string) uint64 {
	dir, ok := r.dir(controller)
	if !ok {
		return 0
	}
	v, err := readUint(filepath.Join(dir, file))
	r.err = err
	return v
}

func (r *v1Reader) keyed(controller, file string, required ...string) map[string]uint64 {
	dir, ok := r.dir(controller)
	if !ok {
		return nil
	}
	m, err := readKeyed(filepath.Join(dir, file), required...)
	r.err = err
	return m
}

func readStatsV2(dir string) (Stats, error) {
	var s Stats
	// nr_throttled and throttled_usec are only there when the cpu
	// controller is enabled for the group; usage_usec always is.
	cpu, err := readKeyed(filepath.Join(dir, "cpu.stat"), "usage_usec")
	if err != nil {
		return Stats{}, err
	}
	s.CPUTime = time.Duration(cpu["usage_usec"]) * time.Microsecond
	s.Throttled = cpu["nr_throttled"]
	s.ThrottledTime = time.Duration(cpu["throttled_usec"]) * time.Microsecond
	if s.MemoryCurrent, err = readUint(filepath.Join(dir, "memory.current")); err != nil {
		return Stats{}, err
	}
	// memory.peak appeared in Linux 5.19: before that, the best we have is now.
	s.MemoryPeak, err = readUint(filepath.Join(dir, "memory.peak"))
	if errors.Is(err, fs.ErrNotExist) {
		s.MemoryPeak, err = s.MemoryCurrent, nil
	}
	if err != nil {
		return Stats{}, err
	}
	events, err := readKeyed(filepath.Join(dir, "memory.events"), "oom_kill")
	if err != nil {
		return Stats{}, err
	}
	s.OOMKills = events["oom_kill"]
	if s.Pids, err = readUint(filepath.Join(dir, "pids.current")); err != nil {
		return Stats{}, err
	}
	return s, nil
}

// readUint reads a file holding one unsigned number. "max" reads as the
// largest value, as in memory.max.
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("cgroup stats: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return ^uint64(0), nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroup stats: %s: %q is not a number: %w", path, s, errdefs.ErrInvalid)
	}
	return v, nil
}

// readKeyed reads a flat-keyed file of "key value" lines (cpu.stat,
// memory.events, memory.oom_control) and fails when a required key is
// missing. Lines whose value is not a number are skipped.
func readKeyed(path string, required ...string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cgroup stats: %w", err)
	}
	defer f.Close()
	m := make(map[string]uint64)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cgroup stats: %s: %w", path, err)
	}
	for _, k := range required {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("cgroup stats: %s: no %q line: %w", path, k, errdefs.ErrInvalid)
		}
	}
	return m, nil
}

// ReadCPU reads only a sandbox's CPU time: one file, for the per-call
// metering of http-mode instances, where ReadStats would read six.
func ReadCPU(mode Mode, paths map[string]string) (time.Duration, error) {
	switch mode {
	case V1:
		var r v1Reader
		r.paths = paths
		ns := r.uint("cpuacct", "cpuacct.usage")
		return time.Duration(ns), r.err
	case V2:
		cpu, err := readKeyed(filepath.Join(paths[""], "cpu.stat"), "usage_usec")
		return time.Duration(cpu["usage_usec"]) * time.Microsecond, err
	}
	return 0, fmt.Errorf("cgroup cpu: unknown mode %v: %w", mode, errdefs.ErrInvalid)
}
