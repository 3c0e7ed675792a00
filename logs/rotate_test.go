package logs

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
)

// TestRotation writes ten times the budget and checks, all along, that the
// function's files stay within it (a line of slack at most), and at the end
// that the lines kept are the newest ones, without a gap.
func TestRotation(t *testing.T) {
	const lineLen = 100
	tests := []struct {
		name         string
		budget, file int64
	}{
		{"four files", 16 << 10, 4 << 10},
		{"budget not a multiple of the file size", 10 << 10, 3 << 10},
		{"one file", 8 << 10, 8 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, Config{BudgetBytes: tt.budget, FileBytes: tt.file, RateBytes: 1 << 30, BurstBytes: 1 << 30})
			dir := filepath.Join(s.cfg.Dir, "fn")
			w := s.Writer("fn", "", StreamStdout, "")
			// A record is the text plus about 80 bytes of JSON.
			slack := int64(lineLen + 200)
			var written int64
			n := 0
			for ; written < 10*tt.budget; n++ {
				line := fmt.Sprintf("%08d %s\n", n, bytes.Repeat([]byte{'x'}, lineLen-10))
				w.Write([]byte(line))
				written += int64(len(line))
				if n%50 == 0 {
					read(t, s, Query{Function: "fn", Tail: 1}) // writes the buffer out
					if du := diskUsage(t, dir); du > tt.budget+slack {
						t.Fatalf("after %d lines, %d bytes on disk, budget %d", n, du, tt.budget)
					}
				}
			}
			w.Close()
			lines := read(t, s, Query{Function: "fn"})
			if du := diskUsage(t, dir); du > tt.budget+slack {
				t.Fatalf("%d bytes on disk, budget %d", du, tt.budget)
			}
			if min := int(tt.budget/(lineLen+100)) / 2; len(lines) < min {
				t.Errorf("kept %d lines, want at least %d", len(lines), min)
			}
			for i, l := range lines {
				got, _ := strconv.Atoi(l.Text[:8])
				if want := n - len(lines) + i; got != want {
					t.Fatalf("line %d of %d kept is %d, want %d: the newest lines, in order", i, len(lines), got, want)
				}
			}
		})
	}
}
