package logs

import (
	"bytes"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// writer cuts one stream into lines. It never returns an error and never
// waits on anything slower than appending to a buffered file: it sits on
// the function's pipe, and a pipe that stops draining stalls the function.
//
// Lines over the function's rate limit are dropped and counted here, per
// writer, so the notice that reports them carries this stream's instance
// and call id; the bucket they are charged to is the function's.
type writer struct {
	s    *Store
	f    *function
	meta Line // Function, Instance, Stream, CallID of every line

	mu     sync.Mutex
	line   []byte // the unterminated line so far, at most MaxLine+1 bytes
	cut    bool   // bytes of the current line were thrown away
	drops  drops
	closed bool
}

func newWriter(s *Store, f *function, meta Line) *writer {
	return &writer{s: s, f: f, meta: meta}
}

// Write stores every complete line of p, keeps the rest for the next Write
// or Close, and always reports len(p) written.
func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if w.closed {
		return n, nil
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.add(p)
			break
		}
		w.add(p[:i])
		w.emit()
		p = p[i+1:]
	}
	return n, nil
}

// add keeps up to MaxLine+1 bytes of a line: the extra byte is either the
// '\r' of a "\r\n" or the proof that the line is too long.
func (w *writer) add(p []byte) {
	if room := w.s.cfg.MaxLine + 1 - len(w.line); len(p) > room {
		p, w.cut = p[:room], true
	}
	w.line = append(w.line, p...)
}

func (w *writer) emit() {
	text := lineText(w.line, w.cut, w.s.cfg.MaxLine)
	w.line, w.cut = w.line[:0], false
	w.f.accept(w, text)
}

// lineText is the stored text of a raw line: without its '\r', valid UTF-8
// (invalid bytes become U+FFFD), and at most max bytes, cut at a rune
// boundary and marked when it was longer.
func lineText(raw []byte, cut bool, max int) string {
	if !cut {
		raw = bytes.TrimSuffix(raw, []byte{'\r'})
	}
	text := string(raw)
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	if !cut && len(text) <= max {
		return text
	}
	n := min(max, len(text)) // replacing invalid bytes may have shortened it
	for n < len(text) && n > 0 && !utf8.RuneStart(text[n]) {
		n--
	}
	return text[:n] + TruncatedMarker
}

// Close stores the unterminated last line, if any, and the notice of lines
// still unreported as dropped. Writes after Close are discarded.
func (w *writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if len(w.line) > 0 || w.cut {
		w.emit()
	}
	if w.drops.lines > 0 {
		w.f.report(w)
	}
	w.line = nil
	w.s.forget(w)
	return nil
}

// accept charges a line to the function's bucket and stores it, preceded
// by the notice of the lines w dropped before it; or drops it. w.mu is held.
func (f *function) accept(w *writer, text string) {
	now := w.s.cfg.Clock()
	cost := int64(len(text)) + 1 // the newline is output too: empty lines are not free
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone != nil {
		return
	}
	if !f.bucket.take(now, cost) {
		w.drops.lines++
		w.drops.bytes += cost
		return
	}
	if w.drops.lines > 0 {
		f.store(w.notice(now))
		w.drops = drops{}
	}
	l := w.meta
	l.Time, l.Text = now, text
	f.store(l)
}

// report stores the notice of w's dropped lines, free of charge: it is one
// line per burst of drops. w.mu is held.
func (f *function) report(w *writer) {
	n := w.notice(w.s.cfg.Clock())
	w.drops = drops{}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone == nil {
		f.store(n)
	}
}

func (w *writer) notice(now time.Time) Line {
	l := w.meta
	l.Time, l.Stream = now, StreamNotice
	l.Text = w.drops.notice(w.s.cfg.RateBytes)
	return l
}
