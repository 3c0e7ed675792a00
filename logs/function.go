package logs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

const currentName = "current.log"

// record is a Line as stored: Seq numbers the lines of one function, so a
// follower can tell the lines it read from the files from the live ones.
type record struct {
	Line
	Seq uint64 `json:"seq"`
}

// function is the state of one function's logs. Every field after mu is
// guarded by it; the writers of the function take it once per line.
type function struct {
	name    string
	dir     string
	cfg     *Config
	log     *slog.Logger
	journal *journalSender // nil unless Config.Journal

	mu      sync.Mutex
	loaded  bool  // the files on disk have been scanned
	gone    error // removed or store closed: lines are discarded
	file    *os.File
	buf     *bufio.Writer
	size    int64   // bytes of current.log, buffered ones included
	rotated []int64 // sizes of current.log.1, .2, … (index 0 is .1)
	seq     uint64  // of the last stored line
	bucket  bucket
	subs    map[*subscriber]struct{}
	enc     *json.Encoder
	encBuf  bytes.Buffer
	dirty   bool // buf holds bytes not yet written to the file
	idle    int  // flush ticks since the last line
	failing bool // the last disk operation failed (logged once)
}

func newFunction(name, dir string, cfg *Config, journal *journalSender) *function {
	f := &function{
		name:    name,
		dir:     dir,
		cfg:     cfg,
		journal: journal,
		log:     cfg.Logger.With("function", name),
		bucket:  bucket{rate: float64(cfg.RateBytes), burst: float64(cfg.BurstBytes)},
		subs:    make(map[*subscriber]struct{}),
	}
	f.enc = json.NewEncoder(&f.encBuf)
	f.enc.SetEscapeHTML(false)
	return f
}

// path is current.log for n == 0, current.log.n otherwise.
func (f *function) path(n int) string {
	if n == 0 {
		return filepath.Join(f.dir, currentName)
	}
	return filepath.Join(f.dir, currentName+"."+strconv.Itoa(n))
}

// load scans the files a previous run left: it numbers the rotated files
// 1..n again (an interrupted rotation leaves a gap), cuts a torn last line
// off current.log, brings the files within the budget and takes up the
// sequence where it stopped.
func (f *function) load() error {
	if f.loaded {
		return nil
	}
	entries, err := os.ReadDir(f.dir)
	if errors.Is(err, os.ErrNotExist) {
		f.loaded = true
		return nil
	}
	if err != nil {
		return err
	}
	var nums []int
	for _, e := range entries {
		if n, ok := strings.CutPrefix(e.Name(), currentName+"."); ok {
			if i, err := strconv.Atoi(n); err == nil && i > 0 && strconv.Itoa(i) == n {
				nums = append(nums, i)
			}
		}
	}
	slices.Sort(nums)
	f.rotated = f.rotated[:0]
	for i, n := range nums {
		if n != i+1 {
			if err := os.Rename(f.path(n), f.path(i+1)); err != nil {
				return err
			}
		}
		fi, err := os.Stat(f.path(i + 1))
		if err != nil {
			return err
		}
		f.rotated = append(f.rotated, fi.Size())
	}
	cur, err := os.ReadFile(f.path(0))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if i := bytes.LastIndexByte(cur, '\n'); i+1 < len(cur) {
		// A crash mid-write: the next line must not be glued to the torn one.
		cur = cur[:i+1]
		if err := os.Truncate(f.path(0), int64(len(cur))); err != nil {
			return err
		}
	}
	f.size = int64(len(cur))
	seq := lastSeq(cur)
	for n := 1; seq == 0 && n <= len(f.rotated); n++ {
		data, err := os.ReadFile(f.path(n))
		if err != nil {
			return err
		}
		seq = lastSeq(data)
	}
	// After a failure the files are scanned again, and may miss lines that
	// were numbered but never written: the sequence must not go back.
	f.seq = max(f.seq, seq)
	f.rotated = f.rotated[:f.trim(f.rotated, 1)]
	f.loaded = true
	return nil
}

// lastSeq is the sequence number of the last valid record in data.
func lastSeq(data []byte) uint64 {
	for len(data) > 0 {
		i := bytes.LastIndexByte(data[:len(data)-1], '\n')
		var r record
		if json.Unmarshal(data[i+1:], &r) == nil {
			return r.Seq
		}
		data = data[:i+1]
	}
	return 0
}

// store numbers a line, hands it to the followers and appends it to the
// files. A disk failure is logged, not returned: the function's output
// keeps draining, and followers still see the line.
func (f *function) store(l Line) {
	// Loading first: the sequence goes on from the files' last line.
	loadErr := f.load()
	f.seq++
	f.idle = 0
	f.publish(l, f.seq)
	if f.journal != nil {
		f.journal.send(l)
	}
	if loadErr != nil {
		f.fail("scan", loadErr)
		return
	}
	f.encBuf.Reset()
	if err := f.enc.Encode(record{Line: l, Seq: f.seq}); err != nil {
		f.fail("encode", err) // cannot happen: every field is a string or a time
		return
	}
	if err := f.append(f.encBuf.Bytes()); err != nil {
		f.fail("write", err)
		f.closeFile()
		f.loaded = false // a rotation may have stopped halfway: scan again
		return
	}
	f.ok()
}

func (f *function) append(data []byte) error {
	if f.size > 0 && f.size+int64(len(data)) > f.cfg.FileBytes {
		if err := f.rotate(); err != nil {
			return err
		}
	}
	if f.file == nil {
		if err := os.MkdirAll(f.dir, 0o700); err != nil {
			return err
		}
		file, err := os.OpenFile(f.path(0), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		fi, err := file.Stat()
		if err != nil {
			file.Close()
			return err
		}
		f.file, f.size = file, fi.Size()
		f.buf = bufio.NewWriterSize(file, 32<<10)
	}
	n, err := f.buf.Write(data)
	f.size += int64(n)
	f.dirty = true
	return err
}

// rotate makes current.log the newest rotated file. The oldest files go
// first, so that the rotated ones plus a full current file fit the budget:
// the function's files never add up to more than BudgetBytes (but for one
// line, when a single line is larger than FileBytes).
func (f *function) rotate() error {
	if err := f.closeFile(); err != nil {
		return err
	}
	// After the rotation, old file n (0 = current) is file n+1.
	after := append([]int64{f.size}, f.rotated...)
	keep := f.trim(after, 0)
	for n := keep - 1; n >= 0; n-- {
		if err := os.Rename(f.path(n), f.path(n+1)); err != nil {
			return err
		}
	}
	f.rotated, f.size = after[:keep], 0
	return nil
}

// trim deletes, oldest first, the files that would not leave room for a
// full current file within the budget, and returns how many it keeps.
// sizes[i] is the size of file number first+i (0 is current.log).
func (f *function) trim(sizes []int64, first int) int {
	var total int64
	for _, n := range sizes {
		total += n
	}
	keep := len(sizes)
	for keep > 0 && total+f.cfg.FileBytes > f.cfg.BudgetBytes {
		keep--
		total -= sizes[keep]
		if err := os.Remove(f.path(first + keep)); err != nil && !errors.Is(err, os.ErrNotExist) {
			f.fail("trim", err)
		}
	}
	return keep
}

// flush writes the buffer out; errors are logged.
func (f *function) flush() {
	if !f.dirty || f.buf == nil {
		return
	}
	if err := f.buf.Flush(); err != nil {
		f.fail("write", err)
		f.closeFile()
		return
	}
	f.dirty = false
}

func (f *function) closeFile() error {
	if f.file == nil {
		return nil
	}
	err := f.buf.Flush()
	if cerr := f.file.Close(); err == nil {
		err = cerr
	}
	f.file, f.buf, f.dirty = nil, nil, false
	return err
}

// tick is the flusher's visit: write the buffer out, and let go of the file
// of a function that has been quiet for a while.
func (f *function) tick() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flush()
	if f.idle++; f.idle > idleTicks && f.file != nil {
		if err := f.closeFile(); err != nil {
			f.fail("close", err)
		}
	}
}

// shut ends the function's logs (removed, or store closed): the buffer is
// written out, the file closed and the followers told why.
func (f *function) shut(why error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone != nil {
		return nil
	}
	f.gone = why
	for sub := range f.subs {
		sub.end(why)
	}
	f.subs = nil
	if err := f.closeFile(); err != nil {
		return fmt.Errorf("logs of function %q: %w", f.name, err)
	}
	return nil
}

// fail logs a disk error once, until an operation works again: a full disk
// must not turn every line of every function into an agent log line.
func (f *function) fail(op string, err error) {
	if !f.failing {
		f.log.Error("function logs: lines are lost", "op", op, "err", err)
	}
	f.failing = true
}

func (f *function) ok() {
	if f.failing {
		f.log.Info("function logs: writing again")
	}
	f.failing = false
}
