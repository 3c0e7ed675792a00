package agent

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/edgefaas/edgefaas/api"
)

// function is the running state of one deployed function version: its pool
// of instances and the calls queued for a slot in one.
//
// Scaling: a call takes a slot on the busiest instance that has one (so
// that the others go idle and can stop); when none has, it queues, and an
// instance is started for every Concurrency queued calls not already
// covered by a start, up to MaxInstances. Past Queue waiting calls the
// answer is 429. Instances idle for Idle stop, down to MinInstances, which
// are started ahead and replaced when they die.
type function struct {
	iv   *invoker
	fn   api.Function
	tmpl process // how to start its program, resolved at deploy

	mu       sync.Mutex
	insts    []*instance // started instances, oldest first
	starting int         // instances being started
	queue    []*waiter   // calls waiting for a slot, first come first served
	retired  bool        // replaced or removed: takes no new calls
	next     *function   // the version that replaced this one; nil when removed
	drained  chan struct{}
	// A failing start is not retried for MinInstances before minRetry.
	minRetry time.Time
	minDelay time.Duration

	gone sync.WaitGroup // destroys of its instances in flight

	lastCall   time.Time // when a call last arrived
	pre        *instance // a prewarmed (created, held) instance, or nil
	prewarming bool      // one is being created
}

// waiter is a queued call. Its channel receives exactly one grant.
type waiter struct{ ch chan grant }

// grant is what a queued call gets: a slot on an instance (cold when the
// instance was started for it), an error when that start failed, or moved
// when its function was replaced (the call queues again on the new version).
type grant struct {
	inst  *instance
	cold  bool
	err   error
	moved bool
}

func newFunction(iv *invoker, fn api.Function, tmpl process) *function {
	return &function{iv: iv, fn: fn, tmpl: tmpl, drained: make(chan struct{})}
}

// invoke takes a slot (queueing, or starting an instance), runs the call
// with the function's timeout covering the call itself, and gives the slot
// back. It returns the function version that served the call.
func (f *function) invoke(ctx context.Context, c call) (result, *function) {
	g, f, res := f.acquire(ctx)
	if g.inst == nil {
		return res, f
	}
	callCtx, cancel := context.WithTimeout(ctx, time.Duration(f.fn.Spec.Timeout))
	res = g.inst.invoke(callCtx, c)
	cancel()
	f.release(g.inst)
	res.Cold, res.Ran = g.cold, true
	if g.cold {
		res.InitTime = g.inst.initTime
	}
	return res, f
}

// acquire returns a granted slot and the function version it belongs to,
// or the answer to give instead. A queued call waits at most the function's
// timeout and not past the caller's going away.
func (f *function) acquire(ctx context.Context) (grant, *function, result) {
	for {
		q, w, inst, res := f.enqueue()
		if inst != nil { // a free slot, taken at once
			return grant{inst: inst}, q, result{}
		}
		if w == nil {
			return grant{}, q, res
		}
		g, gaveUp := q.wait(ctx, w)
		switch {
		case gaveUp && ctx.Err() != nil:
			return grant{}, q, errResult(499, statusError, "caller went away")
		case gaveUp:
			return grant{}, q, q.throttled("no instance was free within the function's timeout")
		case g.moved:
			f = q // enqueue follows q.next
			continue
		case g.err != nil:
			res := errResult(http.StatusBadGateway, statusCrashed, g.err.Error())
			res.Cold, res.Ran = true, true
			return grant{}, q, res
		}
		return g, q, result{}
	}
}

// enqueue takes a free slot (inst), or queues a waiter (w), or refuses the
// call (res says why). q is the version that took it: a retired function
// passes calls to the version that replaced it.
func (f *function) enqueue() (q *function, w *waiter, inst *instance, res result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.retired {
		if f.next == nil {
			return f, nil, nil, errResult(http.StatusNotFound, statusNotFound,
				fmt.Sprintf("function %q was removed", f.fn.Spec.Name))
		}
		return f.next.enqueue()
	}
	f.lastCall = f.iv.now()
	if inst := f.pickLocked(); inst != nil {
		inst.active++
		inst.grants++
		return f, nil, inst, result{}
	}
	if len(f.queue) >= f.fn.Spec.Queue {
		return f, nil, nil, f.throttled(fmt.Sprintf("%d calls already wait", len(f.queue)))
	}
	w = &waiter{ch: make(chan grant, 1)}
	f.queue = append(f.queue, w)
	f.scaleUpLocked()
	return f, w, nil, result{}
}

func (f *function) throttled(why string) result {
	spec := f.fn.Spec
	return errResult(http.StatusTooManyRequests, statusThrottled, fmt.Sprintf(
		"function %q is at its limit (%d instances x %d calls, queue %d): %s",
		spec.Name, spec.MaxInstances, f.slots(), spec.Queue, why))
}

// wait blocks until w is granted or the caller gives up. A grant that races
// with giving up is used, so no slot is lost.
func (f *function) wait(ctx context.Context, w *waiter) (grant, bool) {
	timer := time.NewTimer(time.Duration(f.fn.Spec.Timeout))
	defer timer.Stop()
	select {
	case g := <-w.ch:
		return g, false
	case <-ctx.Done():
	case <-timer.C:
	}
	if f.dequeue(w) {
		return grant{}, true
	}
	g := <-w.ch // granted meanwhile
	if ctx.Err() != nil && g.inst != nil {
		f.release(g.inst)
		return grant{}, true
	}
	return g, false
}

func (f *function) dequeue(w *waiter) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.Index(f.queue, w)
	if i < 0 {
		return false
	}
	f.queue = slices.Delete(f.queue, i, i+1)
	return true
}

// slots is the number of calls one instance takes at once. An exec-mode
// instance runs one process per call, several at once in its sandbox.
func (f *function) slots() int { return max(f.fn.Spec.Concurrency, 1) }

// pickLocked returns the busiest instance with a free slot, dropping dead
// ones on the way; nil when every instance is full.
func (f *function) pickLocked() *instance {
	var best *instance
	dead := false
	for _, inst := range f.insts {
		switch {
		case inst.broken():
			dead = dead || inst.active == 0
		case inst.retiring || inst.active >= f.slots():
		case best == nil || inst.active > best.active:
			best = inst
		}
	}
	if dead { // rare: only then is the list copied, to drop from it
		for _, inst := range slices.Clone(f.insts) {
			if inst.broken() && inst.active == 0 {
				f.dropLocked(inst)
			}
		}
	}
	return best
}

// scaleUpLocked starts instances for queued calls that no start in
// progress will serve, within MaxInstances.
func (f *function) scaleUpLocked() {
	for !f.retired && len(f.queue) > f.starting*f.slots() && f.liveLocked()+f.starting < f.fn.Spec.MaxInstances {
		f.starting++
		f.iv.goBackground(func() { f.start(true) })
	}
}

// ensureMinLocked starts instances until MinInstances are up or starting.
func (f *function) ensureMinLocked(now time.Time) {
	if now.Before(f.minRetry) {
		return
	}
	for !f.retired && f.liveLocked()+f.starting < f.fn.Spec.MinInstances {
		f.starting++
		f.iv.goBackground(func() { f.start(false) })
	}
}

// liveLocked counts instances that can take calls now or once free.
func (f *function) liveLocked() int {
	n := 0
	for _, inst := range f.insts {
		if !inst.retiring && !inst.broken() {
			n++
		}
	}
	return n
}

// start starts one instance and hands it to the queue. onDemand instances
// were started for a waiting call: that call is a cold start.
func (f *function) start(onDemand bool) {
	ctx, cancel := context.WithTimeout(context.Background(), f.iv.startTimeout)
	defer cancel()
	inst, err := f.iv.newInstance(ctx, f)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starting--
	if err != nil {
		f.iv.log.Error("instance did not start", "function", f.fn.Spec.Name, "err", err)
		f.failStartLocked(err)
		return
	}
	f.minDelay = 0
	if f.retired {
		f.destroy(inst)
		f.drainedLocked()
		return
	}
	inst.onDemand = onDemand
	f.insts = append(f.insts, inst)
	f.dispatchLocked()
	f.prewarmLocked(f.iv.now()) // the next cold start costs one exec
}

// failStartLocked fails the calls the failed start was for: all of them when
// nothing else will serve them, else the first.
func (f *function) failStartLocked(err error) {
	f.minDelay = min(max(2*f.minDelay, time.Second), 30*time.Second)
	f.minRetry = f.iv.now().Add(f.minDelay)
	n := 1
	if f.liveLocked() == 0 && f.starting == 0 {
		n = len(f.queue)
	}
	for range min(n, len(f.queue)) {
		f.popLocked() <- grant{err: err}
	}
	f.drainedLocked()
}

func (f *function) popLocked() chan grant {
	w := f.queue[0]
	f.queue = f.queue[1:]
	return w.ch
}

// dispatchLocked gives free slots to queued calls, in order.
func (f *function) dispatchLocked() {
	for len(f.queue) > 0 {
		inst := f.pickLocked()
		if inst == nil {
			return
		}
		inst.active++
		cold := inst.onDemand && inst.grants == 0
		inst.grants++
		f.popLocked() <- grant{inst: inst, cold: cold}
	}
}

// release gives a slot back after a call. A broken instance is dropped, one
// due for recycling retires, and queued calls get the slot.
func (f *function) release(inst *instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst.active--
	inst.calls++
	inst.lastUsed = f.iv.now()
	if n := f.fn.Spec.RecycleAfter; n > 0 && inst.calls >= n {
		inst.retiring = true
	}
	if inst.active == 0 && (inst.broken() || inst.retiring || f.retired) {
		f.dropLocked(inst)
	}
	f.dispatchLocked()
	f.scaleUpLocked()
	f.drainedLocked()
}

// dropLocked forgets an instance and destroys it in the background.
func (f *function) dropLocked(inst *instance) {
	if i := slices.Index(f.insts, inst); i >= 0 {
		f.insts = slices.Delete(f.insts, i, i+1)
		f.destroy(inst)
	}
}

// reap runs periodically: it drops dead instances, stops those idle past
// the idle timeout (newest first, keeping MinInstances), retires those whose
// memory passed RecycleMemory, and starts instances up to MinInstances.
func (f *function) reap(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.retired {
		return
	}
	spec := f.fn.Spec
	live := f.liveLocked()
	for _, inst := range slices.Backward(slices.Clone(f.insts)) {
		if inst.active > 0 {
			continue
		}
		switch {
		case inst.broken(), inst.retiring:
			f.dropLocked(inst)
		case live > spec.MinInstances && now.Sub(inst.lastUsed) >= time.Duration(spec.Idle):
			f.dropLocked(inst)
			live--
		case spec.RecycleMemory > 0 && inst.memory() > uint64(spec.RecycleMemory):
			f.iv.log.Info("instance recycled: memory past its threshold", "function", spec.Name, "sandbox", inst.sb.ID())
			f.dropLocked(inst)
		}
	}
	f.ensureMinLocked(now)
	f.scaleUpLocked()
	f.prewarmLocked(now)
}

// prewarmLocked keeps one prewarmed instance for a function called within
// the prewarm window, while the agent-wide budget allows, and gives up the
// one of a function that went quiet.
func (f *function) prewarmLocked(now time.Time) {
	iv := f.iv
	recent := !f.lastCall.IsZero() && now.Sub(f.lastCall) < iv.prewarmWindow
	if f.pre != nil && (!recent || f.pre.broken()) {
		f.unprewarm(f.pre)
		f.pre = nil
	}
	if !recent || f.retired || f.pre != nil || f.prewarming || !iv.reservePrewarm() {
		return
	}
	f.prewarming = true
	iv.goBackground(func() {
		ctx, cancel := context.WithTimeout(context.Background(), iv.startTimeout)
		defer cancel()
		inst, err := createInstance(ctx, iv, f.fn, f.tmpl)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.prewarming = false
		switch {
		case err != nil:
			iv.prewarmCount.Add(-1)
			iv.log.Warn("prewarming failed", "function", f.fn.Spec.Name, "err", err)
		case f.retired || f.pre != nil:
			f.unprewarm(inst)
		default:
			f.pre = inst
		}
	})
}

// takePrewarmed hands over the prewarmed instance, if there is a live one.
func (f *function) takePrewarmed() *instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pre
	f.pre = nil
	if p == nil {
		return nil
	}
	f.iv.prewarmCount.Add(-1)
	if p.broken() {
		f.destroy(p)
		return nil
	}
	return p
}

// retire stops the function taking calls. Queued calls move to next (or
// fail when the function was removed); instances stop as their calls end.
func (f *function) retire(next *function) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retired, f.next = true, next
	if f.pre != nil {
		f.unprewarm(f.pre)
		f.pre = nil
	}
	for len(f.queue) > 0 {
		if next == nil {
			f.popLocked() <- grant{err: fmt.Errorf("function %q was removed", f.fn.Spec.Name)}
			continue
		}
		f.popLocked() <- grant{moved: true} // it queues again on next
	}
	for _, inst := range slices.Clone(f.insts) {
		if inst.active == 0 {
			f.dropLocked(inst)
		}
	}
	f.drainedLocked()
}

// drainedLocked closes drained once a retired function has nothing left.
func (f *function) drainedLocked() {
	if f.retired && len(f.insts) == 0 && f.starting == 0 {
		select {
		case <-f.drained:
		default:
			close(f.drained)
		}
	}
}

// running counts the instances that are up.
func (f *function) running() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.liveLocked()
}

// state is the function's live state: instances up and calls running.
func (f *function) state() fnState {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := fnState{name: f.fn.Spec.Name, instances: f.liveLocked(), waiting: len(f.queue)}
	for _, inst := range f.insts {
		st.inflight += inst.active
	}
	return st
}

// warm starts n instances and waits until they are ready: a new version is
// ready before it takes over from the old one. It fails with the first
// start that fails.
func (f *function) warm(ctx context.Context, n int) error {
	type started struct {
		inst *instance
		err  error
	}
	ch := make(chan started, n)
	for range n {
		go func() {
			inst, err := f.iv.newInstance(ctx, f)
			ch <- started{inst, err}
		}()
	}
	var firstErr error
	var ready []*instance
	for range n {
		s := <-ch
		if s.err != nil {
			firstErr = cmp.Or(firstErr, s.err)
			continue
		}
		ready = append(ready, s.inst)
	}
	if firstErr != nil {
		for _, inst := range ready {
			inst.destroy()
		}
		return firstErr
	}
	f.mu.Lock()
	f.insts = append(f.insts, ready...)
	f.mu.Unlock()
	return nil
}

// destroy destroys an instance in the background (see awaitGone).
func (f *function) destroy(inst *instance) {
	f.gone.Add(1)
	f.iv.goBackground(func() {
		defer f.gone.Done()
		inst.destroy()
	})
}

// awaitGone waits until a retired function's calls have ended (or ctx
// ends, then they are cut short) and its sandboxes are gone.
func (f *function) awaitGone(ctx context.Context) {
	select {
	case <-f.drained:
	case <-ctx.Done():
		f.destroyAll()
	}
	f.gone.Wait()
}

// destroyAll destroys every instance, with calls in flight: the end of a
// shutdown whose deadline passed.
func (f *function) destroyAll() {
	f.mu.Lock()
	insts := f.insts
	f.insts = nil
	if f.pre != nil {
		insts = append(insts, f.pre)
		f.pre = nil
	}
	f.mu.Unlock()
	for _, inst := range insts {
		inst.destroy()
	}
}

// unprewarm destroys a prewarmed instance and frees its place in the budget.
func (f *function) unprewarm(inst *instance) {
	f.iv.prewarmCount.Add(-1)
	f.destroy(inst)
}
