package agent

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"
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
// is the record; this is its running state) and starts an instance of a
// function on demand. One instance per function, shared by up to
// Concurrency calls at once; pooling and scaling come with the pool issue.
type invoker struct {
	sandboxes    *sandbox.Manager
	logs         *logs.Store
	startTimeout time.Duration
	log          *slog.Logger

	mu  sync.Mutex
	fns map[string]*function
}

func newInvoker(sm *sandbox.Manager, ls *logs.Store, startTimeout time.Duration, log *slog.Logger) *invoker {
	return &invoker{sandboxes: sm, logs: ls, startTimeout: startTimeout, log: log, fns: map[string]*function{}}
}

// set installs (or replaces) a function. Instances of a replaced version
// are stopped; the next call starts the new one.
func (iv *invoker) set(fn api.Function, tmpl process) {
	nf := &function{iv: iv, fn: fn, tmpl: tmpl, sem: make(chan struct{}, fn.Spec.Concurrency)}
	iv.mu.Lock()
	old := iv.fns[fn.Spec.Name]
	iv.fns[fn.Spec.Name] = nf
	iv.mu.Unlock()
	if old != nil {
		old.stop()
	}
}

func (iv *invoker) remove(name string) {
	iv.mu.Lock()
	old := iv.fns[name]
	delete(iv.fns, name)
	iv.mu.Unlock()
	if old != nil {
		old.stop()
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
	waiting   int64
}

// states is a snapshot of every function's running state.
func (iv *invoker) states() []fnState {
	iv.mu.Lock()
	fns := make([]*function, 0, len(iv.fns))
	for _, f := range iv.fns {
		fns = append(fns, f)
	}
	iv.mu.Unlock()
	out := make([]fnState, 0, len(fns))
	for _, f := range fns {
		out = append(out, fnState{name: f.fn.Spec.Name, instances: f.running(), waiting: f.waiting.Load()})
	}
	return out
}

func (iv *invoker) stopAll() {
	iv.mu.Lock()
	fns := iv.fns
	iv.fns = map[string]*function{}
	iv.mu.Unlock()
	for _, f := range fns {
		f.stop()
	}
}
