package metering

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/store"
)

// TestSeq checks sequence numbers: concurrent callers get 1..N without gaps
// or repeats, and neither a restart nor deleted (rolled up) rows make a
// seq come back.
func TestSeq(t *testing.T) {
	ctx := t.Context()
	db, path := openDB(t)
	clk := newClock(base)
	l := openLedger(t, db, Config{Clock: clk.Now})

	const workers, each = 16, 200
	var mu sync.Mutex
	var seqs []int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r := record(fmt.Sprint("f", w%3), base.Add(time.Duration(i)*time.Second), time.Duration(i)*time.Millisecond)
				seq, err := l.Record(ctx, r)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seqs = append(seqs, seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	if len(seqs) != workers*each || seqs[0] != 1 || seqs[len(seqs)-1] != workers*each || len(slices.Compact(seqs)) != workers*each {
		t.Fatalf("%d seqs from %d to %d, want exactly 1..%d", len(seqs), seqs[0], seqs[len(seqs)-1], workers*each)
	}
	if got := rawSeqs(t, db); len(got) != workers*each {
		t.Fatalf("%d records stored, want %d", len(got), workers*each)
	}

	// reopen closes the ledger and the store and opens both again on the
	// same file: what a restart of the agent does.
	reopen := func() {
		t.Helper()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		var err error
		if db, err = store.Open(ctx, path); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		l = openLedger(t, db, Config{Clock: clk.Now})
	}
	steps := []struct {
		name    string
		before  func()
		wantSeq int64
	}{
		{name: "after a restart", before: reopen, wantSeq: workers*each + 1},
		{name: "after every row is rolled up", before: func() {
			clk.Set(base.Add(30 * 24 * time.Hour))
			if n, err := l.Rollup(ctx); err != nil || n != workers*each+1 {
				t.Fatalf("Rollup = %d, %v, want every record", n, err)
			}
		}, wantSeq: workers*each + 2},
		{name: "after a roll-up then a restart", before: func() {
			if _, err := l.Rollup(ctx); err != nil {
				t.Fatal(err)
			}
			if got := rawSeqs(t, db); len(got) != 0 {
				t.Fatalf("raw records left: %v", got)
			}
			reopen()
		}, wantSeq: workers*each + 3},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.before()
			if got := mustRecord(t, l, record("f", base, 0)); got != s.wantSeq {
				t.Errorf("next seq = %d, want %d", got, s.wantSeq)
			}
		})
	}
}

func TestRecordRejects(t *testing.T) {
	db, _ := openDB(t)
	l := openLedger(t, db, Config{})
	ok := record("f", base, time.Millisecond)
	tests := []struct {
		name   string
		change func(*Record)
	}{
		{name: "no function", change: func(r *Record) { r.Function = "" }},
		{name: "no status", change: func(r *Record) { r.Status = "" }},
		{name: "no start", change: func(r *Record) { r.Start = time.Time{} }},
		{name: "start before 1970", change: func(r *Record) { r.Start = time.Unix(-1, 0) }},
		{name: "negative duration", change: func(r *Record) { r.Duration = -1 }},
		{name: "negative cpu", change: func(r *Record) { r.CPUTime = -1 }},
		{name: "negative memory", change: func(r *Record) { r.MemoryBytes = -1 }},
		{name: "negative response", change: func(r *Record) { r.ResponseBytes = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.change(&r)
			if _, err := l.Record(t.Context(), r); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Record = %v, want ErrInvalid", err)
			}
		})
	}
	if got := rawSeqs(t, db); len(got) != 0 {
		t.Errorf("rejected records stored: %v", got)
	}
	// Unknown statuses and triggers are kept: refusing them would leave
	// an invocation unbilled.
	odd := ok
	odd.Status, odd.Trigger = "throttled", "cli"
	if seq := mustRecord(t, l, odd); seq != 1 {
		t.Errorf("seq = %d, want 1 (rejected records take no seq)", seq)
	}
}

func TestClosed(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	l := openLedger(t, db, Config{})
	mustRecord(t, l, record("f", base, 0))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{name: "Record", call: func() error { _, err := l.Record(ctx, record("f", base, 0)); return err }},
		{name: "Ack", call: func() error { return l.Ack(ctx, 1) }},
		{name: "Unacked", call: func() error { _, err := l.Unacked(ctx, 0, 10); return err }},
		{name: "Rollup", call: func() error { _, err := l.Rollup(ctx); return err }},
		{name: "Usage", call: func() error { _, err := l.Usage(ctx, Query{}); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, errdefs.ErrUnavailable) {
				t.Errorf("%s after Close = %v, want ErrUnavailable", tt.name, err)
			}
		})
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if got := rawSeqs(t, db); !slices.Equal(got, []int64{1}) {
		t.Errorf("records after Close = %v, want [1]", got)
	}
}

// TestRecordCancelled pins down what a cancelled context does: before the
// call, nothing is stored; once the record is queued, Record returns
// ctx.Err() but the record is committed anyway.
func TestRecordCancelled(t *testing.T) {
	t.Run("before the call", func(t *testing.T) {
		db, _ := openDB(t)
		l := openLedger(t, db, Config{})
		for _, ctx := range cancelledContexts(t) {
			if _, err := l.Record(ctx, record("f", base, 0)); !errors.Is(err, ctx.Err()) || err == nil {
				t.Errorf("Record = %v, want %v", err, ctx.Err())
			}
		}
		if got := rawSeqs(t, db); len(got) != 0 {
			t.Errorf("stored %v, want nothing", got)
		}
	})
	t.Run("while queued", func(t *testing.T) {
		db, _ := openDB(t)
		l := openLedger(t, db, Config{})
		// Hold the writer: it takes the first record, then waits for
		// writeMu, so the second one stays in the queue. The hook says
		// when the writer has its batch (len(reqs) == 0 alone could be
		// seen while it still gathers, and it would take the second).
		batches := make(chan int, 4)
		l.testHookCommit = func(n int) { batches <- n }
		l.writeMu.Lock()
		held := true
		defer func() {
			if held { // a failure below must not leave Close deadlocked
				l.writeMu.Unlock()
			}
		}()
		first := &pending{rec: record("first", base, 0), done: make(chan result, 1)}
		if err := l.enqueue(t.Context(), first); err != nil {
			t.Fatal(err)
		}
		if n := <-batches; n != 1 {
			t.Fatalf("first batch has %d records, want 1", n)
		}
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, err := l.Record(ctx, record("second", base, 0))
			errc <- err
		}()
		waitFor(t, 5*time.Second, "queued", func() bool { return len(l.reqs) == 1 })
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Record = %v, want context.Canceled", err)
		}
		held = false
		l.writeMu.Unlock()
		if res := <-first.done; res.err != nil || res.seq != 1 {
			t.Errorf("first record = %+v, want seq 1", res)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if got := rawSeqs(t, db); !slices.Equal(got, []int64{1, 2}) {
			t.Errorf("stored %v, want [1 2]: a queued record is committed", got)
		}
	})
}

func cancelledContexts(t *testing.T) []context.Context {
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Unix(1, 0))
	t.Cleanup(cancel2)
	return []context.Context{cancelled, expired}
}

func TestSyncs(t *testing.T) {
	tests := []struct {
		name      string
		syncEvery time.Duration
		records   int
		waitSync  bool // wait for the background sync before Close
		wantSyncs int64
	}{
		{name: "idle: no sync, not even at Close", syncEvery: time.Millisecond, records: 0, wantSyncs: 0},
		{name: "Close syncs what is pending", syncEvery: time.Hour, records: 3, wantSyncs: 1},
		{name: "background sync after a write, none left for Close", syncEvery: time.Millisecond, records: 1,
			waitSync: true, wantSyncs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openDB(t)
			l := openLedger(t, db, Config{SyncEvery: tt.syncEvery})
			// Set before the first Record: the syncer reads it only after
			// a commit, which happens after this write.
			var syncs atomic.Int64
			l.syncWAL = func() error { syncs.Add(1); return db.SyncWAL() }
			for range tt.records {
				mustRecord(t, l, record("f", base, 0))
			}
			if tt.waitSync {
				waitFor(t, 5*time.Second, "synced", func() bool { return syncs.Load() > 0 })
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if got := syncs.Load(); got != tt.wantSyncs {
				t.Errorf("%d WAL syncs, want %d", got, tt.wantSyncs)
			}
		})
	}
}

func TestCloseLeaksNoGoroutine(t *testing.T) {
	db, _ := openDB(t)
	// database/sql's own goroutines start with the store: count after.
	baseline := runtime.NumGoroutine()
	l := openLedger(t, db, Config{SyncEvery: time.Millisecond})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if _, err := l.Record(t.Context(), record("f", base, 0)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "back to the baseline goroutines", func() bool { return runtime.NumGoroutine() <= baseline })
}
