package cgroups

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// CPUCounter reads one cgroup's CPU time through a file kept open. Per-call
// metering of http-mode instances reads it twice per invocation; a pread at
// offset 0 regenerates the cgroup file's content, and saves the open and
// close (path lookups in cgroupfs) that ReadCPU pays each time.
type CPUCounter struct {
	f   *os.File
	v2  bool
	buf []byte
}

// OpenCPUCounter opens the CPU time file of the cgroup at paths.
func OpenCPUCounter(mode Mode, paths map[string]string) (*CPUCounter, error) {
	var path string
	switch mode {
	case V1:
		path = filepath.Join(paths["cpuacct"], "cpuacct.usage")
		if paths["cpuacct"] == "" {
			return nil, fmt.Errorf("cgroup cpu counter: no cpuacct path in %v: %w", paths, errdefs.ErrInvalid)
		}
	case V2:
		path = filepath.Join(paths[""], "cpu.stat")
		if paths[""] == "" {
			return nil, fmt.Errorf("cgroup cpu counter: no unified path in %v: %w", paths, errdefs.ErrInvalid)
		}
	default:
		return nil, fmt.Errorf("cgroup cpu counter: unknown mode %v: %w", mode, errdefs.ErrInvalid)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &CPUCounter{f: f, v2: mode == V2, buf: make([]byte, 512)}, nil
}

// Read returns the cgroup's CPU time now. Not safe for concurrent use.
func (c *CPUCounter) Read() (time.Duration, error) {
	n, err := c.f.ReadAt(c.buf, 0)
	if n == 0 && err != nil {
		return 0, fmt.Errorf("read %s: %w", c.f.Name(), err)
	}
	b := c.buf[:n]
	if !c.v2 {
		v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
		return time.Duration(v), err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("usage_usec ")); ok {
			us, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			return time.Duration(us) * time.Microsecond, err
		}
	}
	return 0, fmt.Errorf("%s has no usage_usec: %w", c.f.Name(), errdefs.ErrInvalid)
}

// Close closes the file.
func (c *CPUCounter) Close() error { return c.f.Close() }
