package logs

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzWriter feeds arbitrary bytes, in writes of arbitrary size, through a
// Writer and reads them back: nothing panics, every stored line is valid
// UTF-8 and a valid record whose text is at most MaxLine plus the marker,
// and well-behaved input (valid UTF-8, no '\r', short lines) comes back
// exactly.
//
//	go test -run XXX -fuzz FuzzWriter -fuzztime 20s ./logs/
func FuzzWriter(f *testing.F) {
	const max = 16
	f.Add([]byte("hello\nworld\n"), uint8(3))
	f.Add([]byte("a\r\nb\rc\n\n\nunterminated"), uint8(1))
	f.Add([]byte(strings.Repeat("x", 40)+"\n"+strings.Repeat("é", 20)), uint8(7))
	f.Add([]byte("\xff\xfe\x00\x1b[31m<html>&\"\\\n"), uint8(0))
	f.Add([]byte("\xe2\x82"), uint8(255))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		dir := t.TempDir()
		s, err := Open(Config{Dir: dir, MaxLine: max, RateBytes: 1 << 30, BurstBytes: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		w := s.Writer("fn", "i", StreamStdout, "")
		for p := data; len(p) > 0; {
			n := min(len(p), int(chunk)+1)
			if k, err := w.Write(p[:n]); k != n || err != nil {
				t.Fatalf("Write = %d, %v; want %d, nil", k, err, n)
			}
			p = p[n:]
		}
		w.Close()
		lines, err := s.Read(t.Context(), Query{Function: "fn"})
		if len(data) == 0 {
			return // nothing written, nothing to read (ErrNotFound)
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}

		raw, err := os.ReadFile(filepath.Join(dir, "fn", currentName))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bytes.SplitAfter(raw, []byte("\n")) {
			if len(b) == 0 {
				continue
			}
			var r record
			if !utf8.Valid(b) || json.Unmarshal(b, &r) != nil {
				t.Fatalf("stored line %q is not UTF-8 JSON", b)
			}
			if len(r.Text) > max+len(TruncatedMarker) || strings.Contains(r.Text, "\n") {
				t.Fatalf("stored text %q: longer than %d or holds a newline", r.Text, max+len(TruncatedMarker))
			}
		}

		want := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if utf8.Valid(data) && !bytes.Contains(data, []byte("\r")) &&
			!slices.ContainsFunc(want, func(l string) bool { return len(l) > max }) {
			if got := texts(lines); !slices.Equal(got, want) {
				t.Fatalf("lines = %q, want %q", got, want)
			}
		}
	})
}
