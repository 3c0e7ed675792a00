package metering

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/store"
)

// clock is a settable clock for Config.Clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(now time.Time) *clock { return &clock{now: now} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// openDB opens a store in a real file in t.TempDir and closes it at the end.
func openDB(t testing.TB) (*store.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edgefaas.db")
	db, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// openLedger opens a ledger on db and closes it at the end.
func openLedger(t testing.TB, db *store.DB, cfg Config) *Ledger {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	l, err := Open(db, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// waitFor polls cond until it holds or d has passed.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(d)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("still not %s after %v", what, d)
		}
	}
}

// rawSeqs returns the seqs of the raw records, in order.
func rawSeqs(t testing.TB, db *store.DB) []int64 {
	t.Helper()
	rows, err := db.SQL().QueryContext(context.Background(), "SELECT seq FROM metering_records ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var seqs []int64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return seqs
}

// record returns a valid record of function fn.
func record(fn string, start time.Time, d time.Duration) Record {
	return Record{CallID: "call-" + fn, Function: fn, ImageDigest: "sha256:abc", Trigger: "http", Start: start,
		Duration: d, MemoryBytes: 128 << 20, Status: "ok"}
}

func mustRecord(t testing.TB, l *Ledger, r Record) int64 {
	t.Helper()
	seq, err := l.Record(context.Background(), r)
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	return seq
}
