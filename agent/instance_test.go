package agent

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestLimitedBufferWrite(t *testing.T) {
	tests := []struct {
		name         string
		max          int64
		writes       []string
		want         string
		wantOverflow bool
	}{
		{name: "nothing", max: 4, want: ""},
		{name: "below max", max: 4, writes: []string{"abc"}, want: "abc"},
		{name: "exactly max in one write", max: 4, writes: []string{"abcd"}, want: "abcd"},
		{name: "exactly max over writes", max: 4, writes: []string{"ab", "cd"}, want: "abcd"},
		{name: "one byte over in one write", max: 4, writes: []string{"abcde"}, want: "abcd", wantOverflow: true},
		{name: "one byte over in a second write", max: 4, writes: []string{"abcd", "e"}, want: "abcd", wantOverflow: true},
		{name: "write straddling the limit", max: 4, writes: []string{"abc", "def"}, want: "abcd", wantOverflow: true},
		{name: "empty write at the limit", max: 4, writes: []string{"abcd", ""}, want: "abcd"},
		{name: "zero max keeps nothing", max: 0, writes: []string{"a"}, want: "", wantOverflow: true},
		{name: "overflow sticks", max: 4, writes: []string{"abcdef", "", "g"}, want: "abcd", wantOverflow: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &limitedBuffer{max: tt.max}
			for _, w := range tt.writes {
				n, err := b.Write([]byte(w))
				// Claiming the whole write keeps io.Copy and the
				// function's pipe going; the overflow flag tells.
				if n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
				}
			}
			if got := string(b.Bytes()); got != tt.want || b.overflow != tt.wantOverflow {
				t.Errorf("got %q, overflow %v; want %q, overflow %v", got, b.overflow, tt.want, tt.wantOverflow)
			}
		})
	}
}

// TestLimitedBufferCopy is the regression test for a limitedBuffer that
// embedded bytes.Buffer: io.Copy then used the embedded ReadFrom and stored
// the whole stream, limit or not.
func TestLimitedBufferCopy(t *testing.T) {
	const max = 1000
	big := strings.Repeat("x", 3*max+17)
	tests := []struct {
		name         string
		src          func() io.Reader
		want         int
		wantOverflow bool
	}{
		// A plain reader: io.Copy would call dst.ReadFrom if there were one.
		{name: "plain reader larger than max", src: func() io.Reader { return iotest.HalfReader(strings.NewReader(big)) }, want: max, wantOverflow: true},
		{name: "one-byte reader larger than max", src: func() io.Reader { return iotest.OneByteReader(strings.NewReader(big)) }, want: max, wantOverflow: true},
		// A WriterTo source: io.Copy hands it the writer instead.
		{name: "bytes.Reader larger than max", src: func() io.Reader { return bytes.NewReader([]byte(big)) }, want: max, wantOverflow: true},
		{name: "plain reader of exactly max", src: func() io.Reader { return iotest.HalfReader(strings.NewReader(big[:max])) }, want: max},
		{name: "plain reader of max+1", src: func() io.Reader { return iotest.HalfReader(strings.NewReader(big[:max+1])) }, want: max, wantOverflow: true},
	}
	for _, tt := range tests {
		// Both ways in: io.Copy through Write (exec mode's stdout) and
		// readFrom (an http response body).
		for _, way := range []string{"io.Copy", "readFrom"} {
			t.Run(tt.name+" via "+way, func(t *testing.T) {
				b := &limitedBuffer{max: max}
				var err error
				if way == "io.Copy" {
					_, err = io.Copy(b, tt.src())
				} else {
					err = b.readFrom(tt.src())
				}
				if err != nil {
					t.Fatalf("%s: %v", way, err)
				}
				if got := len(b.Bytes()); got != tt.want || b.overflow != tt.wantOverflow {
					t.Errorf("kept %d bytes, overflow %v; want %d, overflow %v", got, b.overflow, tt.want, tt.wantOverflow)
				}
				if !bytes.Equal(b.Bytes(), []byte(big[:len(b.Bytes())])) {
					t.Error("kept bytes differ from the stream's first ones")
				}
			})
		}
	}
}

// The type must not grow a ReadFrom (for example by embedding bytes.Buffer
// again): io.Copy would prefer it to the limiting Write.
func TestLimitedBufferHasNoReadFrom(t *testing.T) {
	if _, ok := any(&limitedBuffer{}).(io.ReaderFrom); ok {
		t.Fatal("*limitedBuffer implements io.ReaderFrom; io.Copy would bypass the limit in Write")
	}
}
