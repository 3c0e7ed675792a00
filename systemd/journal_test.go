package systemd

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// entry is one journal entry as the fake journal received it.
type entry struct {
	msg    string
	pri    journal.Priority
	fields map[string]string
}

// fakeJournal stands in for journald, a remote party that does not run
// here (systemd is not PID 1 on this machine or in CI). It records what
// the handler sends, or refuses everything.
type fakeJournal struct {
	entries []entry
	refuse  bool
}

func (f *fakeJournal) Send(msg string, pri journal.Priority, fields map[string]string) error {
	if f.refuse {
		return errors.New("journald: connection refused")
	}
	f.entries = append(f.entries, entry{msg, pri, fields})
	return nil
}

type lazyValue string

func (v lazyValue) LogValue() slog.Value { return slog.StringValue("resolved " + string(v)) }

func TestJournalHandlerFields(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 5, time.UTC)
	tests := []struct {
		name    string
		log     func(*slog.Logger)
		wantMsg string
		wantPri journal.Priority
		want    map[string]string // fields besides SYSLOG_IDENTIFIER
	}{
		{name: "info with attributes", log: func(l *slog.Logger) { l.Info("deployed", "function", "resize", "version", 3) },
			wantMsg: "deployed", wantPri: journal.PriInfo, want: map[string]string{"FUNCTION": "resize", "VERSION": "3"}},
		{name: "debug", log: func(l *slog.Logger) { l.Debug("d") }, wantMsg: "d", wantPri: journal.PriDebug, want: map[string]string{}},
		{name: "warn", log: func(l *slog.Logger) { l.Warn("w") }, wantMsg: "w", wantPri: journal.PriWarning, want: map[string]string{}},
		{name: "error", log: func(l *slog.Logger) { l.Error("e", "err", errors.New("disk full")) },
			wantMsg: "e", wantPri: journal.PriErr, want: map[string]string{"ERR": "disk full"}},
		{name: "between levels", log: func(l *slog.Logger) { l.Log(t.Context(), slog.LevelWarn+2, "x") },
			wantMsg: "x", wantPri: journal.PriWarning, want: map[string]string{}},
		{name: "above error", log: func(l *slog.Logger) { l.Log(t.Context(), slog.LevelError+4, "x") },
			wantMsg: "x", wantPri: journal.PriErr, want: map[string]string{}},
		{name: "invalid characters", log: func(l *slog.Logger) { l.Info("m", "call-id", "c1", "state.dir", "/s", "ünï", "u", "with space", "w") },
			wantMsg: "m", wantPri: journal.PriInfo, want: map[string]string{"CALL_ID": "c1", "STATE_DIR": "/s", "SLOG_N_": "u", "WITH_SPACE": "w"}},
		{name: "names journald keeps or refuses", log: func(l *slog.Logger) {
			l.Info("m", "_pid", "1", "9lives", "cat", "message", "mine", "priority", "high", "_", "x")
		}, wantMsg: "m", wantPri: journal.PriInfo, want: map[string]string{"SLOG_PID": "1", "SLOG_9LIVES": "cat",
			"SLOG_MESSAGE": "mine", "SLOG_PRIORITY": "high", "SLOG": "x"}},
		{name: "long name", log: func(l *slog.Logger) { l.Info("m", strings.Repeat("a", 70), "v") },
			wantMsg: "m", wantPri: journal.PriInfo, want: map[string]string{strings.Repeat("A", 64): "v"}},
		{name: "groups", log: func(l *slog.Logger) {
			l.WithGroup("req").Info("m", "id", "7", slog.Group("peer", "addr", "10.0.0.1"))
		}, wantMsg: "m", wantPri: journal.PriInfo, want: map[string]string{"REQ_ID": "7", "REQ_PEER_ADDR": "10.0.0.1"}},
		{name: "with attrs", log: func(l *slog.Logger) {
			l.With("function", "f").WithGroup("g").With("a", 1).Info("m", "b", 2)
		}, wantMsg: "m", wantPri: journal.PriInfo, want: map[string]string{"FUNCTION": "f", "G_A": "1", "G_B": "2"}},
		{name: "values", log: func(l *slog.Logger) {
			l.Info("m", "at", at, "took", 1500*time.Millisecond, "lazy", lazyValue("v"), "ok", true, "", "dropped",
				slog.Group("", "inlined", "i"), slog.Group("empty"))
		}, wantMsg: "m", wantPri: journal.PriInfo, want: map[string]string{"AT": "2026-11-27T10:00:00.000000005Z",
			"TOOK": "1.5s", "LAZY": "resolved v", "OK": "true", "INLINED": "i"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &fakeJournal{}
			tt.log(slog.New(newJournalHandler(j, slog.LevelDebug, "edgefaasd", slog.DiscardHandler)))
			if len(j.entries) != 1 {
				t.Fatalf("%d entries sent, want 1", len(j.entries))
			}
			e := j.entries[0]
			if e.msg != tt.wantMsg || e.pri != tt.wantPri {
				t.Errorf("message %q priority %d, want %q %d", e.msg, e.pri, tt.wantMsg, tt.wantPri)
			}
			want := map[string]string{"SYSLOG_IDENTIFIER": "edgefaasd"}
			for k, v := range tt.want {
				want[k] = v
			}
			if fmt.Sprint(e.fields) != fmt.Sprint(want) {
				t.Errorf("fields %v\nwant   %v", e.fields, want)
			}
		})
	}
}

func TestJournalHandlerLevel(t *testing.T) {
	j := &fakeJournal{}
	l := slog.New(newJournalHandler(j, slog.LevelInfo, "edgefaasd", slog.DiscardHandler))
	l.Debug("hidden")
	l.Info("shown")
	if len(j.entries) != 1 || j.entries[0].msg != "shown" {
		t.Errorf("entries %v, want only the info one", j.entries)
	}
}

// TestJournalHandlerFallback: an entry journald refuses is not lost; it
// goes to stderr's handler, with the same attributes.
func TestJournalHandlerFallback(t *testing.T) {
	var buf bytes.Buffer
	text := slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	l := slog.New(newJournalHandler(&fakeJournal{refuse: true}, slog.LevelInfo, "edgefaasd", text))
	l.With("function", "f").WithGroup("g").Warn("lost?", "n", 1)
	if want := "level=WARN msg=lost? function=f g.n=1\n"; buf.String() != want {
		t.Errorf("fallback wrote %q, want %q", buf.String(), want)
	}
}

func TestNewLogger(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(os.Stderr.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	stream := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	tests := []struct {
		name        string
		stream      string
		wantJournal bool
	}{
		{name: "not under systemd", stream: ""},
		{name: "stderr is another stream", stream: "1:1"},
		{name: "stderr is the journal stream", stream: stream, wantJournal: journal.Enabled()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("JOURNAL_STREAM", tt.stream)
			_, isJournal := NewLogger(slog.LevelInfo).Handler().(*journalHandler)
			if isJournal != tt.wantJournal {
				t.Errorf("journal handler %v, want %v", isJournal, tt.wantJournal)
			}
		})
	}
	if !journal.Enabled() {
		t.Skip("journald is not running here (systemd is not PID 1): only the stderr fallback was checked")
	}
}
