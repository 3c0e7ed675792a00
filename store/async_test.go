package store

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"errors"
	"github.com/edgefaas/edgefaas/errdefs"
)

func TestAsyncQueueLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	for _, id := range []string{"c1", "c2", "c3"} {
		c := AsyncCall{CallID: id, Function: "f", Method: "POST", Path: "/", Header: http.Header{"A": {"b"}},
			Body: []byte("body-" + id), CallbackURL: "http://cb", Created: t0}
		if err := db.EnqueueAsync(t.Context(), c, 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.EnqueueAsync(t.Context(), AsyncCall{CallID: "c4", Function: "f"}, 3); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("enqueue past the limit: %v, want ErrUnavailable", err)
	}
	due, err := db.DueAsync(t.Context(), t0, 10, nil)
	if err != nil || len(due) != 3 || due[0].CallID != "c1" || string(due[2].Body) != "body-c3" || due[0].Header.Get("A") != "b" {
		t.Fatalf("due: %+v %v", due, err)
	}
	// c1 ran: its result waits for delivery; c2 is retried later; c3 is
	// being worked on (skipped).
	if err := db.AsyncResult(t.Context(), due[0].Seq, 201, "ok", http.Header{"X": {"y"}}, []byte("out")); err != nil {
		t.Fatal(err)
	}
	if err := db.RetryAsync(t.Context(), due[1].Seq, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Closed and reopened: the queue is on disk.
	db.Close()
	if db, err = Open(t.Context(), path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	due, err = db.DueAsync(t.Context(), t0, 10, map[int64]bool{3: true})
	if err != nil || len(due) != 1 {
		t.Fatalf("due after reopen: %+v %v", due, err)
	}
	if c := due[0]; c.CallID != "c1" || !c.Delivering || c.ResultCode != 201 || string(c.ResultBody) != "out" || c.ResultHeader.Get("X") != "y" {
		t.Fatalf("delivering call: %+v", c)
	}
	due, _ = db.DueAsync(t.Context(), t0.Add(time.Minute), 10, nil)
	if len(due) != 3 || due[1].Attempts != 1 {
		t.Fatalf("after the retry time: %+v", due)
	}
	if err := db.DoneAsync(t.Context(), due[0].Seq); err != nil {
		t.Fatal(err)
	}
	if due, _ = db.DueAsync(t.Context(), t0.Add(time.Minute), 10, nil); len(due) != 2 {
		t.Fatalf("after done: %d calls, want 2", len(due))
	}
}
