// Package cgroups turns a function's limits into cgroup resources, reads a
// sandbox's usage back from its cgroup files, and removes the cgroups a
// crashed agent left behind. It supports cgroup v1 (legacy and hybrid
// layouts) and the v2 unified hierarchy.
//
// It is not a cgroup manager: creating cgroups and moving processes into
// them is libcontainer's job, done in package sandbox. This package only
// builds the Resources that sandbox hands to libcontainer and reads the
// paths libcontainer reports back.
package cgroups

import (
	"fmt"

	cg "github.com/opencontainers/cgroups"

	"github.com/edgefaas/edgefaas/errdefs"
)

// Mode is the cgroup layout of the host.
type Mode int

const (
	// V1 is the legacy layout, one hierarchy per controller. Hybrid hosts
	// (v1 controllers plus an empty cgroup2 at /sys/fs/cgroup/unified) count
	// as V1: every controller we limit lives in a v1 hierarchy there.
	V1 Mode = iota + 1
	// V2 is the unified hierarchy mounted at /sys/fs/cgroup.
	V2
)

func (m Mode) String() string {
	switch m {
	case V1:
		return "v1"
	case V2:
		return "v2"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Detect reports the host's cgroup layout. The answer is computed once per
// process (opencontainers/cgroups caches it), so call it at start.
func Detect() Mode {
	if cg.IsCgroup2UnifiedMode() {
		return V2
	}
	return V1
}

// CPUPeriod is the CFS period, in microseconds, of every quota we set.
const CPUPeriod = 100000

// Minimums below which a limit is a mistake rather than a choice: a Go or
// Python runtime cannot start in less than 4 MiB, and a quota under 1 ms per
// 100 ms period makes a function look hung.
const (
	MinMemoryBytes = 4 << 20
	MinCPUMillis   = 10
	// maxCPUMillis keeps CPUMillis*CPUPeriod/1000 far from int64 overflow
	// (a million cores).
	maxCPUMillis = 1_000_000_000
)

// Limits are a sandbox's resource limits. A zero field means unlimited.
type Limits struct {
	MemoryBytes int64 // memory, without swap
	CPUMillis   int64 // thousandths of a CPU; 500 is half a core
	Pids        int64 // processes and threads
}

// Validate reports, wrapped in errdefs.ErrInvalid, the first limit that
// cannot be applied.
func (l Limits) Validate() error {
	switch {
	case l.MemoryBytes < 0:
		return fmt.Errorf("memory limit %d: negative: %w", l.MemoryBytes, errdefs.ErrInvalid)
	case l.MemoryBytes > 0 && l.MemoryBytes < MinMemoryBytes:
		return fmt.Errorf("memory limit %d: below the minimum of %d bytes: %w", l.MemoryBytes, MinMemoryBytes, errdefs.ErrInvalid)
	case l.CPUMillis < 0:
		return fmt.Errorf("cpu limit %dm: negative: %w", l.CPUMillis, errdefs.ErrInvalid)
	case l.CPUMillis > 0 && l.CPUMillis < MinCPUMillis:
		return fmt.Errorf("cpu limit %dm: below the minimum of %dm: %w", l.CPUMillis, MinCPUMillis, errdefs.ErrInvalid)
	case l.CPUMillis > maxCPUMillis:
		return fmt.Errorf("cpu limit %dm: above the maximum of %dm: %w", l.CPUMillis, int64(maxCPUMillis), errdefs.ErrInvalid)
	case l.Pids < 0:
		return fmt.Errorf("pids limit %d: negative: %w", l.Pids, errdefs.ErrInvalid)
	}
	return nil
}

// Resources converts the limits for libcontainer's cgroup configuration.
// Devices are left empty: the device rules belong to package sandbox.
//
// Unlimited fields are written as explicit "max" values (-1), not left at
// zero, so that the same Resources also lift a limit when applied with
// Manager.Set to a running sandbox (zero there means "keep the current
// value", and a zero PidsLimit would even mean a limit of 1).
//
// Memory and MemorySwap are equal, which means no swap beyond the memory
// limit: on v1 memory.memsw.limit_in_bytes equals memory.limit_in_bytes; on
// v2 opencontainers/cgroups converts memory+swap into memory.swap.max =
// MemorySwap-Memory = 0, and it skips that file when swap accounting is off.
func (l Limits) Resources() *cg.Resources {
	pids := int64(-1)
	r := &cg.Resources{
		Memory:    -1,
		CpuQuota:  -1,
		CpuPeriod: CPUPeriod,
		PidsLimit: &pids,
	}
	if l.MemoryBytes > 0 {
		r.Memory = l.MemoryBytes
		r.MemorySwap = l.MemoryBytes
	}
	if l.CPUMillis > 0 {
		r.CpuQuota = l.CPUMillis * CPUPeriod / 1000
	}
	if l.Pids > 0 {
		pids = l.Pids
	}
	return r
}
