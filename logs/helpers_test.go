package logs

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// openStore opens a store in a new temporary directory (unless cfg.Dir is
// set), closes it when the test ends, and then checks that none of the
// package's goroutines is left.
func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "logs")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	checkLeaks(t)
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// checkLeaks fails the test if, once its other cleanups have run, a
// goroutine is still running code of this package (test files aside).
// Tests here do not run in parallel, so any such goroutine is the test's.
func checkLeaks(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		var left []string
		deadline := time.Now().Add(5 * time.Second)
		for {
			if left = packageGoroutines(); len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("goroutines left after Close:\n%s", strings.Join(left, "\n\n"))
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func packageGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, l := range strings.Split(g, "\n") {
			l = strings.TrimSpace(l)
			if strings.Contains(l, "/logs/") && strings.Contains(l, ".go:") && !strings.Contains(l, "_test.go:") {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(delay)
	}
}

// clock is a clock the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// writeAll writes each chunk through one writer, checking that Write
// takes all of it, and closes the writer.
func writeAll(t testing.TB, w io.WriteCloser, chunks ...string) {
	t.Helper()
	for _, c := range chunks {
		if n, err := io.WriteString(w, c); n != len(c) || err != nil {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", c, n, err, len(c))
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func read(t testing.TB, s *Store, q Query) []Line {
	t.Helper()
	lines, err := s.Read(context.Background(), q)
	if err != nil {
		t.Fatalf("Read(%+v): %v", q, err)
	}
	return lines
}

func texts(lines []Line) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Text
	}
	return out
}

// diskUsage is the total size of the files in dir.
func diskUsage(t testing.TB, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	return total
}

// collector gathers what a follower is given.
type collector struct {
	mu    sync.Mutex
	lines []Line
}

func (c *collector) add(l Line) error {
	c.mu.Lock()
	c.lines = append(c.lines, l)
	c.mu.Unlock()
	return nil
}

func (c *collector) get() []Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Line(nil), c.lines...)
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}
