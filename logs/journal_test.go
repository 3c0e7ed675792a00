package logs

import (
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

func TestJournalEntry(t *testing.T) {
	tests := []struct {
		name     string
		line     Line
		wantPri  journal.Priority
		wantVars map[string]string
	}{
		{"stdout of an instance", Line{Function: "fn", Instance: "i1", Stream: StreamStdout, Text: "hi"},
			journal.PriInfo, map[string]string{"FUNCTION": "fn", "INSTANCE": "i1", "STREAM": "stdout"}},
		{"stderr of a call", Line{Function: "fn", Instance: "i1", CallID: "c1", Stream: StreamStderr, Text: "hi"},
			journal.PriWarning, map[string]string{"FUNCTION": "fn", "INSTANCE": "i1", "CALL_ID": "c1", "STREAM": "stderr"}},
		{"notice", Line{Function: "fn", Stream: StreamNotice, Text: "hi"},
			journal.PriWarning, map[string]string{"FUNCTION": "fn", "STREAM": "edgefaas"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, pri, vars := journalEntry(tt.line)
			if msg != tt.line.Text || pri != tt.wantPri || !maps.Equal(vars, tt.wantVars) {
				t.Errorf("journalEntry = %q, %v, %v; want %q, %v, %v", msg, pri, vars, tt.line.Text, tt.wantPri, tt.wantVars)
			}
		})
	}
}

// TestJournalUnavailable checks that Journal set without a journald costs
// nothing but the copy: the lines are in the files.
func TestJournalUnavailable(t *testing.T) {
	if journal.Enabled() {
		t.Skip("journald is running here: TestJournal covers this host")
	}
	s := openStore(t, Config{Journal: true})
	writeAll(t, s.Writer("fn", "", StreamStdout, ""), "a\nb\n")
	if got := texts(read(t, s, Query{Function: "fn"})); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("lines = %q, want [a b]", got)
	}
}

// TestJournal sends lines to the host's journald and finds them with
// journalctl by their FUNCTION field.
func TestJournal(t *testing.T) {
	if !journal.Enabled() {
		t.Skip("no journald here (no /run/systemd/journal/socket): nothing to send to")
	}
	journalctl, err := exec.LookPath("journalctl")
	if err != nil {
		t.Skip("no journalctl to read the journal back")
	}
	name := fmt.Sprintf("logs-test-%d", time.Now().UnixNano())
	s := openStore(t, Config{Journal: true})
	writeAll(t, s.Writer(name, "i1", StreamStderr, "c1"), "to the journal\n")
	var out []byte
	waitFor(t, 10*time.Second, "the line in the journal", func() bool {
		out, _ = exec.Command(journalctl, "FUNCTION="+name, "-o", "verbose", "--no-pager").Output()
		return strings.Contains(string(out), "MESSAGE=to the journal")
	})
	for _, want := range []string{"PRIORITY=4", "INSTANCE=i1", "CALL_ID=c1", "STREAM=stderr"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("journal entry lacks %s:\n%s", want, out)
		}
	}
}

// TestJournalQueueFull checks that queuing for a journald that does not
// read never waits: the lines past the queue are counted, not sent.
func TestJournalQueueFull(t *testing.T) {
	j := &journalSender{ch: make(chan Line, journalQueue)} // no goroutine reads it
	for range journalQueue + 10 {
		j.send(Line{Function: "fn", Text: "x"})
	}
	if got := j.dropped.Load(); got != 10 {
		t.Errorf("dropped = %d, want 10", got)
	}
}
