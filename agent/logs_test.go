package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// logRecord is one JSON record as slog.JSONHandler writes it.
type logRecord struct {
	Msg      string `json:"msg"`
	Function string `json:"function"`
	Stream   string `json:"stream"`
	CallID   string `json:"call_id"`
	Line     string `json:"line"`
}

// jsonLogger returns a real slog logger writing JSON records to a buffer,
// and a function that decodes what has been written so far.
func jsonLogger(t *testing.T) (*slog.Logger, func() []logRecord) {
	t.Helper()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	return log, func() []logRecord {
		t.Helper()
		var recs []logRecord
		dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
		for dec.More() {
			var r logRecord
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("log output is not JSON records: %v\n%s", err, buf.Bytes())
			}
			recs = append(recs, r)
		}
		return recs
	}
}

func lines(recs []logRecord) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.Line)
	}
	return out
}

func TestLineWriter(t *testing.T) {
	long := strings.Repeat("a", maxLine) + strings.Repeat("b", 100)
	tests := []struct {
		name   string
		writes []string
		flush  bool
		want   []string
	}{
		{name: "one line", writes: []string{"hello\n"}, want: []string{"hello"}},
		{name: "two lines in one write", writes: []string{"one\ntwo\n"}, want: []string{"one", "two"}},
		{name: "line split across writes", writes: []string{"hel", "lo wor", "ld\n"}, want: []string{"hello world"}},
		{name: "newline alone ends the pending line", writes: []string{"abc", "\n", "def\n"}, want: []string{"abc", "def"}},
		{name: "empty lines are records too", writes: []string{"\n\nx\n"}, want: []string{"", "", "x"}},
		{name: "unterminated line waits", writes: []string{"done\npartial"}, want: []string{"done"}},
		{name: "flush logs the unterminated line", writes: []string{"done\npartial"}, flush: true, want: []string{"done", "partial"}},
		{name: "flush with nothing pending logs nothing", writes: []string{"done\n"}, flush: true, want: []string{"done"}},
		{name: "flush of nothing", flush: true, want: []string{}},
		{name: "line at exactly maxLine", writes: []string{long[:maxLine] + "\n"}, want: []string{long[:maxLine]}},
		{name: "line longer than maxLine is capped", writes: []string{long + "\nnext\n"}, want: []string{long[:maxLine], "next"}},
		{
			name:   "long line capped across many writes",
			writes: []string{long[:1000], long[1000:3000], long[3000:4095], long[4095:4097], long[4097:], "\n"},
			want:   []string{long[:maxLine]},
		},
		{name: "capped unterminated line on flush", writes: []string{long}, flush: true, want: []string{long[:maxLine]}},
		{name: "carriage return kept", writes: []string{"dos\r\n"}, want: []string{"dos\r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, records := jsonLogger(t)
			lw := newLineLogger(log.With("function", "fn")).stream("stdout")
			for _, w := range tt.writes {
				n, err := lw.Write([]byte(w))
				if n != len(w) || err != nil {
					t.Fatalf("Write(%d bytes) = %d, %v; want %d, nil", len(w), n, err, len(w))
				}
			}
			if tt.flush {
				lw.flush()
			}
			recs := records()
			if got := lines(recs); !slices.Equal(got, tt.want) {
				t.Fatalf("logged lines\n got  %q\n want %q", abbrev(got), abbrev(tt.want))
			}
			for i, r := range recs {
				if r.Msg != "function output" || r.Function != "fn" || r.Stream != "stdout" {
					t.Errorf("record %d: msg %q function %q stream %q; want %q, %q, %q",
						i, r.Msg, r.Function, r.Stream, "function output", "fn", "stdout")
				}
			}
		})
	}
}

// abbrev shortens long lines for failure messages.
func abbrev(ls []string) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		if len(l) > 40 {
			l = fmt.Sprintf("%s...%s (%d bytes)", l[:20], l[len(l)-10:], len(l))
		}
		out[i] = l
	}
	return out
}

// TestLineLoggerFlush checks that the instance's flush reaches every stream
// it handed out, and that per-call streams carry their attributes.
func TestLineLoggerFlush(t *testing.T) {
	log, records := jsonLogger(t)
	ll := newLineLogger(log.With("function", "fn"))
	out, errw := ll.stream("stdout"), ll.stream("stderr")
	call := ll.callStream("stdout", "call_id", "c1")
	_, _ = out.Write([]byte("o"))
	_, _ = errw.Write([]byte("e"))
	_, _ = call.Write([]byte("c\n"))
	ll.flush()
	ll.flush() // a second flush has nothing left to log

	got := records()
	want := []logRecord{
		{Msg: "function output", Function: "fn", Stream: "stdout", CallID: "c1", Line: "c"},
		{Msg: "function output", Function: "fn", Stream: "stdout", Line: "o"},
		{Msg: "function output", Function: "fn", Stream: "stderr", Line: "e"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("records\n got  %+v\n want %+v", got, want)
	}
}
