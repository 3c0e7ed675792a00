package logs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

func TestRead(t *testing.T) {
	clk := newClock()
	start := clk.Now()
	s := openStore(t, Config{Clock: clk.Now})
	// Second by second: i0 (instance), c1 (call 1), i2, c3 (call 3), i4.
	inst := s.Writer("fn", "inst", StreamStdout, "")
	call1 := s.Writer("fn", "inst", StreamStdout, "call-1")
	call3 := s.Writer("fn", "inst", StreamStderr, "call-3")
	for i, w := range []interface{ Write([]byte) (int, error) }{inst, call1, inst, call3, inst} {
		fmt.Fprintf(w, "%d\n", i)
		clk.Advance(time.Second)
	}
	for _, w := range []interface{ Close() error }{inst, call1, call3} {
		w.Close()
	}
	writeAll(t, s.Writer("other", "", StreamStdout, ""), "not fn\n")

	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"everything", Query{}, []string{"0", "1", "2", "3", "4"}},
		{"since", Query{Since: start.Add(2 * time.Second)}, []string{"2", "3", "4"}},
		{"since the future", Query{Since: start.Add(time.Hour)}, []string{}},
		{"call", Query{CallID: "call-3"}, []string{"3"}},
		{"unknown call", Query{CallID: "call-9"}, []string{}},
		{"tail", Query{Tail: 2}, []string{"3", "4"}},
		{"tail above count", Query{Tail: 10}, []string{"0", "1", "2", "3", "4"}},
		{"tail of since", Query{Since: start.Add(time.Second), Tail: 3}, []string{"2", "3", "4"}},
		{"tail of call", Query{CallID: "call-1", Tail: 1}, []string{"1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.Function = "fn"
			if got := texts(read(t, s, tt.q)); !slices.Equal(got, tt.want) {
				t.Fatalf("Read(%+v) = %q, want %q", tt.q, got, tt.want)
			}
		})
	}

	l := read(t, s, Query{Function: "fn", CallID: "call-3"})[0]
	want := Line{Time: start.Add(3 * time.Second), Function: "fn", Instance: "inst", CallID: "call-3", Stream: StreamStderr, Text: "3"}
	if !l.Time.Equal(want.Time) || l.Function != want.Function || l.Instance != want.Instance ||
		l.CallID != want.CallID || l.Stream != want.Stream || l.Text != want.Text {
		t.Errorf("line = %+v, want %+v", l, want)
	}
}

func TestReadNotFound(t *testing.T) {
	s := openStore(t, Config{})
	if _, err := s.Read(t.Context(), Query{Function: "nobody"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Read of an unknown function: %v, want ErrNotFound", err)
	}
	// A writer that wrote nothing leaves no logs either.
	s.Writer("quiet", "", StreamStdout, "").Close()
	if _, err := s.Read(t.Context(), Query{Function: "quiet"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Read of a function that wrote nothing: %v, want ErrNotFound", err)
	}
}

func TestRemove(t *testing.T) {
	s := openStore(t, Config{})
	w := s.Writer("fn", "", StreamStdout, "")
	fmt.Fprintln(w, "before")
	writeAll(t, s.Writer("other", "", StreamStdout, ""), "stays\n")

	if err := s.Remove("fn"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.cfg.Dir, "fn")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the function's directory is still there (stat: %v)", err)
	}
	if _, err := s.Read(t.Context(), Query{Function: "fn"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Read after Remove: %v, want ErrNotFound", err)
	}
	// The removed function's writer discards; a new one starts afresh.
	writeAll(t, w, "after remove\n")
	if _, err := s.Read(t.Context(), Query{Function: "fn"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Read after a write to the old writer: %v, want ErrNotFound", err)
	}
	writeAll(t, s.Writer("fn", "", StreamStdout, ""), "redeployed\n")
	if got := texts(read(t, s, Query{Function: "fn"})); !slices.Equal(got, []string{"redeployed"}) {
		t.Errorf("lines = %q, want [redeployed]", got)
	}
	if got := texts(read(t, s, Query{Function: "other"})); !slices.Equal(got, []string{"stays"}) {
		t.Errorf("other function's lines = %q, want [stays]", got)
	}
	if err := s.Remove("never-logged"); err != nil {
		t.Errorf("Remove of a function without logs: %v, want nil", err)
	}
}

// TestReopen closes a store with a writer still open and a follower
// running, checks that nothing is left running, and reads everything back
// from a new store on the same directory, whose sequence goes on.
func TestReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	checkLeaks(t)
	s, err := Open(Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	w := s.Writer("fn", "", StreamStdout, "")
	fmt.Fprint(w, "one\ntwo\nunterminated")
	followed := make(chan error, 1)
	go func() { followed <- s.Follow(t.Context(), Query{Function: "fn"}, func(Line) error { return nil }) }()

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-followed:
		if !errors.Is(err, errdefs.ErrUnavailable) {
			t.Errorf("Follow after Close: %v, want ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return after Close")
	}
	fmt.Fprintln(w, "after close") // discarded, no panic
	writeAll(t, s.Writer("fn", "", StreamStdout, ""), "discarded\n")
	if _, err := s.Read(t.Context(), Query{Function: "fn"}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Read after Close: %v, want ErrUnavailable", err)
	}

	s = openStore(t, Config{Dir: dir})
	want := []string{"one", "two", "unterminated"}
	if got := texts(read(t, s, Query{Function: "fn"})); !slices.Equal(got, want) {
		t.Fatalf("lines after reopening = %q, want %q", got, want)
	}
	writeAll(t, s.Writer("fn", "", StreamStdout, ""), "three\n")
	read(t, s, Query{Function: "fn"}) // writes the buffer out
	if seqs := storedSeqs(t, filepath.Join(dir, "fn", currentName)); !slices.Equal(seqs, []uint64{1, 2, 3, 4}) {
		t.Errorf("sequence numbers across the reopening = %v, want [1 2 3 4]", seqs)
	}
}

// TestReopenAfterCrash opens files as a crash mid-rotation and mid-write
// leaves them: a gap in the rotated numbers and a torn last line.
func TestReopenAfterCrash(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	fn := filepath.Join(dir, "fn")
	if err := os.MkdirAll(fn, 0o700); err != nil {
		t.Fatal(err)
	}
	rec := func(seq uint64, text string) string {
		b, _ := json.Marshal(record{Line: Line{Function: "fn", Stream: StreamStdout, Text: text}, Seq: seq})
		return string(b) + "\n"
	}
	files := map[string]string{
		currentName + ".3": rec(1, "oldest"),
		currentName + ".1": rec(2, "older"),
		currentName:        rec(3, "newest") + `{"time":"2025-`,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(fn, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := openStore(t, Config{Dir: dir})
	writeAll(t, s.Writer("fn", "", StreamStdout, ""), "after\n")
	want := []string{"oldest", "older", "newest", "after"}
	if got := texts(read(t, s, Query{Function: "fn"})); !slices.Equal(got, want) {
		t.Fatalf("lines = %q, want %q", got, want)
	}
	if seqs := storedSeqs(t, filepath.Join(fn, currentName)); !slices.Equal(seqs, []uint64{3, 4}) {
		t.Errorf("current.log sequence numbers = %v, want [3 4]", seqs)
	}
	for _, name := range []string{currentName + ".1", currentName + ".2"} {
		if _, err := os.Stat(filepath.Join(fn, name)); err != nil {
			t.Errorf("rotated files not renumbered: %v", err)
		}
	}
}

// storedSeqs reads the sequence numbers of a log file, failing on any line
// that is not a record.
func storedSeqs(t *testing.T, path string) []uint64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, b := range bytes.SplitAfter(data, []byte("\n")) {
		if len(b) == 0 {
			continue
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: line %q: %v", path, b, err)
		}
		seqs = append(seqs, r.Seq)
	}
	return seqs
}
