package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/cgroups"
	"github.com/edgefaas/edgefaas/logs"
	"github.com/edgefaas/edgefaas/sandbox"
)

// functionPort is where http-mode functions listen inside their sandbox
// (the OpenFaaS watchdog's port, so its images work unchanged).
const functionPort = 8080

// readyPoll is how often a starting http-mode instance is checked for a
// listening socket.
const readyPoll = 100 * time.Microsecond

// instance is one sandbox running one function version.
type instance struct {
	fn       api.Function
	tmpl     process
	sb       *sandbox.Sandbox
	conns    *conns // http mode only: kept-alive connections to its server
	logs     *logs.Store
	streams  []io.Closer // the init's stdout and stderr writers
	isBroke  atomic.Bool
	inflight atomic.Int64 // http mode: calls in flight, to apportion CPU time
	initTime time.Duration

	// Guarded by the owning function's mu.
	active   int       // calls holding a slot
	calls    int64     // calls finished
	grants   int64     // slots handed out
	lastUsed time.Time // when the last call finished (or it became ready)
	retiring bool      // takes no new calls; stops when the last one ends
	onDemand bool      // started for a waiting call (its first call is cold)
}

// newInstance starts an instance of f, from its prewarmed one when it has
// one, and times the start.
func (iv *invoker) newInstance(ctx context.Context, f *function) (*instance, error) {
	t0 := time.Now()
	inst := f.takePrewarmed()
	if inst != nil {
		if err := inst.run(ctx); err != nil {
			iv.log.Warn("prewarmed instance did not start; starting a fresh one", "function", f.fn.Spec.Name, "err", err)
			inst.destroy()
			inst = nil
		}
	}
	if inst == nil {
		var err error
		if inst, err = startInstance(ctx, iv, f.fn, f.tmpl); err != nil {
			return nil, err
		}
	}
	inst.initTime = time.Since(t0)
	inst.lastUsed = iv.now()
	iv.log.Debug("instance started", "function", f.fn.Spec.Name, "sandbox", inst.sb.ID(), "in", inst.initTime)
	return inst, nil
}

// memory is the instance's memory use now (page cache included).
func (inst *instance) memory() uint64 {
	st, err := inst.sb.Stats()
	if err != nil {
		return 0
	}
	return st.MemoryCurrent
}

// startInstance creates the sandbox and makes it ready (see createInstance
// and run).
func startInstance(ctx context.Context, iv *invoker, fn api.Function, tmpl process) (*instance, error) {
	inst, err := createInstance(ctx, iv, fn, tmpl)
	if err != nil {
		return nil, err
	}
	if err := inst.run(ctx); err != nil {
		inst.destroy()
		return nil, err
	}
	return inst, nil
}

// createInstance creates the sandbox with its init held (created, not yet
// run): namespaces, mounts and cgroups exist, the program has not started.
// That is a prewarmed instance. In exec mode it is also a ready one: every
// call execs the entrypoint into it.
func createInstance(ctx context.Context, iv *invoker, fn api.Function, tmpl process) (*instance, error) {
	spec := fn.Spec
	id := sandboxID(spec.Name, fn.Version)
	stdout := iv.logs.Writer(spec.Name, id, "stdout", "")
	stderr := iv.logs.Writer(spec.Name, id, "stderr", "")
	inst := &instance{fn: fn, tmpl: tmpl, logs: iv.logs, streams: []io.Closer{stdout, stderr}}
	env := tmpl.Env
	if spec.Mode == api.ModeHTTP {
		env = append(env[:len(env):len(env)], "PORT="+strconv.Itoa(functionPort))
	}
	sb, err := iv.sandboxes.Create(ctx, sandbox.Spec{
		ID:       id,
		Root:     tmpl.Root,
		Hostname: spec.Name,
		Limits:   cgroups.Limits{MemoryBytes: spec.Memory, CPUMillis: spec.CPU, Pids: spec.Pids},
		Args:     tmpl.Args, Env: env, Cwd: tmpl.Cwd, UID: tmpl.UID, GID: tmpl.GID,
		Hold:   true,
		Stdout: stdout,
		Stderr: stderr,
	})
	if err != nil {
		inst.closeStreams()
		return nil, fmt.Errorf("function %q: start instance: %w", spec.Name, err)
	}
	inst.sb = sb
	return inst, nil
}

// run makes a created instance ready: in http mode its init runs the
// entrypoint and the instance is ready once port 8080 accepts.
func (inst *instance) run(ctx context.Context) error {
	if inst.fn.Spec.Mode != api.ModeHTTP {
		return nil
	}
	if err := inst.sb.Run(); err != nil {
		return fmt.Errorf("function %q: %w", inst.fn.Spec.Name, err)
	}
	if err := inst.waitReady(ctx); err != nil {
		return fmt.Errorf("function %q: %w", inst.fn.Spec.Name, err)
	}
	return nil
}

func sandboxID(name string, version int64) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-v%d-%s", name, version, hex.EncodeToString(b))
}

// waitReady waits until the function listens on its port. It polls the
// sandbox's socket table (cheap: no thread enters the namespace) every
// readyPoll, so readiness is seen within that of the server binding; a dial
// per poll would cost a thread each and back off, overshooting by
// milliseconds.
func (inst *instance) waitReady(ctx context.Context) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(functionPort))
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		up, err := inst.sb.Listening(functionPort)
		if err == nil && up {
			break
		}
		select {
		case <-inst.sb.Done():
			return fmt.Errorf("exited before listening on port %d (see its logs)", functionPort)
		case <-ctx.Done():
			return fmt.Errorf("not listening on port %d after %s: %w", functionPort, "start timeout", ctx.Err())
		case <-tick.C:
		}
	}
	inst.conns = &conns{
		dial: func(ctx context.Context) (net.Conn, error) {
			return inst.sb.Dial(ctx, "tcp", addr)
		},
		max: max(inst.fn.Spec.Concurrency, 2),
	}
	return nil
}

// broken reports whether the instance must not take more calls.
func (inst *instance) broken() bool {
	if inst.isBroke.Load() {
		return true
	}
	select {
	case <-inst.sb.Done():
		return true
	default:
		return false
	}
}

func (inst *instance) destroy() {
	inst.isBroke.Store(true)
	if inst.conns != nil {
		inst.conns.close()
	}
	_ = inst.sb.Destroy()
	inst.closeStreams()
}

func (inst *instance) closeStreams() {
	for _, c := range inst.streams {
		_ = c.Close()
	}
}

func (inst *instance) invoke(ctx context.Context, c call) result {
	if inst.fn.Spec.Mode == api.ModeExec {
		return inst.invokeExec(ctx, c)
	}
	return inst.invokeHTTP(ctx, c)
}

// failure classifies a call that ended abnormally: a timeout when the
// deadline passed, oom when the cgroup's OOM kill counter moved, otherwise a
// crash. The instance is marked broken either way and will be destroyed.
func (inst *instance) failure(ctx context.Context, oomBefore uint64, cause error) result {
	inst.isBroke.Store(true)
	// The connection's deadline is the call's: its i/o timeout can come a
	// hair before ctx's own timer fires.
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || (ctx.Err() == nil && errors.Is(cause, os.ErrDeadlineExceeded)) {
		return errResult(http.StatusGatewayTimeout, statusTimeout, fmt.Sprintf("function %q timed out after %s and was killed",
			inst.fn.Spec.Name, time.Duration(inst.fn.Spec.Timeout)))
	}
	if st, err := inst.sb.Stats(); err == nil && st.OOMKills > oomBefore {
		return errResult(http.StatusBadGateway, statusOOM,
			fmt.Sprintf("function %q was killed by its memory limit (%d MiB)", inst.fn.Spec.Name, inst.fn.Spec.Memory>>20))
	}
	return errResult(http.StatusBadGateway, statusCrashed, fmt.Sprintf("function %q crashed: %v", inst.fn.Spec.Name, cause))
}

func (inst *instance) oomKills() uint64 {
	st, err := inst.sb.Stats()
	if err != nil {
		return 0
	}
	return st.OOMKills
}

// limitedBuffer keeps at most max bytes and remembers that more came. (It
// must not embed bytes.Buffer: io.Copy would use the embedded ReadFrom and
// bypass the limit.)
type limitedBuffer struct {
	buf      bytes.Buffer
	max      int64
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - int64(b.buf.Len()); int64(len(p)) > room {
		b.overflow = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *limitedBuffer) Bytes() []byte { return b.buf.Bytes() }

// readFrom reads r into the buffer, at most max bytes; more sets overflow
// and stops reading (the caller drops the connection). Reading straight
// into the buffer's own memory matters: io.Copy into a Writer allocates a
// 32 KiB buffer per call, which was most of a warm call's garbage.
func (b *limitedBuffer) readFrom(r io.Reader) error {
	room := b.max - int64(b.buf.Len())
	_, err := b.buf.ReadFrom(io.LimitReader(r, room+1))
	if int64(b.buf.Len()) > b.max {
		b.buf.Truncate(int(b.max))
		b.overflow = true
	}
	return err
}

func tooLarge(name string, limit int64) result {
	return errResult(http.StatusBadGateway, statusTooLarge,
		fmt.Sprintf("function %q answered more than its response limit of %d bytes", name, limit))
}

var _ io.Writer = (*limitedBuffer)(nil)
