package logs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/errdefs"
)

func TestWriterLines(t *testing.T) {
	const max = 8
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"one line per write", []string{"a\n", "b\n"}, []string{"a", "b"}},
		{"many lines in one write", []string{"a\nb\nc\n"}, []string{"a", "b", "c"}},
		{"line across writes", []string{"he", "llo\nwor", "ld\n"}, []string{"hello", "world"}},
		{"empty lines", []string{"\n\n"}, []string{"", ""}},
		{"crlf", []string{"a\r\nb\r", "\n"}, []string{"a", "b"}},
		{"lone cr kept", []string{"a\rb\n"}, []string{"a\rb"}},
		{"unterminated last line flushed at close", []string{"a\nb"}, []string{"a", "b"}},
		{"nothing after the last newline", []string{"a\n"}, []string{"a"}},
		{"exactly max", []string{"12345678\n"}, []string{"12345678"}},
		{"exactly max with crlf", []string{"12345678\r\n"}, []string{"12345678"}},
		{"one byte too long", []string{"123456789\n"}, []string{"12345678" + TruncatedMarker}},
		{"too long cut and marked", []string{strings.Repeat("x", 100) + "\nok\n"}, []string{"xxxxxxxx" + TruncatedMarker, "ok"}},
		{"too long across writes", []string{"xxxxx", "xxxxx", "yy\nz\n"}, []string{"xxxxxxxx" + TruncatedMarker, "z"}},
		{"too long unterminated at close", []string{strings.Repeat("x", 20)}, []string{"xxxxxxxx" + TruncatedMarker}},
		{"cut at a rune boundary", []string{"aéééé\n"}, []string{"aééé" + TruncatedMarker}},
		{"invalid utf-8 replaced", []string{"a\xffb\n"}, []string{"a\uFFFDb"}},
		// Found by FuzzWriter: the cut line is no longer than max once its
		// invalid bytes are replaced.
		{"cut line shortened by the replacement", []string{"00000\xd7\xd7\xd7\xd70\n"}, []string{"00000\uFFFD" + TruncatedMarker}},
		{"rune split across writes", []string{"\xc3", "\xa9\n"}, []string{"é"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, Config{MaxLine: max})
			writeAll(t, s.Writer("fn", "inst-1", StreamStderr, "call-1"), tt.writes...)
			lines := read(t, s, Query{Function: "fn"})
			if got := texts(lines); !slices.Equal(got, tt.want) {
				t.Fatalf("lines = %q, want %q", got, tt.want)
			}
			for _, l := range lines {
				if l.Function != "fn" || l.Instance != "inst-1" || l.Stream != StreamStderr || l.CallID != "call-1" {
					t.Errorf("line %+v: want function fn, instance inst-1, stream stderr, call call-1", l)
				}
			}
		})
	}
}

func TestWriteAfterClose(t *testing.T) {
	s := openStore(t, Config{})
	w := s.Writer("fn", "", StreamStdout, "")
	writeAll(t, w, "kept\n")
	if n, err := w.Write([]byte("lost\n")); n != 5 || err != nil {
		t.Fatalf("Write after Close = %d, %v; want 5, nil", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := texts(read(t, s, Query{Function: "fn"})); !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("lines = %q, want [kept]", got)
	}
}

func TestInvalidNames(t *testing.T) {
	names := []string{"", "A", "fn.1", ".", "..", "../x", "a/b", "/abs", "a_b", "-a", "a-", "a\x00", "é", strings.Repeat("a", 64)}
	s := openStore(t, Config{})
	ctx := t.Context()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Read(ctx, Query{Function: name}); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Read: %v, want ErrInvalid", err)
			}
			if err := s.Follow(ctx, Query{Function: name}, func(Line) error { return nil }); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Follow: %v, want ErrInvalid", err)
			}
			if err := s.Remove(name); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Remove: %v, want ErrInvalid", err)
			}
			// Writer cannot fail: it discards.
			writeAll(t, s.Writer(name, "", StreamStdout, ""), "x\n")
		})
	}
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("%s holds %v, want nothing", s.cfg.Dir, entries)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.cfg.Dir), "x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file escaped the log directory (stat: %v)", err)
	}
}

func TestOpenConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		cfg     Config
		wantErr error
		check   func(Config) bool
	}{
		{"defaults", Config{Dir: dir}, nil, func(c Config) bool {
			return c.BudgetBytes == 4<<20 && c.FileBytes == 1<<20 && c.RateBytes == 64<<10 && c.BurstBytes == 256<<10 && c.MaxLine == 4096
		}},
		{"file size follows a small budget", Config{Dir: dir, BudgetBytes: 100 << 10}, nil, func(c Config) bool {
			return c.FileBytes == 100<<10
		}},
		{"no directory", Config{}, errdefs.ErrInvalid, nil},
		{"negative", Config{Dir: dir, RateBytes: -1}, errdefs.ErrInvalid, nil},
		{"file above budget", Config{Dir: dir, BudgetBytes: 10, FileBytes: 20}, errdefs.ErrInvalid, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.withDefaults()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("withDefaults: %v, want %v", err, tt.wantErr)
			}
			if tt.check != nil && !tt.check(got) {
				t.Errorf("withDefaults = %+v", got)
			}
		})
	}
}
