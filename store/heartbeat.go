package store

import (
	"context"
	"fmt"

	"github.com/edgefaas/edgefaas/errdefs"
)

// Heartbeat writes the store's one heartbeat row and commits it. It fails
// when the database cannot take a write: the file system went read-only or
// full, or another writer holds the lock until ctx ends. The agent's
// watchdog probe calls it, so that systemd restarts an agent whose store is
// stuck.
//
// It returns when ctx ends even if the write does not: SQLite's wait for a
// busy lock (up to busyTimeout) does not notice an interrupt. The write then
// finishes in the background, and Heartbeat fails at once until it has, so
// that a stuck store costs one goroutine, not one per probe.
func (s *DB) Heartbeat(ctx context.Context) error {
	if !s.beating.TryLock() {
		return fmt.Errorf("store: heartbeat: the previous write is still waiting: %w", errdefs.ErrUnavailable)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.db.ExecContext(context.WithoutCancel(ctx), `INSERT INTO heartbeat (id, beat_ns) VALUES (1, ?)
			ON CONFLICT (id) DO UPDATE SET beat_ns = excluded.beat_ns`, s.now().UnixNano())
		s.beating.Unlock() // before the answer: the caller's next heartbeat may follow at once
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("store: heartbeat: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("store: heartbeat: no commit before the deadline: %w", ctx.Err())
	}
}
