package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// follow runs s.Follow in a goroutine into a collector; stop cancels it and
// returns what Follow returned.
func follow(t *testing.T, s *Store, q Query) (c *collector, stop func() error) {
	t.Helper()
	c = &collector{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Follow(ctx, q, c.add) }()
	return c, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("Follow did not return after its context was canceled")
			return nil
		}
	}
}

// TestFollowSwitchOver starts one follower before any line and another
// while lines are being written: both see every line once, in order.
func TestFollowSwitchOver(t *testing.T) {
	const n = 900 // fewer than followBuffer: no follower may lag enough to miss a line
	s := openStore(t, Config{})
	early, stopEarly := follow(t, s, Query{Function: "fn"})
	waitFor(t, 5*time.Second, "the early follower to subscribe", func() bool { return subscribers(s, "fn") == 1 })

	w := s.Writer("fn", "", StreamStdout, "")
	var late *collector
	var stopLate func() error
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			fmt.Fprintln(w, i)
		}
	})
	// Start the late follower while the writer goes on.
	waitFor(t, 5*time.Second, "some lines to be followed", func() bool { return early.len() >= n/3 })
	late, stopLate = follow(t, s, Query{Function: "fn"})
	wg.Wait()
	w.Close()

	want := make([]string, n)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	for _, f := range []struct {
		name string
		c    *collector
		stop func() error
	}{{"early", early, stopEarly}, {"late", late, stopLate}} {
		t.Run(f.name, func(t *testing.T) {
			waitFor(t, 5*time.Second, "every line", func() bool { return f.c.len() >= n })
			if err := f.stop(); !errors.Is(err, context.Canceled) {
				t.Errorf("Follow after cancel: %v, want context.Canceled", err)
			}
			if got := texts(f.c.get()); !slices.Equal(got, want) {
				t.Errorf("followed %d lines, want %d once each in order; first differences: %s", len(got), n, firstDiff(got, want))
			}
		})
	}
}

func subscribers(s *Store, name string) int {
	f, err := s.function(name, false)
	if err != nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("at %d got %q, want %q", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("got %d lines, want %d", len(got), len(want))
}

// TestFollowLive checks that a live line reaches a follower quickly (it
// does not wait for the files' flush), with Tail and CallID applied.
func TestFollowLive(t *testing.T) {
	s := openStore(t, Config{})
	writeAll(t, s.Writer("fn", "", StreamStdout, "c1"), "old 1\nold 2\nold 3\n")
	c, stop := follow(t, s, Query{Function: "fn", CallID: "c1", Tail: 2})
	waitFor(t, 5*time.Second, "the tail", func() bool { return c.len() == 2 })

	other := s.Writer("fn", "", StreamStdout, "c2")
	w := s.Writer("fn", "", StreamStdout, "c1")
	fmt.Fprintln(other, "other call")
	t0 := time.Now()
	fmt.Fprintln(w, "live")
	waitFor(t, 2*time.Second, "the live line", func() bool { return c.len() == 3 })
	t.Logf("live line followed after %v", time.Since(t0))
	other.Close()
	w.Close()
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Follow after cancel: %v, want context.Canceled", err)
	}
	if got, want := texts(c.get()), []string{"old 2", "old 3", "live"}; !slices.Equal(got, want) {
		t.Errorf("followed %q, want %q", got, want)
	}
}

// TestFollowSlow blocks a follower's callback while a function writes far
// more than the follower's buffer: the writer is not held up, and the
// follower is told how many lines it skipped.
func TestFollowSlow(t *testing.T) {
	const n = 3 * followBuffer
	s := openStore(t, Config{})
	release := make(chan struct{})
	var mu sync.Mutex
	var got []Line
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- s.Follow(ctx, Query{Function: "fn"}, func(l Line) error {
			<-release
			mu.Lock()
			got = append(got, l)
			mu.Unlock()
			return nil
		})
	}()
	waitFor(t, 5*time.Second, "the follower to subscribe", func() bool { return subscribers(s, "fn") == 1 })

	w := s.Writer("fn", "", StreamStdout, "")
	wrote := make(chan struct{})
	go func() {
		for i := range n {
			fmt.Fprintln(w, i)
		}
		close(wrote)
	}()
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer is blocked by a follower that does not read")
	}
	close(release)
	w.Close()
	// No line comes after the skipped ones: the notice comes all the same,
	// once the follower has caught up.
	waitFor(t, 5*time.Second, "the notice of the skipped lines", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0 && got[len(got)-1].Stream == StreamNotice
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Follow: %v, want context.Canceled", err)
	}

	var skipped, prev = 0, -1
	var seen int
	for _, l := range got {
		if l.Stream == StreamNotice {
			if _, err := fmt.Sscanf(l.Text, "follower fell behind: skipped %d lines", &skipped); err != nil {
				t.Fatalf("notice %q: %v", l.Text, err)
			}
			continue
		}
		i, _ := strconv.Atoi(l.Text)
		if i <= prev {
			t.Fatalf("line %d after %d: out of order or twice", i, prev)
		}
		prev = i
		seen++
	}
	t.Logf("slow follower: %d lines seen, %d skipped", seen, skipped)
	if skipped == 0 || seen+skipped != n {
		t.Errorf("%d lines seen + %d skipped, want %d, some skipped", seen, skipped, n)
	}
	if lines := read(t, s, Query{Function: "fn"}); len(lines) != n {
		t.Errorf("%d lines stored, want %d: the follower's lag costs the files nothing", len(lines), n)
	}
}

func TestFollowEnds(t *testing.T) {
	errStop := errors.New("enough")
	tests := []struct {
		name    string
		fn      func(Line) error
		end     func(s *Store)
		wantErr error
	}{
		{"callback error", func(Line) error { return errStop }, func(*Store) {}, errStop},
		{"function removed", func(Line) error { return nil }, func(s *Store) { s.Remove("fn") }, errdefs.ErrNotFound},
		{"store closed", func(Line) error { return nil }, func(s *Store) { s.Close() }, errdefs.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, Config{})
			done := make(chan error, 1)
			go func() { done <- s.Follow(t.Context(), Query{Function: "fn"}, tt.fn) }()
			waitFor(t, 5*time.Second, "the follower to subscribe", func() bool { return subscribers(s, "fn") == 1 })
			writeAll(t, s.Writer("fn", "", StreamStdout, ""), "a line\n")
			tt.end(s)
			select {
			case err := <-done:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Follow: %v, want %v", err, tt.wantErr)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Follow did not return")
			}
		})
	}
}

// TestFollowNotice checks that drop notices reach followers like any line.
func TestFollowNotice(t *testing.T) {
	clk := newClock()
	s := openStore(t, Config{Clock: clk.Now, BurstBytes: 10})
	c, stop := follow(t, s, Query{Function: "fn"})
	waitFor(t, 5*time.Second, "the follower to subscribe", func() bool { return subscribers(s, "fn") == 1 })
	w := s.Writer("fn", "", StreamStdout, "")
	io.WriteString(w, "123456789\nx\n")
	w.Close()
	waitFor(t, 5*time.Second, "two lines", func() bool { return c.len() == 2 })
	stop()
	got := c.get()
	if got[1].Stream != StreamNotice || !strings.HasPrefix(got[1].Text, "dropped 1 lines (2 bytes)") {
		t.Errorf("followed %+v, want the line then the drop notice", got)
	}
}
