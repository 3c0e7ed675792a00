package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"

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
	Code   int            // exit code; -1 when killed by a signal
	Signal syscall.Signal // the signal that killed it, or 0
}

// Exec runs p inside the sandbox (it joins the sandbox's namespaces and
// cgroup) and waits for it. When ctx ends first the process is killed with
// SIGKILL and ctx's error is returned with its status. Processes it left
// behind are the caller's business (Destroy ends them all).
func (s *Sandbox) Exec(ctx context.Context, p Process) (ExitStatus, error) {
	lp := &libcontainer.Process{
		Args: p.Args, Env: p.Env, Cwd: p.Cwd, UID: s.uid, GID: s.gid,
		Stdin: p.Stdin, Stdout: orDiscard(p.Stdout), Stderr: orDiscard(p.Stderr),
	}
	if err := s.c.Run(lp); err != nil {
		return ExitStatus{}, fmt.Errorf("exec in sandbox %q: %w", s.ID(), err)
	}
	waited := make(chan *os.ProcessState, 1)
	go func() {
		ps, _ := lp.Wait()
		waited <- ps
	}()
	var ctxErr error
	var ps *os.ProcessState
	select {
	case ps = <-waited:
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
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ExitStatus{Code: -1, Signal: ws.Signal()}
	}
	return ExitStatus{Code: ps.ExitCode()}
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
