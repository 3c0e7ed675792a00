// Package sandbox runs processes in hardened libcontainer sandboxes. It is the
// only package that imports libcontainer (whose Go API carries no stability
// promise): creation, start, exec, signals, destruction, dialing into a
// sandbox's network namespace, and the cleanup of sandboxes left behind by a
// crashed agent. It knows nothing about functions, images or HTTP.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"sync"
	"time"

	_ "github.com/opencontainers/cgroups/devices" // device cgroup rules (v1 files, v2 eBPF)
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	_ "github.com/opencontainers/runc/libcontainer/nsenter" // the C half of the container init

	"github.com/edgefaas/edgefaas/cgroups"
	"github.com/edgefaas/edgefaas/errdefs"
)

// DefaultTmpBytes is the size of a sandbox's /tmp when Spec.TmpBytes is 0.
const DefaultTmpBytes = 16 << 20

// IsInit reports whether this process was started by libcontainer as the
// container init ("/proc/self/exe init"). Mains and TestMains call RunInit
// first thing when it is true; every package init() has already run inside
// the container by then, which is why they must stay free of side effects.
func IsInit() bool { return len(os.Args) > 1 && os.Args[1] == "init" }

// RunInit becomes the container init. It never returns.
func RunInit() { libcontainer.Init() }

// Config configures a Manager. Zero values have the defaults given.
type Config struct {
	StateDir     string       // where libcontainer keeps sandbox state; required
	CgroupParent string       // cgroup path below the hierarchy root; "edgefaas"
	Logger       *slog.Logger // slog.Default()
}

// Manager creates sandboxes and cleans up after a crashed agent.
type Manager struct {
	cfg     Config
	mode    cgroups.Mode
	rlimits []configs.Rlimit
	log     *slog.Logger
	// noSwapAccounting: a v1 host booted without swap accounting has no
	// memory.memsw.* files, and libcontainer fails the whole start when
	// asked to write one. Without them there is no swap limit to set.
	noSwapAccounting bool
}

// NewManager detects the cgroup mode once and prepares the state directory.
func NewManager(cfg Config) (*Manager, error) {
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("sandbox state dir: %w", errdefs.ErrInvalid)
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "edgefaas"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, mode: cgroups.Detect(), rlimits: ownRlimits(), log: cfg.Logger}
	if m.mode == cgroups.V1 {
		_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
		m.noSwapAccounting = err != nil
	}
	return m, nil
}

// CgroupMode is the cgroup mode detected at start.
func (m *Manager) CgroupMode() cgroups.Mode { return m.mode }

// Spec describes one sandbox.
type Spec struct {
	ID       string // unique; letters, digits, '-', '_', '.'
	Root     string // the unpacked image root, mounted read-only
	Hostname string
	Limits   cgroups.Limits
	TmpBytes int64 // size of the /tmp tmpfs; DefaultTmpBytes when 0
	// The init process. With Hold, the init is created but waits (runc's
	// "created" state, blocked on its exec fifo) and never runs the program:
	// the sandbox is a warm shell that Exec runs processes in.
	Args   []string
	Env    []string
	Cwd    string
	UID    int
	GID    int
	Hold   bool
	Stdout io.Writer // nil discards
	Stderr io.Writer
}

// Sandbox is one running (or held) libcontainer container.
type Sandbox struct {
	m     *Manager
	c     *libcontainer.Container
	init  *libcontainer.Process
	netns *os.File
	uid   int
	gid   int
	paths map[string]string // cgroup directories, fixed at creation
	cpuMu sync.Mutex
	cpu   *cgroups.CPUCounter // nil when the counter could not be opened
	done  chan struct{}       // closed when the init exits
	once  sync.Once

	timings Timings
}

// Timings says where a Create spent its time (for the cold-start
// breakdown that make bench prints).
type Timings struct {
	Create time.Duration // libcontainer.Create: config checks, state directory
	Start  time.Duration // the init: re-exec of the agent binary, namespaces, cgroups, mounts, pivot_root, parked on its exec fifo
	Attach time.Duration // cgroup paths, CPU counter, network namespace fd
}

// Timings returns where Create spent its time.
func (s *Sandbox) Timings() Timings { return s.timings }

// Create creates and starts a sandbox. On failure nothing is left behind.
func (m *Manager) Create(ctx context.Context, spec Spec) (_ *Sandbox, retErr error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	c, err := libcontainer.Create(m.cfg.StateDir, spec.ID, m.containerConfig(spec))
	if err != nil {
		return nil, fmt.Errorf("create sandbox %q: %w", spec.ID, err)
	}
	s := &Sandbox{m: m, c: c, uid: spec.UID, gid: spec.GID, done: make(chan struct{})}
	t1 := time.Now()
	s.timings.Create = t1.Sub(t0)
	defer func() {
		if retErr != nil {
			_ = s.Destroy()
		}
	}()
	s.init = &libcontainer.Process{
		Args: spec.Args, Env: spec.Env, Cwd: spec.Cwd, UID: spec.UID, GID: spec.GID,
		Stdout: orDiscard(spec.Stdout), Stderr: orDiscard(spec.Stderr), Init: true,
	}
	// Start leaves the init waiting on its exec fifo: the namespaces exist
	// but the program has not run, so a program that exits at once cannot
	// take its namespace with it before we hold it open.
	if err := c.Start(s.init); err != nil {
		return nil, fmt.Errorf("start sandbox %q: %w", spec.ID, err)
	}
	go s.wait()
	t2 := time.Now()
	s.timings.Start = t2.Sub(t1)
	defer func() { s.timings.Attach = time.Since(t2) }()
	if st, err := c.State(); err == nil {
		s.paths = maps.Clone(st.CgroupPaths)
	}
	if s.cpu, err = cgroups.OpenCPUCounter(m.mode, s.paths); err != nil {
		m.log.Warn("sandbox CPU counter unavailable; falling back to reading the file each time", "sandbox", spec.ID, "err", err)
	}
	pid, err := s.init.Pid()
	if err != nil {
		return nil, err
	}
	// Keep the network namespace open by fd: a later Dial must not depend on
	// /proc/PID still naming our init (the pid could be reused).
	if s.netns, err = os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net"); err != nil {
		return nil, fmt.Errorf("sandbox %q netns: %w", spec.ID, err)
	}
	if !spec.Hold {
		if err := c.Exec(); err != nil {
			return nil, fmt.Errorf("run sandbox %q: %w", spec.ID, err)
		}
	}
	return s, nil
}

func (s *Sandbox) wait() {
	_, _ = s.init.Wait()
	close(s.done)
}

// Run lets a held sandbox's init run its program (runc's "start"): a
// prewarmed sandbox becomes a running one for about the cost of an execve,
// the namespaces, mounts and cgroups having been made ahead.
func (s *Sandbox) Run() error {
	if err := s.c.Exec(); err != nil {
		return fmt.Errorf("run sandbox %q: %w", s.ID(), err)
	}
	return nil
}

// ID is the sandbox id.
func (s *Sandbox) ID() string { return s.c.ID() }

// Done is closed when the sandbox's init has exited.
func (s *Sandbox) Done() <-chan struct{} { return s.done }

// Pid is the init's pid on the host.
func (s *Sandbox) Pid() int {
	pid, _ := s.init.Pid()
	return pid
}

// Stats reads the sandbox's cgroup counters.
func (s *Sandbox) Stats() (cgroups.Stats, error) {
	return cgroups.ReadStats(s.m.mode, s.paths)
}

// CPUTime reads only the sandbox's total CPU time (one pread).
func (s *Sandbox) CPUTime() (time.Duration, error) {
	if s.cpu == nil {
		return cgroups.ReadCPU(s.m.mode, s.paths)
	}
	s.cpuMu.Lock()
	defer s.cpuMu.Unlock()
	return s.cpu.Read()
}

// CgroupPaths are the sandbox's cgroup directories (for tests and cleanup
// checks). A copy: libcontainer's manager empties its own map on Destroy.
func (s *Sandbox) CgroupPaths() map[string]string {
	return maps.Clone(s.paths)
}

// Destroy kills every process of the sandbox and removes its cgroups and
// state. It is safe to call more than once.
func (s *Sandbox) Destroy() error {
	var err error
	s.once.Do(func() {
		err = kill(s.c, s.done)
		if s.netns != nil {
			s.netns.Close()
		}
		if s.cpu != nil {
			s.cpuMu.Lock()
			s.cpu.Close()
			s.cpuMu.Unlock()
		}
	})
	return err
}

// kill stops a container and destroys it. done, when not nil, is closed once
// the init is reaped by us; otherwise (a container adopted from a crashed
// agent) we poll its state.
func kill(c *libcontainer.Container, done <-chan struct{}) error {
	if st, err := c.Status(); err == nil && st != libcontainer.Stopped {
		if err := c.Signal(os.Kill); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
			return fmt.Errorf("kill sandbox %q: %w", c.ID(), err)
		}
		if err := waitStopped(c, done); err != nil {
			return err
		}
	}
	if err := c.Destroy(); err != nil {
		return fmt.Errorf("destroy sandbox %q: %w", c.ID(), err)
	}
	return nil
}

func waitStopped(c *libcontainer.Container, done <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for delay := 100 * time.Microsecond; time.Now().Before(deadline); delay = min(2*delay, 20*time.Millisecond) {
		if done != nil {
			select {
			case <-done:
				return nil
			case <-time.After(delay):
			}
			continue
		}
		if st, err := c.Status(); err != nil || st == libcontainer.Stopped {
			return nil
		}
		time.Sleep(delay)
	}
	return fmt.Errorf("sandbox %q did not stop within 10s: %w", c.ID(), errdefs.ErrUnavailable)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
