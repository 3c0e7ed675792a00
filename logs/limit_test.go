package logs

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRateLimit runs a burst past the bucket with the clock stopped: the
// lines past BurstBytes are dropped, then one notice with the exact count
// comes before the first line accepted once the clock has moved.
func TestRateLimit(t *testing.T) {
	clk := newClock()
	// Each line costs 100 bytes: 99 of text and its newline.
	s := openStore(t, Config{Clock: clk.Now, RateBytes: 1024, BurstBytes: 1000})
	line := func(i int) string { return fmt.Sprintf("%02d%s\n", i, strings.Repeat(".", 97)) }
	w := s.Writer("fn", "inst", StreamStdout, "call")
	for i := range 15 {
		io.WriteString(w, line(i))
	}
	clk.Advance(time.Second) // 1024 bytes: ten more lines
	for i := 15; i < 30; i++ {
		io.WriteString(w, line(i))
	}
	w.Close()

	var want []string
	for i := range 10 {
		want = append(want, strings.TrimSuffix(line(i), "\n"))
	}
	want = append(want, "dropped 5 lines (500 bytes) of output: over the rate limit of 1 KiB/s")
	for i := 15; i < 25; i++ {
		want = append(want, strings.TrimSuffix(line(i), "\n"))
	}
	want = append(want, "dropped 5 lines (500 bytes) of output: over the rate limit of 1 KiB/s") // at Close
	lines := read(t, s, Query{Function: "fn"})
	if got := texts(lines); !slices.Equal(got, want) {
		t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	notice := lines[10]
	if notice.Stream != StreamNotice || notice.Instance != "inst" || notice.CallID != "call" || !notice.Time.Equal(clk.Now()) {
		t.Errorf("notice = %+v, want stream edgefaas, instance inst, call call, time %v", notice, clk.Now())
	}
}

// TestRateLimitPerFunction checks that a function's writers share its
// bucket, and that another function has a bucket of its own.
func TestRateLimitPerFunction(t *testing.T) {
	clk := newClock()
	s := openStore(t, Config{Clock: clk.Now, RateBytes: 1024, BurstBytes: 1000})
	text := strings.Repeat("o", 99) + "\n"
	out := s.Writer("noisy", "", StreamStdout, "")
	errw := s.Writer("noisy", "", StreamStderr, "")
	quiet := s.Writer("quiet", "", StreamStdout, "")
	io.WriteString(out, strings.Repeat(text, 10)) // the whole burst
	io.WriteString(errw, text)                    // dropped: the bucket is shared
	io.WriteString(quiet, strings.Repeat(text, 10))
	for _, w := range []io.Closer{out, errw, quiet} {
		w.Close()
	}
	tests := []struct {
		function string
		want     []string // streams
	}{
		{"noisy", append(slices.Repeat([]string{StreamStdout}, 10), StreamNotice)},
		{"quiet", slices.Repeat([]string{StreamStdout}, 10)},
	}
	for _, tt := range tests {
		t.Run(tt.function, func(t *testing.T) {
			var got []string
			for _, l := range read(t, s, Query{Function: tt.function}) {
				got = append(got, l.Stream)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("streams = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNoisyFunction feeds 100 MB of output to one function with the real
// clock while another function writes a few thousand lines: the noisy one
// stays within its budget, the quiet one loses nothing, and the dropped
// count adds up.
func TestNoisyFunction(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		total int
	}{
		{"default rate", Config{}, 100 << 20},
		// Everything accepted: the budget alone holds the disk, and every
		// line is encoded and written (about 40 MiB/s, 4 under -race).
		{"no rate limit", Config{RateBytes: 1 << 40, BurstBytes: 1 << 40}, 100 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total := tt.total
			if testing.Short() {
				total = 20 << 20
			}
			s := openStore(t, tt.cfg)
			var chunk strings.Builder
			for i := 0; chunk.Len() < 64<<10; i++ {
				fmt.Fprintf(&chunk, "noise %06d %s\n", i, strings.Repeat("z", 80))
			}
			perChunk := strings.Count(chunk.String(), "\n")

			start := make(chan struct{})
			var wg sync.WaitGroup
			var quietWant []string
			wg.Go(func() {
				w := s.Writer("quiet", "", StreamStdout, "")
				defer w.Close()
				<-start
				for i := range 3000 {
					line := fmt.Sprintf("quiet %d", i)
					quietWant = append(quietWant, line)
					io.WriteString(w, line+"\n")
				}
			})
			var elapsed time.Duration
			var lines int
			wg.Go(func() {
				w := s.Writer("noisy", "", StreamStdout, "")
				defer w.Close()
				<-start
				t0 := time.Now()
				for n := 0; n < total; n += chunk.Len() {
					io.WriteString(w, chunk.String())
					lines += perChunk
				}
				elapsed = time.Since(t0)
			})
			close(start)
			wg.Wait()
			t.Logf("%d MiB (%d lines) through one writer in %v: %.0f MiB/s", total>>20, lines, elapsed, float64(total>>20)/elapsed.Seconds())
			if elapsed > time.Minute {
				t.Errorf("writing 100 MB took %v", elapsed)
			}

			if got := texts(read(t, s, Query{Function: "quiet"})); !slices.Equal(got, quietWant) {
				t.Errorf("quiet function: %d lines stored, want all %d", len(got), len(quietWant))
			}
			noisy := read(t, s, Query{Function: "noisy"})
			if du := diskUsage(t, filepath.Join(s.cfg.Dir, "noisy")); du > s.cfg.BudgetBytes {
				t.Errorf("noisy function uses %d bytes, budget %d", du, s.cfg.BudgetBytes)
			}
			if tt.cfg.RateBytes == 0 {
				// The bucket lets through far less than the budget holds:
				// every line is either stored or counted in the notice.
				var stored, dropped int
				for _, l := range noisy {
					if l.Stream == StreamNotice {
						var n, b int
						fmt.Sscanf(l.Text, "dropped %d lines (%d bytes)", &n, &b)
						dropped += n
					} else {
						stored++
					}
				}
				t.Logf("noisy: %d lines stored, %d dropped", stored, dropped)
				if stored+dropped != lines {
					t.Errorf("%d lines stored + %d dropped, want %d written", stored, dropped, lines)
				}
			}
		})
	}
}
