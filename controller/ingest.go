package controller

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
)

// UsageBatch is one device's records, as one usage message carried them.
type UsageBatch struct {
	Device  string
	Records []proto.UsageRecord
}

// ingester stores usage batches from every link with one writer: the
// batches pending at once share a transaction and one WAL sync (group
// commit), so a thousand devices uploading at once cost one fsync per
// round, not one each, and never fight over SQLite's write lock.
type ingester struct {
	store Store
	log   *slog.Logger
	reqs  chan *ingestReq

	mu     sync.RWMutex // guards closed and the sends on reqs
	closed bool
	done   chan struct{}
}

type ingestReq struct {
	batch UsageBatch
	done  chan ingestResult // capacity 1
}

type ingestResult struct {
	PutResult
	err error
}

// maxIngestRound bounds the batches in one transaction.
const maxIngestRound = 256

func newIngester(s Store, log *slog.Logger) *ingester {
	in := &ingester{store: s, log: log, reqs: make(chan *ingestReq, maxIngestRound), done: make(chan struct{})}
	go in.run()
	return in
}

// put stores b durably and says how many of its records were new. Once it
// returns nil, the records survive a crash of the controller: only then may
// the link acknowledge them.
func (in *ingester) put(ctx context.Context, b UsageBatch) (PutResult, error) {
	r := &ingestReq{batch: b, done: make(chan ingestResult, 1)}
	in.mu.RLock()
	if in.closed {
		in.mu.RUnlock()
		return PutResult{}, fmt.Errorf("usage: controller stopping: %w", errdefs.ErrUnavailable)
	}
	select {
	case in.reqs <- r:
	case <-ctx.Done():
		in.mu.RUnlock()
		return PutResult{}, ctx.Err()
	}
	in.mu.RUnlock()
	select {
	case res := <-r.done:
		return res.PutResult, res.err
	case <-ctx.Done():
		return PutResult{}, ctx.Err()
	}
}

func (in *ingester) run() {
	defer close(in.done)
	for first := range in.reqs {
		round := []*ingestReq{first}
	more:
		for len(round) < maxIngestRound {
			select {
			case r, ok := <-in.reqs:
				if !ok {
					break more
				}
				round = append(round, r)
			default:
				break more
			}
		}
		batches := make([]UsageBatch, len(round))
		for i, r := range round {
			batches[i] = r.batch
		}
		// Not the links' contexts: a link that went away must not abort
		// the round of the others.
		stored, err := in.store.PutUsage(context.Background(), batches)
		if err != nil {
			in.log.Error("storing usage failed", "batches", len(round), "err", err)
		}
		for i, r := range round {
			res := ingestResult{err: err}
			if err == nil {
				res.PutResult = stored[i]
			}
			r.done <- res
		}
	}
}

// close stops taking batches, stores those queued, and waits.
func (in *ingester) close() {
	in.mu.Lock()
	if !in.closed {
		in.closed = true
		close(in.reqs)
	}
	in.mu.Unlock()
	<-in.done
}
