package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// Process is a process to run inside a sandbox with Exec. It runs as the
// sandbox's user (Spec.UID and GID), with the sandbox's capabilities.
type Process struct {
	Args   []string
	Env    []string
	Cwd    string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// ExitStatus says how a process ended.
type ExitStatus struct {
	Code    int            // exit code; -1 when killed by a signal
	Signal  syscall.Signal // the signal that killed it, or 0
	CPUTime time.Duration  // user+system time of the process and the children it waited for
}

// Exec runs p inside the sandbox (it joins the sandbox's namespaces and
// cgroup) and waits for it. When ctx ends first the process is killed with
// SIGKILL and ctx's error is returned with its status. Processes it left
// behind are the caller's business (Destroy ends them all).
func (s *Sandbox) Exec(ctx context.Context, p Process) (ExitStatus, error) {
	std, err := newStdio(p)
	if err != nil {
		return ExitStatus{}, err
	}
	defer std.close()
	lp := &libcontainer.Process{
		Args: p.Args, Env: p.Env, Cwd: p.Cwd, UID: s.uid, GID: s.gid,
		Stdin: std.child[0], Stdout: std.child[1], Stderr: std.child[2],
	}
	if err := s.c.Run(lp); err != nil {
		return ExitStatus{}, fmt.Errorf("exec in sandbox %q: %w", s.ID(), err)
	}
	std.started()
	waited := make(chan *os.ProcessState, 1)
	go func() {
		ps, _ := lp.Wait()
		waited <- ps
	}()
	var ctxErr error
	var ps *os.ProcessState
	select {
	case ps = <-waited:
		std.drain(drainGrace)
	case <-ctx.Done():
		ctxErr = ctx.Err()
		_ = lp.Signal(os.Kill)
		ps = <-waited
	}
	return exitStatus(ps), ctxErr
}

func exitStatus(ps *os.ProcessState) ExitStatus {
	if ps == nil {
		return ExitStatus{Code: -1}
	}
	// libcontainer's final process of an exec is our own child (runc's
	// nsexec forks it with CLONE_PARENT), so its rusage is the process's own.
	st := ExitStatus{Code: ps.ExitCode(), CPUTime: ps.UserTime() + ps.SystemTime()}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		st.Code, st.Signal = -1, ws.Signal()
	}
	return st
}

// Signal sends sig to the sandbox's init.
func (s *Sandbox) Signal(sig os.Signal) error {
	err := s.c.Signal(sig)
	if errors.Is(err, libcontainer.ErrNotRunning) {
		return nil
	}
	return err
}

// Dial connects to addr inside the sandbox's network namespace, which has
// only loopback: the host cannot reach a function's port any other way.
//
// How: a goroutine locks its OS thread, setns(2)es the thread into the
// namespace and dials. A socket keeps the namespace it was created in, so the
// connection stays usable from any thread. The thread is never unlocked, so
// the Go runtime terminates it with the goroutine instead of reusing a thread
// that sits in a foreign namespace. Each dial costs a thread (~0.3 ms here);
// callers keep connections alive.
func (s *Sandbox) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(s.netns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns into sandbox %q: %w", s.ID(), err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// drainGrace is how long Exec waits, after the process exited, for its
// output pipes to reach EOF. A background child that inherited them could
// hold them open forever; its output after that is lost.
const drainGrace = 100 * time.Millisecond

// stdio gives an exec'd process real pipes. Had libcontainer's exec.Cmd got
// plain io.Readers and io.Writers, its Wait would also wait for its copying
// goroutines, so a background child holding stdout open would hang the call
// past its timeout.
type stdio struct {
	child  [3]*os.File // the process's ends
	parent [3]*os.File // ours
	copies sync.WaitGroup
}

func newStdio(p Process) (*stdio, error) {
	s := &stdio{}
	// One writer for both streams gets one pipe, as with exec.Cmd: two
	// copies into one writer would race.
	shared := p.Stdout != nil && p.Stdout == p.Stderr
	for i := range 3 {
		if i == 2 && shared {
			s.child[2] = s.child[1]
			break
		}
		r, w, err := os.Pipe()
		if err != nil {
			s.close()
			return nil, err
		}
		if i == 0 {
			s.child[i], s.parent[i] = r, w
		} else {
			s.child[i], s.parent[i] = w, r
		}
	}
	stdin := p.Stdin
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	s.copies.Go(func() {
		_, _ = io.Copy(s.parent[0], stdin)
		s.parent[0].Close()
	})
	s.copies.Go(func() { _, _ = io.Copy(orDiscard(p.Stdout), s.parent[1]) })
	if !shared {
		s.copies.Go(func() { _, _ = io.Copy(orDiscard(p.Stderr), s.parent[2]) })
	}
	return s, nil
}

// started closes our copies of the child's ends, so that EOF arrives when
// the process (and whatever inherited them) closes them.
func (s *stdio) started() {
	for _, f := range s.child {
		f.Close()
	}
}

// drain waits up to grace for the output copies to finish.
func (s *stdio) drain(grace time.Duration) {
	done := make(chan struct{})
	go func() { s.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
	}
}

// close ends every copy: closing our ends unblocks the goroutines.
func (s *stdio) close() {
	for i := range 3 {
		if s.child[i] != nil {
			s.child[i].Close()
		}
		if s.parent[i] != nil {
			s.parent[i].Close()
		}
	}
	s.copies.Wait()
}
