package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/store"
)

// Async calls: POST /async-function/{name} commits the call to a queue in
// SQLite (WAL synced) before answering 202 with X-Call-Id. A worker runs it
// like any call (trigger "async"), stores its result in the same row, and
// posts the result to X-Callback-Url, retrying with backoff. A row leaves
// the queue only when its result was delivered or had nowhere to go, so a
// call survives kill -9 of the agent: it runs (again) after the restart.
const (
	asyncWorkers      = 4
	asyncPoll         = time.Second // how often retries that came due are looked for
	asyncMaxDeliver   = 8           // callback attempts before the result is dropped
	asyncMaxBackoff   = 5 * time.Minute
	asyncCallbackWait = 10 * time.Second
)

type asyncQueue struct {
	db     *store.DB
	run    func(ctx context.Context, name string, c call) result
	log    *slog.Logger
	client *http.Client
	limit  int

	wake chan struct{}
	mu   sync.Mutex
	busy map[int64]bool // rows being worked on
	stop bool           // stopping: results of calls cut short are not kept
	wg   sync.WaitGroup

	cancel context.CancelFunc
	done   chan struct{}
}

func newAsyncQueue(db *store.DB, run func(context.Context, string, call) result, limit int, log *slog.Logger) *asyncQueue {
	ctx, cancel := context.WithCancel(context.Background())
	q := &asyncQueue{db: db, run: run, log: log, limit: limit,
		client: &http.Client{Timeout: asyncCallbackWait},
		wake:   make(chan struct{}, 1), busy: map[int64]bool{}, cancel: cancel, done: make(chan struct{})}
	go q.loop(ctx)
	return q
}

// handleAsync serves POST /async-function/{name}[/{path...}].
func (a *Agent) handleAsync(w http.ResponseWriter, r *http.Request) {
	f, callID, body, ok := a.acceptCall(w, r)
	if !ok {
		return
	}
	name := f.fn.Spec.Name
	cb := r.Header.Get("X-Callback-Url")
	if u, err := url.Parse(cb); cb != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		writeResult(w, errResult(http.StatusBadRequest, statusError, fmt.Sprintf("X-Callback-Url %q: want an http or https URL", cb)))
		return
	}
	h := r.Header.Clone()
	h.Del("X-Callback-Url")
	err := a.async.db.EnqueueAsync(r.Context(), store.AsyncCall{
		CallID: callID, Function: name, Method: http.MethodPost, Path: "/" + r.PathValue("path"),
		Query: r.URL.RawQuery, Header: h, Body: body, CallbackURL: cb, Created: time.Now(),
	}, a.async.limit)
	switch {
	case errors.Is(err, errdefs.ErrUnavailable):
		writeResult(w, errResult(http.StatusTooManyRequests, statusThrottled, err.Error()))
		return
	case err != nil:
		a.log.Error("async call not queued", "function", name, "call_id", callID, "err", err)
		writeResult(w, errResult(http.StatusServiceUnavailable, statusError, "the async queue cannot take calls: "+err.Error()))
		return
	}
	a.async.poke()
	w.WriteHeader(http.StatusAccepted)
}

func (q *asyncQueue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// loop hands due rows to workers until Close.
func (q *asyncQueue) loop(ctx context.Context) {
	defer close(q.done)
	sem := make(chan struct{}, asyncWorkers)
	for {
		q.mu.Lock()
		skip := make(map[int64]bool, len(q.busy))
		for k := range q.busy {
			skip[k] = true
		}
		q.mu.Unlock()
		due, err := q.db.DueAsync(ctx, time.Now(), asyncWorkers, skip)
		if err != nil && ctx.Err() == nil {
			q.log.Error("reading the async queue", "err", err)
		}
		for _, c := range due {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			q.mu.Lock()
			q.busy[c.Seq] = true
			q.mu.Unlock()
			q.wg.Add(1)
			go func() {
				defer func() {
					q.mu.Lock()
					delete(q.busy, c.Seq)
					q.mu.Unlock()
					<-sem
					q.wg.Done()
					q.poke() // a slot is free: look again
				}()
				q.work(c)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-time.After(asyncPoll):
		}
	}
}

// work runs a queued call or delivers its result.
func (q *asyncQueue) work(c store.AsyncCall) {
	ctx := context.Background() // a stop waits for the call instead (see close)
	log := q.log.With("function", c.Function, "call_id", c.CallID)
	if !c.Delivering {
		res := q.run(ctx, c.Function, call{ID: c.CallID, Trigger: "async", Method: c.Method, Path: c.Path,
			Query: c.Query, Header: c.Header, Body: c.Body})
		q.mu.Lock()
		stopping := q.stop
		q.mu.Unlock()
		switch {
		case stopping && res.FaasStatus != statusOK && res.FaasStatus != statusError:
			return // cut short by the stop: it runs again after the restart
		case res.FaasStatus == statusThrottled:
			q.retry(ctx, log, c, "throttled")
			return
		}
		if err := q.db.AsyncResult(ctx, c.Seq, res.Code, res.FaasStatus, res.Header, res.Body); err != nil {
			log.Error("async result not stored; the call will run again", "err", err)
			return
		}
		c.ResultCode, c.ResultStatus, c.ResultHeader, c.ResultBody, c.Attempts = res.Code, res.FaasStatus, res.Header, res.Body, 0
	}
	if c.CallbackURL == "" {
		q.done1(ctx, log, c)
		return
	}
	if err := q.deliver(ctx, c); err != nil {
		if c.Attempts+1 >= asyncMaxDeliver {
			log.Error("async result dropped: the callback failed every attempt", "attempts", c.Attempts+1, "err", err)
			q.done1(ctx, log, c)
			return
		}
		q.retry(ctx, log, c, err.Error())
		return
	}
	q.done1(ctx, log, c)
}

func (q *asyncQueue) retry(ctx context.Context, log *slog.Logger, c store.AsyncCall, why string) {
	backoff := min(time.Second<<min(c.Attempts, 16), asyncMaxBackoff)
	log.Info("async call retried later", "why", why, "attempt", c.Attempts+1, "in", backoff)
	if err := q.db.RetryAsync(ctx, c.Seq, time.Now().Add(backoff)); err != nil {
		log.Error("async retry not stored", "err", err)
	}
}

func (q *asyncQueue) done1(ctx context.Context, log *slog.Logger, c store.AsyncCall) {
	if err := q.db.DoneAsync(ctx, c.Seq); err != nil {
		log.Error("async call not removed from the queue; it may be delivered again", "err", err)
	}
}

// deliver posts the result to the callback URL: the function's body and
// content type, with the call id and outcome in headers.
func (q *asyncQueue) deliver(ctx context.Context, c store.AsyncCall) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.CallbackURL, bytes.NewReader(c.ResultBody))
	if err != nil {
		return err
	}
	if ct := c.ResultHeader.Get("Content-Type"); ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("X-Call-Id", c.CallID)
	req.Header.Set("X-Function-Name", c.Function)
	req.Header.Set("X-Faas-Status", c.ResultStatus)
	req.Header.Set("X-Function-Status", strconv.Itoa(c.ResultCode))
	resp, err := q.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("callback answered %s", resp.Status)
	}
	return nil
}

// close stops taking rows and waits for the calls being worked on. Calls
// cut short by the invoker's stop stay queued.
func (q *asyncQueue) close() {
	q.mu.Lock()
	q.stop = true
	q.mu.Unlock()
	q.cancel()
	<-q.done
}

// wait waits for the workers (after the invoker's stop ended their calls).
func (q *asyncQueue) wait() { q.wg.Wait() }
