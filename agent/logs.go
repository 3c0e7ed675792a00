package agent

import (
	"bytes"
	"log/slog"
	"sync"
)

// maxLine caps one logged line; the rest of a longer line is dropped.
const maxLine = 4096

// lineLogger turns a function's output streams into log records, one per
// line, tagged with the function (and call id in exec mode). Durable,
// rate-limited function logs come with the metering and logs issue.
type lineLogger struct {
	log *slog.Logger
	mu  sync.Mutex
	all []*lineWriter
}

func newLineLogger(log *slog.Logger) *lineLogger { return &lineLogger{log: log} }

// stream returns a writer for one of the instance's streams, flushed when
// the instance goes.
func (l *lineLogger) stream(name string) *lineWriter {
	w := l.callStream(name)
	l.mu.Lock()
	l.all = append(l.all, w)
	l.mu.Unlock()
	return w
}

// callStream returns a writer for one call's stream (exec mode); the caller
// flushes it when the call ends.
func (l *lineLogger) callStream(name string, attrs ...any) *lineWriter {
	return &lineWriter{log: l.log.With(append([]any{"stream", name}, attrs...)...)}
}

// flush logs what is left of unterminated lines, once the instance is gone.
func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.all {
		w.flush()
	}
	l.all = nil
}

type lineWriter struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = appendCapped(w.buf, p)
			break
		}
		w.buf = appendCapped(w.buf, p[:i])
		w.emit()
		p = p[i+1:]
	}
	return n, nil
}

func appendCapped(buf, p []byte) []byte {
	if room := maxLine - len(buf); len(p) > room {
		p = p[:max(room, 0)]
	}
	return append(buf, p...)
}

func (w *lineWriter) emit() {
	w.log.Info("function output", "line", string(w.buf))
	w.buf = w.buf[:0]
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit()
	}
}
