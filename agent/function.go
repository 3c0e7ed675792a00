package agent

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefaas/edgefaas/api"
)

// function is the running state of one deployed function version.
type function struct {
	iv   *invoker
	fn   api.Function
	tmpl process       // how to start its program, resolved at deploy
	sem  chan struct{} // one slot per concurrent call

	waiting atomic.Int64 // calls queued for a concurrency slot

	mu      sync.Mutex // held while an instance starts: later callers wait for it
	inst    *instance
	stopped bool
}

// invoke takes a concurrency slot, gets (or starts) the instance and runs
// the call on it, with the function's timeout covering the call itself.
func (f *function) invoke(ctx context.Context, c call) result {
	spec := f.fn.Spec
	if !f.acquire(ctx) {
		if ctx.Err() != nil {
			return errResult(499, statusError, "caller went away")
		}
		return errResult(http.StatusTooManyRequests, statusThrottled,
			fmt.Sprintf("function %q is at its concurrency limit (%d)", spec.Name, spec.Concurrency))
	}
	defer func() { <-f.sem }()
	start := time.Now()
	inst, cold, err := f.instance(ctx)
	initTime := time.Since(start)
	if err != nil {
		res := errResult(http.StatusBadGateway, statusCrashed, err.Error())
		res.Cold, res.InitTime, res.Ran = true, initTime, true
		return res
	}
	callCtx, cancel := context.WithTimeout(ctx, time.Duration(spec.Timeout))
	defer cancel()
	res := inst.invoke(callCtx, c)
	if inst.broken() {
		f.discard(inst)
	}
	res.Cold, res.Ran = cold, true
	if cold {
		res.InitTime = initTime
	}
	return res
}

// acquire takes a concurrency slot, queueing at most as long as the call
// itself may take.
func (f *function) acquire(ctx context.Context) bool {
	select {
	case f.sem <- struct{}{}:
		return true
	default:
	}
	f.waiting.Add(1)
	defer f.waiting.Add(-1)
	wait := time.NewTimer(time.Duration(f.fn.Spec.Timeout))
	defer wait.Stop()
	select {
	case f.sem <- struct{}{}:
		return true
	case <-ctx.Done():
	case <-wait.C:
	}
	return false
}

// instance returns the live instance, starting one when there is none.
func (f *function) instance(ctx context.Context) (*instance, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return nil, false, fmt.Errorf("function %q was replaced or removed", f.fn.Spec.Name)
	}
	if f.inst != nil && !f.inst.broken() {
		return f.inst, false, nil
	}
	if f.inst != nil {
		go f.inst.destroy()
		f.inst = nil
	}
	startCtx, cancel := context.WithTimeout(ctx, f.iv.startTimeout)
	defer cancel()
	inst, err := startInstance(startCtx, f.iv, f.fn, f.tmpl)
	if err != nil {
		return nil, false, err
	}
	f.inst = inst
	return inst, true, nil
}

// discard forgets a broken instance and destroys it.
func (f *function) discard(inst *instance) {
	f.mu.Lock()
	if f.inst == inst {
		f.inst = nil
	}
	f.mu.Unlock()
	inst.destroy()
}

func (f *function) running() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inst != nil && !f.inst.broken() {
		return 1
	}
	return 0
}

// stop destroys the instance; calls in flight on it fail.
func (f *function) stop() {
	f.mu.Lock()
	inst := f.inst
	f.inst, f.stopped = nil, true
	f.mu.Unlock()
	if inst != nil {
		inst.destroy()
	}
}
