package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

func TestHeartbeatKeepsOneRow(t *testing.T) {
	db, _ := openTest(t)
	advance := fakeClock(db)
	for i := range 3 {
		if err := db.Heartbeat(t.Context()); err != nil {
			t.Fatalf("heartbeat %d: %v", i, err)
		}
		var rows int
		var beat int64
		if err := db.SQL().QueryRowContext(t.Context(), "SELECT COUNT(*), MAX(beat_ns) FROM heartbeat").Scan(&rows, &beat); err != nil {
			t.Fatal(err)
		}
		if want := db.now().UnixNano(); rows != 1 || beat != want {
			t.Errorf("after heartbeat %d: %d rows, beat %d; want 1 row, beat %d", i, rows, beat, want)
		}
		advance(time.Second)
	}
}

// TestHeartbeatFailsWhileLocked holds the write lock from a second
// connection, as a stuck writer would: the heartbeat must fail within its
// context's deadline instead of reporting a store that cannot take writes
// as healthy.
func TestHeartbeatFailsWhileLocked(t *testing.T) {
	db, path := openTest(t)
	other, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.SQL().BeginTx(t.Context(), nil) // _txlock=immediate: holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after the Rollback below
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := db.Heartbeat(ctx); err == nil {
		t.Fatal("heartbeat succeeded while another connection held the write lock")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("heartbeat took %s to fail; want about its 200ms deadline", d)
	}
	// The first write still waits for the lock: the next one fails at once
	// instead of stacking another waiter.
	if err := db.Heartbeat(t.Context()); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("heartbeat while the previous one waits = %v, want ErrUnavailable", err)
	}
	// Once the lock is released the waiting write commits and heartbeats
	// work again.
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(busyTimeout + time.Second)
	for {
		err := db.Heartbeat(t.Context())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("heartbeat after the lock was released: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
