// Package logs keeps the output of function instances: every line a function
// writes on stdout or stderr becomes one JSON record in a bounded, rotating
// set of files per function under the state directory, optionally copied to
// journald, and fanned out in memory to live followers (`edgefaas logs -f`).
//
// It protects the agent from its functions: a writer never blocks the
// function's pipe for long and never fails, each function has its own token
// bucket and its own disk budget, so a function printing without end loses
// lines (and is told so in a notice line) instead of filling the disk or
// slowing the others.
//
// It is not a log shipper (nothing leaves the device but the optional copy
// to journald) and it does not log the agent itself: that is slog's job.
package logs

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

// Defaults for the zero values of Config.
const (
	DefaultBudgetBytes = 4 << 20
	DefaultFileBytes   = 1 << 20
	DefaultRateBytes   = 64 << 10
	DefaultBurstBytes  = 256 << 10
	DefaultMaxLine     = 4096
)

// Streams a Line can come from. StreamNotice marks the store's own lines
// (dropped output, a follower that fell behind).
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	StreamNotice = "edgefaas"
)

// TruncatedMarker ends a line that was cut at Config.MaxLine.
const TruncatedMarker = " [truncated]"

// flushInterval bounds how long an accepted line may sit in a function's
// buffer before it reaches its file. Followers do not wait for it (they are
// fed from memory) and Read flushes first; it matters for whoever reads the
// files directly and for what a crash loses.
const flushInterval = 100 * time.Millisecond

// idleTicks is how many flush intervals without output a function's file
// stays open (a minute): many quiet functions must not hold a descriptor
// and a buffer each.
const idleTicks = 600

// Config sets where logs go and how much each function may write. Zero
// values take the defaults above.
type Config struct {
	Dir         string // e.g. <state>/logs; one subdirectory per function; required
	BudgetBytes int64  // disk budget per function, all its files together; 0 = 4 MiB
	FileBytes   int64  // rotate the current file at this size; 0 = 1 MiB (at most BudgetBytes)
	RateBytes   int64  // sustained bytes/s accepted per function (token bucket); 0 = 64 KiB/s
	BurstBytes  int64  // bucket size; 0 = 256 KiB
	MaxLine     int    // longer lines are cut and end with TruncatedMarker; 0 = 4096
	// Journal also sends each stored line to journald, with the fields
	// FUNCTION, INSTANCE, CALL_ID and STREAM.
	Journal bool
	Clock   func() time.Time // nil = time.Now
	Logger  *slog.Logger     // nil = slog.Default()
}

func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		return c, fmt.Errorf("logs: no directory given: %w", errdefs.ErrInvalid)
	}
	if c.BudgetBytes < 0 || c.FileBytes < 0 || c.RateBytes < 0 || c.BurstBytes < 0 || c.MaxLine < 0 {
		return c, fmt.Errorf("logs: negative size or rate: %w", errdefs.ErrInvalid)
	}
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.BudgetBytes, DefaultBudgetBytes)
	def(&c.RateBytes, DefaultRateBytes)
	def(&c.BurstBytes, DefaultBurstBytes)
	if c.FileBytes == 0 {
		c.FileBytes = min(DefaultFileBytes, c.BudgetBytes)
	}
	if c.FileBytes > c.BudgetBytes {
		return c, fmt.Errorf("logs: file size %d above the budget %d: %w", c.FileBytes, c.BudgetBytes, errdefs.ErrInvalid)
	}
	if c.MaxLine == 0 {
		c.MaxLine = DefaultMaxLine
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Line is one line of a function's output, as stored and as followed.
type Line struct {
	Time     time.Time `json:"time"`
	Function string    `json:"function"`
	Instance string    `json:"instance,omitempty"`
	CallID   string    `json:"call_id,omitempty"`
	Stream   string    `json:"stream"` // stdout, stderr, or "edgefaas" for the store's own notices
	Text     string    `json:"text"`
}

// Store keeps the logs of every function under one directory:
//
//	<Dir>/<function>/current.log      lines being appended
//	<Dir>/<function>/current.log.1    the previous file, .2 before it, …
//
// It is safe for concurrent use.
type Store struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	closing bool // Close has begun: no new writers
	closed  bool // Close has flushed the writers: no more functions
	funcs   map[string]*function
	writers map[*writer]struct{} // open writers, flushed by Close

	stop    chan struct{}  // closed by Close: the flusher returns
	done    chan struct{}  // closed by the flusher when it has returned
	journal *journalSender // nil unless Config.Journal
}

// Open opens (creating it if needed) the log directory cfg.Dir. Existing
// logs are kept and read back; their files are brought within the budget
// when their function next writes or is read.
func Open(cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	s := &Store{
		cfg:     cfg,
		log:     cfg.Logger,
		funcs:   make(map[string]*function),
		writers: make(map[*writer]struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if cfg.Journal {
		s.journal = startJournal(s.log)
	}
	go s.flushLoop()
	return s, nil
}

// checkName applies the agent's rule for function names, which also keeps
// every name a single plain path element.
func checkName(name string) error {
	if !api.ValidName(name) {
		return fmt.Errorf("function name %q: want lower-case letters, digits and '-', at most 63: %w", name, errdefs.ErrInvalid)
	}
	return nil
}

var errClosed = fmt.Errorf("log store closed: %w", errdefs.ErrUnavailable)

// function returns the state of a function's logs. Unless create is set, a
// function that never logged (no directory) is ErrNotFound.
func (s *Store) function(name string, create bool) (*function, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.functionLocked(name, create)
}

func (s *Store) functionLocked(name string, create bool) (*function, error) {
	if s.closed {
		return nil, errClosed
	}
	if f := s.funcs[name]; f != nil {
		return f, nil
	}
	dir := filepath.Join(s.cfg.Dir, name)
	if !create {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("logs of function %q: %w", name, errdefs.ErrNotFound)
		}
	}
	f := newFunction(name, dir, &s.cfg, s.journal)
	s.funcs[name] = f
	return f, nil
}

// Writer returns the writer for one stream of one instance (callID empty)
// or of one call (exec mode). See writer for what Write guarantees. An
// invalid function name or a closed store gives a writer that discards.
func (s *Store) Writer(function, instance, stream, callID string) io.WriteCloser {
	if err := checkName(function); err != nil {
		s.log.Error("function output discarded", "function", function, "err", err)
		return discard{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.functionLocked(function, true)
	if err == nil && s.closing {
		err = errClosed
	}
	if err != nil {
		s.log.Warn("function output discarded", "function", function, "err", err)
		return discard{}
	}
	w := newWriter(s, f, Line{Function: function, Instance: instance, Stream: stream, CallID: callID})
	s.writers[w] = struct{}{}
	return w
}

// forget drops a closed writer from the set Close flushes.
func (s *Store) forget(w *writer) {
	s.mu.Lock()
	delete(s.writers, w)
	s.mu.Unlock()
}

// Remove deletes a function's logs and ends its followers. Its open writers
// discard from then on. Removing a function without logs is not an error.
func (s *Store) Remove(function string) error {
	if err := checkName(function); err != nil {
		return err
	}
	// s.mu is held across the deletion so that no writer of a function by
	// the same name can start a new file in the directory being removed.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if f := s.funcs[function]; f != nil {
		f.shut(fmt.Errorf("logs of function %q removed: %w", function, errdefs.ErrNotFound))
		delete(s.funcs, function)
	}
	if err := os.RemoveAll(filepath.Join(s.cfg.Dir, function)); err != nil {
		return fmt.Errorf("logs of function %q: %w", function, err)
	}
	return nil
}

// Close flushes unterminated lines and drop notices of the writers still
// open, writes every buffer out, closes the files and ends the followers
// (their Follow returns ErrUnavailable). Writers discard from then on.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	writers := make([]*writer, 0, len(s.writers))
	for w := range s.writers {
		writers = append(writers, w)
	}
	s.mu.Unlock()
	// Writers are closed before the store is marked closed: their last
	// lines still go to the files.
	for _, w := range writers {
		w.Close()
	}

	s.mu.Lock()
	s.closed = true
	funcs := make([]*function, 0, len(s.funcs))
	for _, f := range s.funcs {
		funcs = append(funcs, f)
	}
	s.funcs = nil
	s.mu.Unlock()

	close(s.stop)
	<-s.done
	var errs []error
	for _, f := range funcs {
		errs = append(errs, f.shut(errClosed))
	}
	// Functions queue lines for journald under their lock, unless shut:
	// none can queue any more.
	if s.journal != nil {
		s.journal.close()
	}
	return errors.Join(errs...)
}

// flushLoop writes out the functions' buffers every flushInterval and
// closes the files of functions that went quiet.
func (s *Store) flushLoop() {
	defer close(s.done)
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		funcs := make([]*function, 0, len(s.funcs))
		for _, f := range s.funcs {
			funcs = append(funcs, f)
		}
		s.mu.Unlock()
		for _, f := range funcs {
			f.tick()
		}
	}
}

// discard is the writer for output that cannot be kept.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) Close() error                { return nil }
