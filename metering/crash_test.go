package metering

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/store"
)

// crashEnv names the database a re-executed test binary records into, as
// the helper process of TestCrashKeepsAnsweredRecords.
const crashEnv = "METERING_CRASH_HELPER_DB"

// TestCrashKeepsAnsweredRecords runs the ledger in a child process, kills it
// with SIGKILL while eight callers are recording, and checks that every seq
// the child got back from Record (so would have answered) is in the
// database, and that the stored seqs run from 1 without a gap: a commit is
// whole or absent.
func TestCrashKeepsAnsweredRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edgefaas.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 2000
	answered := map[int64]bool{}
	rd := bufio.NewReader(out)
	for {
		line, err := rd.ReadString('\n')
		if errors.Is(err, io.EOF) {
			break // a last line without its newline was cut by the kill
		}
		if err != nil {
			t.Fatal(err)
		}
		s, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "seq ")
		if !ok {
			continue // the test framework's own output
		}
		seq, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", line)
		}
		answered[seq] = true
		if len(answered) == killAfter {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	if len(answered) < killAfter {
		t.Fatalf("child answered %d records, then exited (%v) before the kill:\n%s", len(answered), err, stderr.String())
	}
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child exit = %v, want killed", err)
	}

	db, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stored := rawSeqs(t, db)
	for i, s := range stored {
		if s != int64(i+1) {
			t.Fatalf("stored seqs not contiguous from 1: position %d holds %d", i, s)
		}
	}
	have := map[int64]bool{}
	for _, s := range stored {
		have[s] = true
	}
	var lost []int64
	for s := range answered {
		if !have[s] {
			lost = append(lost, s)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d answered records lost by kill -9, e.g. %v", len(lost), head(lost))
	}
	t.Logf("%d records answered before the kill, %d stored (the rest were committed, not yet printed)", len(answered), len(stored))
}

// TestCrashHelperProcess is the child of TestCrashKeepsAnsweredRecords: it
// records until it is killed, printing each seq as soon as Record returns.
func TestCrashHelperProcess(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("the child process of TestCrashKeepsAnsweredRecords")
	}
	ctx := context.Background()
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(db, Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Bounded, in case the parent dies before it kills this process.
	deadline := time.Now().Add(time.Minute)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				seq, err := l.Record(ctx, record(fmt.Sprint("f", w), time.Now(), time.Duration(i)*time.Millisecond))
				if err != nil {
					t.Error(err)
					return
				}
				// One write per line, so lines of different callers do not
				// interleave; os.Stdout is not buffered.
				mu.Lock()
				fmt.Fprintf(os.Stdout, "seq %d\n", seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Error("not killed within a minute")
}
