package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/logs"
	"github.com/edgefaas/edgefaas/sandbox"
)

// Faas statuses: the X-Faas-Status header of every gateway answer.
const (
	statusOK        = "ok"
	statusError     = "error"
	statusNotFound  = "not_found"
	statusThrottled = "throttled"
	statusTimeout   = "timeout"
	statusOOM       = "oom"
	statusCrashed   = "crashed"
	statusTooLarge  = "too_large"
)

// call is one invocation, whatever its trigger.
type call struct {
	ID      string
	Trigger string // "http", "mqtt", "async" or "schedule"
	Method  string
	Path    string // the suffix after /function/NAME, always starting with "/"
	Query   string
	Header  http.Header
	Body    []byte
	Topic   string // the MQTT topic, for trigger "mqtt"
}

// result is what the gateway writes back, and what metering records.
type result struct {
	Code       int
	Header     http.Header
	Body       []byte
	FaasStatus string
	Cold       bool          // an instance was started for this call
	InitTime   time.Duration // how long that start took
	CPUTime    time.Duration // CPU time charged to this call
	Ran        bool          // the function ran (is billed); false for throttled or refused calls
}

// errResult is an answer the agent makes itself (not the function's).
func errResult(code int, status, msg string) result {
	return result{Code: code, FaasStatus: status, Body: jsonError(msg, status)}
}

// invoker keeps the deployed functions in memory (the registry in the store
// is the record; this is its running state), each with its pool of
// instances, and a reaper that scales idle pools down.
type invoker struct {
	sandboxes    *sandbox.Manager
	logs         *logs.Store
	startTimeout time.Duration
	log          *slog.Logger
	now          func() time.Time

	mu  sync.Mutex
	fns map[string]*function

	stopReaper context.CancelFunc
	reaperDone chan struct{}
	background sync.WaitGroup // instances being started, prewarmed or destroyed

	prewarmMax    int           // prewarmed instances held agent-wide
	prewarmWindow time.Duration // a function called within it keeps one
	prewarmCount  atomic.Int64  // held or being created
}

// reservePrewarm takes a place in the prewarm budget.
func (iv *invoker) reservePrewarm() bool {
	if iv.prewarmCount.Add(1) > int64(iv.prewarmMax) {
		iv.prewarmCount.Add(-1)
		return false
	}
	return true
}

// reapInterval is how often idle instances are looked for: idle timeouts
// are honoured to within this.
const reapInterval = 500 * time.Millisecond

// invokerConfig is the part of the agent's Config the invoker uses.
type invokerConfig struct {
	startTimeout  time.Duration
	prewarm       int
	prewarmWindow time.Duration
}

func newInvoker(sm *sandbox.Manager, ls *logs.Store, cfg invokerConfig, log *slog.Logger) *invoker {
	ctx, cancel := context.WithCancel(context.Background())
	iv := &invoker{sandboxes: sm, logs: ls, startTimeout: cfg.startTimeout, log: log, now: time.Now,
		fns: map[string]*function{}, stopReaper: cancel, reaperDone: make(chan struct{}),
		prewarmMax: max(cfg.prewarm, 0), prewarmWindow: cfg.prewarmWindow}
	go iv.reaper(ctx)
	return iv
}

func (iv *invoker) reaper(ctx context.Context) {
	defer close(iv.reaperDone)
	t := time.NewTicker(reapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := iv.now()
		for _, f := range iv.functions() {
			f.reap(now)
		}
	}
}

func (iv *invoker) functions() []*function {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	fns := make([]*function, 0, len(iv.fns))
	for _, f := range iv.fns {
		fns = append(fns, f)
	}
	return fns
}

// prepare makes the running state of a new function version. When the
// version it replaces has instances up (or the spec asks for MinInstances),
// as many are started and must become ready before it takes over: an
// update is then invisible to callers. atLeast asks for that many even
// when fewer run (a readiness check). A version that does not become
// ready is not installed, and the old one keeps serving.
func (iv *invoker) prepare(ctx context.Context, fn api.Function, tmpl process, atLeast int) (*function, error) {
	nf := newFunction(iv, fn, tmpl)
	n := max(fn.Spec.MinInstances, min(atLeast, fn.Spec.MaxInstances))
	iv.mu.Lock()
	old := iv.fns[fn.Spec.Name]
	iv.mu.Unlock()
	if old != nil {
		n = max(n, min(old.running(), fn.Spec.MaxInstances))
	}
	if n > 0 {
		ctx, cancel := context.WithTimeout(ctx, iv.startTimeout)
		defer cancel()
		if err := nf.warm(ctx, n); err != nil {
			return nil, err
		}
	}
	return nf, nil
}

// install makes nf the function's current version. Calls queued on the
// version it replaces move to it; that version's instances stop once
// their calls have finished (old.awaitGone waits for that).
func (iv *invoker) install(nf *function) (old *function) {
	iv.mu.Lock()
	old = iv.fns[nf.fn.Spec.Name]
	iv.fns[nf.fn.Spec.Name] = nf
	iv.mu.Unlock()
	if old != nil {
		old.retire(nf)
	}
	return old
}

// remove retires the function and waits (up to ctx) until its calls in
// flight have ended and its sandboxes are gone.
func (iv *invoker) remove(ctx context.Context, name string) {
	iv.mu.Lock()
	old := iv.fns[name]
	delete(iv.fns, name)
	iv.mu.Unlock()
	if old != nil {
		old.retire(nil)
		old.awaitGone(ctx)
	}
}

func (iv *invoker) lookup(name string) (*function, error) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	f, ok := iv.fns[name]
	if !ok {
		return nil, fmt.Errorf("function %q: %w", name, errdefs.ErrNotFound)
	}
	return f, nil
}

// instances counts running instances, per function name.
func (iv *invoker) instances() map[string]int {
	n := map[string]int{}
	for _, s := range iv.states() {
		n[s.name] = s.instances
	}
	return n
}

type fnState struct {
	name      string
	instances int
	waiting   int // calls queued for a slot
	inflight  int
}

// states is a snapshot of every function's running state.
func (iv *invoker) states() []fnState {
	fns := iv.functions()
	out := make([]fnState, 0, len(fns))
	for _, f := range fns {
		out = append(out, f.state())
	}
	return out
}

// stopAll retires every function and waits until their instances are gone
// or ctx ends (then the rest are destroyed with their calls).
func (iv *invoker) stopAll(ctx context.Context) {
	iv.stopReaper()
	<-iv.reaperDone
	iv.mu.Lock()
	fns := iv.fns
	iv.fns = map[string]*function{}
	iv.mu.Unlock()
	for _, f := range fns {
		f.retire(nil)
	}
	for _, f := range fns {
		f.awaitGone(ctx)
	}
	iv.background.Wait()
}

// goBackground runs fn on its own goroutine; stopAll waits for it.
func (iv *invoker) goBackground(fn func()) {
	iv.background.Add(1)
	go func() {
		defer iv.background.Done()
		fn()
	}()
}
